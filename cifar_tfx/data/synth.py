"""Deterministic synthetic CIFAR-format data whose classes a small network learns fast.

Each class is a shape (disc, square, ring, bars, cross, ...) drawn in a colour
picked at random from a palette (so colour says nothing about the class), placed
and sized at random on a noisy, randomly tinted background. Every cue survives a horizontal flip and a 4-pixel
shift, so the recipe's augmentation does not destroy the label. The result is
written in the official ``python`` layout (``cifar-10-batches-py/`` with five
training batches, a test batch and ``batches.meta``, protocol-2 pickles), so
every reader that takes the official archive takes it too.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from typing import Tuple

import numpy as np

from cifar_tfx.data.datasets import CIFAR10, DatasetSpec
from cifar_tfx.data.errors import DataError

DEFAULT_SEED = 20150610  # any fixed number; the date of the ResNet paper's v1

# Foreground palette (RGB 0..255); each image draws one colour independently of its class.
_PALETTE = np.array(
    [
        [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190],
    ],
    dtype=np.float32,
)


def _shape_masks(label: np.ndarray, cy: np.ndarray, cx: np.ndarray, r: np.ndarray, size: int) -> np.ndarray:
    """Boolean [N, size, size] masks of each example's class shape."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dy = yy[None] - cy[:, None, None]
    dx = xx[None] - cx[:, None, None]
    rr = r[:, None, None]
    dist = np.sqrt(dy**2 + dx**2)
    cheb = np.maximum(np.abs(dy), np.abs(dx))
    shapes = [
        dist <= rr,                                                     # 0 disc
        cheb <= rr,                                                     # 1 square
        (dist <= rr) & (dist >= rr * 0.55),                             # 2 ring
        (np.abs(dy) <= rr * 0.35) & (np.abs(dx) <= rr * 1.2),           # 3 horizontal bar
        (np.abs(dx) <= rr * 0.35) & (np.abs(dy) <= rr * 1.2),           # 4 vertical bar
        ((np.abs(dx) <= rr * 0.3) | (np.abs(dy) <= rr * 0.3)) & (cheb <= rr),  # 5 plus
        (np.abs(np.abs(dx) - np.abs(dy)) <= rr * 0.35) & (cheb <= rr),   # 6 X
        (cheb <= rr) & (cheb >= rr * 0.6),                              # 7 hollow square
        (dy >= -rr) & (dy <= rr) & (np.abs(dx) <= (dy + rr) * 0.5),     # 8 triangle
        (np.abs(dy) % 4 < 2) & (cheb <= rr),                            # 9 striped square
    ]
    masks = np.zeros((label.shape[0], size, size), dtype=bool)
    for cls, mask in enumerate(shapes):
        rows = label == cls
        masks[rows] = mask[rows]
    return masks


def make_examples(count: int, seed: int, spec: DatasetSpec = CIFAR10) -> Tuple[np.ndarray, np.ndarray]:
    """``count`` synthetic examples: images [N, H, W, C] uint8 and labels [N] uint8.

    Labels cycle through the classes in a seeded random order, so every class has
    ``count // num_classes`` or one more examples.
    """
    if spec.height != spec.width or spec.channels != 3:
        raise ValueError("the synthetic generator draws square RGB images only")
    rng = np.random.default_rng(seed)
    size = spec.height
    labels = rng.permutation(np.arange(count) % spec.num_classes).astype(np.uint8)
    r = rng.uniform(size * 0.18, size * 0.3, count).astype(np.float32)
    cy = rng.uniform(r, size - 1 - r).astype(np.float32)
    cx = rng.uniform(r, size - 1 - r).astype(np.float32)
    background = rng.uniform(20, 110, (count, 1, 1, 3)).astype(np.float32)
    noise = rng.normal(0.0, 24.0, (count, size, size, 3)).astype(np.float32)
    colour = _PALETTE[rng.integers(0, len(_PALETTE), count)] + rng.normal(0.0, 20.0, (count, 3)).astype(np.float32)
    masks = _shape_masks(labels, cy, cx, r, size)[..., None]
    images = np.where(masks, colour[:, None, None, :], background) + noise
    return np.clip(images, 0, 255).round().astype(np.uint8), labels


def _to_planes(images: np.ndarray) -> np.ndarray:
    """HWC images to the official plane-major ``N x (C*H*W)`` rows."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(images.shape[0], -1)


def _dump(path: str, obj: object) -> None:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)  # protocol 2, as the official batches


def write_dataset(out_dir: str, train: int = 5000, test: int = 1000, seed: int = DEFAULT_SEED,
                  spec: DatasetSpec = CIFAR10) -> str:
    """Write ``train`` + ``test`` examples under ``out_dir/<python_folder>/``; return that folder.

    The folder appears complete or not at all: it is written beside its final name
    and renamed into place.
    """
    if "python" not in spec.formats:
        raise DataError(f"data synth writes the CIFAR python layout; {spec.name} has none "
                        f"(it comes as {', '.join(spec.formats)})")
    num_train_batches = len(spec.python_train_members)
    if train < num_train_batches:
        raise ValueError(f"--train must be at least {num_train_batches} (one image per batch)")
    if test < 1:
        raise ValueError("--test must be at least 1")
    os.makedirs(out_dir, exist_ok=True)
    final = os.path.join(out_dir, spec.python_folder)
    staging = tempfile.mkdtemp(prefix=".synth-", dir=out_dir)
    try:
        images, labels = make_examples(train, seed, spec)
        for index, rows in enumerate(np.array_split(np.arange(train), num_train_batches)):
            name = spec.python_train_members[index]
            _dump(os.path.join(staging, name), {
                "batch_label": f"synthetic training batch {index + 1} of {num_train_batches}",
                "labels": [int(v) for v in labels[rows]],
                "data": _to_planes(images[rows]),
                "filenames": [f"synthetic_{int(i):06d}.png" for i in rows],
            })
        test_images, test_labels = make_examples(test, seed + 1, spec)
        _dump(os.path.join(staging, spec.python_test_members[0]), {
            "batch_label": "synthetic testing batch 1 of 1",
            "labels": [int(v) for v in test_labels],
            "data": _to_planes(test_images),
            "filenames": [f"synthetic_test_{i:06d}.png" for i in range(test)],
        })
        _dump(os.path.join(staging, spec.python_meta_member), {
            "label_names": list(spec.class_names),
            "num_cases_per_batch": int(np.ceil(train / num_train_batches)),
            "num_vis": spec.image_bytes,
        })
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
