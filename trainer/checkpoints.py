"""Resuming from the newest checkpoint that can be read whole.

A run killed while a checkpoint is written, or a disk that fills, can leave the newest checkpoint
truncated; restoring it fails (``IndexError: Read less bytes than requested``) on every attempt, while the
checkpoint before it is intact. :func:`newest_intact` reads each checkpoint, newest first, tensor by
tensor, without touching the model; the damaged ones newer than the first intact one are moved aside,
never deleted, into ``damaged-<time>/`` beside them, and the state file that names the newest checkpoint
is rewritten, so the run resumes from the newest intact checkpoint and says so, or starts over and says so.
"""

from __future__ import annotations

import os
import re
import time
from typing import List, Optional, TextIO, Tuple

import tensorflow as tf

STATE_FILE = "checkpoint"   # tf.train.CheckpointManager's text file naming the newest checkpoint
_PREFIX = re.compile(r"ckpt-(\d+)\.index$")


def checkpoint_prefixes(checkpoint_dir: str) -> List[Tuple[int, str]]:
    """``(step, prefix)`` of every ``ckpt-N`` in ``checkpoint_dir``, newest first (by step, not by the state file)."""
    if not tf.io.gfile.isdir(checkpoint_dir):
        return []
    found = []
    for name in tf.io.gfile.listdir(checkpoint_dir):
        match = _PREFIX.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(checkpoint_dir, name[:-len(".index")])))
    return sorted(found, reverse=True)


def damage_of(prefix: str) -> Optional[str]:
    """Why the checkpoint at ``prefix`` cannot be restored (a line), or None when every tensor reads whole."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as err:
        text = getattr(err, "message", None) or str(err) or type(err).__name__
        return f"{type(err).__name__}: {text.strip().splitlines()[0][:200]}" if text.strip() else type(err).__name__
    return None


def newest_intact(checkpoint_dir: str, stream: TextIO, now=time.strftime) -> Optional[str]:
    """The prefix of the newest checkpoint in ``checkpoint_dir`` that reads whole, or None (start over).

    Damaged checkpoints newer than it are moved to ``checkpoint_dir/damaged-<time>/`` and named in ``stream``;
    the state file is rewritten to name the checkpoints left, so ``tf.train.CheckpointManager`` resumes
    from the intact one and later saves rotate among them.
    """
    prefixes = checkpoint_prefixes(checkpoint_dir)
    moved_to = None
    for index, (step, prefix) in enumerate(prefixes):
        reason = damage_of(prefix)
        if reason is None:
            if moved_to is not None or _named_in_state(checkpoint_dir) != os.path.basename(prefix):
                _write_state(checkpoint_dir, [p for _, p in reversed(prefixes[index:])])
            if moved_to is not None:
                stream.write(f"resuming from the newest intact checkpoint, {os.path.basename(prefix)} "
                             f"(step {step})\n")
            return prefix
        moved_to = moved_to or os.path.join(checkpoint_dir, f"damaged-{now('%Y%m%d-%H%M%S')}")
        _move_aside(prefix, moved_to)
        stream.write(f"checkpoint {prefix} cannot be read ({reason}); moved to {moved_to}/ (kept, not used)\n")
    if moved_to is not None:
        state = os.path.join(checkpoint_dir, STATE_FILE)
        if tf.io.gfile.exists(state):
            tf.io.gfile.rename(state, os.path.join(moved_to, STATE_FILE), overwrite=True)
        stream.write(f"no intact checkpoint is left in {checkpoint_dir}: training starts over from step 0\n")
    return None


def _named_in_state(checkpoint_dir: str) -> Optional[str]:
    """The checkpoint the state file names as newest (base name), or None if it names none or is unreadable."""
    try:
        named = tf.train.latest_checkpoint(checkpoint_dir)
    except (tf.errors.OpError, ValueError) as err:  # text_format.ParseError is a ValueError
        del err
        return None
    return os.path.basename(named) if named else None


def _move_aside(prefix: str, folder: str) -> None:
    tf.io.gfile.makedirs(folder)
    for path in tf.io.gfile.glob(prefix + ".*"):
        tf.io.gfile.rename(path, os.path.join(folder, os.path.basename(path)), overwrite=True)


def _write_state(checkpoint_dir: str, prefixes: List[str]) -> None:
    """Name ``prefixes`` (oldest first) in the state file; the last one is the checkpoint to resume from."""
    tf.compat.v1.train.update_checkpoint_state(checkpoint_dir, model_checkpoint_path=prefixes[-1],
                                               all_model_checkpoint_paths=prefixes)
