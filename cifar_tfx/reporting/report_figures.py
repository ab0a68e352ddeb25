"""The run report's pictures, each returned as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from cifar_tfx.trainer.report import pyplot


def _png(plt, fig) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def training_curves(scalars: Mapping[str, Sequence[Tuple[int, float, float]]]) -> bytes:
    """Loss, accuracy and learning rate against step, and accuracy against wall-clock minutes.

    ``scalars`` maps a tag (``loss``, ``accuracy``, ``learning_rate``) to ``(step, wall time, value)``
    rows, as the Trainer's TensorBoard events hold them.
    """
    plt = pyplot()
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(13, 4))
    start = min((row[1] for rows in scalars.values() for row in rows), default=0.0)
    for tag, color in (("loss", "tab:blue"), ("accuracy", "tab:green")):
        rows = scalars.get(tag, [])
        if rows:
            by_step.plot([r[0] for r in rows], _smooth([r[2] for r in rows]), color=color, label=f"training {tag}")
            if tag == "accuracy":
                by_time.plot([(r[1] - start) / 60 for r in rows], _smooth([r[2] for r in rows]), color=color,
                             label="training accuracy (augmented)")
    by_step.set(xlabel="step", title="loss and accuracy per step (smoothed)")
    by_step.legend(loc="center left")
    rates = scalars.get("learning_rate", [])
    if rates:
        twin = by_step.twinx()
        twin.plot([r[0] for r in rates], [r[2] for r in rates], color="tab:red", alpha=0.6)
        twin.set_ylabel("learning rate", color="tab:red")
    by_time.set(xlabel="wall-clock minutes since the first step", ylim=(0, 1), title="accuracy against time")
    by_time.legend(loc="lower right")
    for axis in (by_step, by_time):
        axis.grid(alpha=0.3)
    return _png(plt, fig)


def _smooth(values: Sequence[float], window: int = 25) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if len(values) <= window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[:window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def per_class_accuracy(accuracy: Mapping[str, float]) -> bytes:
    """A bar per class, labelled with its accuracy."""
    plt = pyplot()
    names = list(accuracy)
    fig, axis = plt.subplots(figsize=(7, 0.35 * len(names) + 1))
    axis.barh(range(len(names)), [accuracy[n] for n in names], color="tab:blue")
    axis.set(yticks=range(len(names)), xlim=(0, 1), title="test accuracy per class (Evaluator slices)")
    axis.set_yticklabels(names)
    axis.invert_yaxis()
    for index, name in enumerate(names):
        axis.text(min(accuracy[name], 0.88), index, f" {accuracy[name]:.1%}", va="center")
    return _png(plt, fig)


def confusion_matrix(counts: Sequence[Sequence[int]], class_names: Sequence[str]) -> bytes:
    """Counts of (true class, predicted class), rows true, each cell labelled."""
    plt = pyplot()
    matrix = np.asarray(counts, dtype=np.float64)
    fig, axis = plt.subplots(figsize=(8, 7))
    axis.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        axis.text(col, row, f"{int(value)}", ha="center", va="center", fontsize=7,
                  color="white" if value > matrix.max() / 2 else "black")
    axis.set(xticks=range(len(class_names)), yticks=range(len(class_names)), xlabel="predicted", ylabel="true",
             title=f"confusion matrix, {int(matrix.sum()):,} test images (Evaluator)")
    axis.set_xticklabels(class_names, rotation=45, ha="right")
    axis.set_yticklabels(class_names)
    return _png(plt, fig)


def class_counts(counts: Mapping[str, Mapping[str, int]], class_names: Sequence[str]) -> bytes:
    """Grouped bars: images per class in each split."""
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(9, 3.5))
    width = 0.8 / max(1, len(counts))
    for offset, (split, per_class) in enumerate(counts.items()):
        axis.bar(np.arange(len(class_names)) + offset * width, [per_class.get(n, 0) for n in class_names],
                 width=width, label=split)
    axis.set_xticks(np.arange(len(class_names)) + width * (len(counts) - 1) / 2)
    axis.set_xticklabels(class_names, rotation=30, ha="right")
    axis.set(ylabel="images", title="images per class and split")
    axis.legend()
    return _png(plt, fig)


def misclassified_grid(images: Sequence[np.ndarray], captions: Sequence[str], columns: int = 8) -> bytes:
    """Test images the model got wrong, each captioned ``true -> predicted``."""
    plt = pyplot()
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.9), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, caption in zip(axes.flat, images, captions):
        axis.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None, interpolation="nearest")
        axis.set_title(caption, fontsize=7)
    return _png(plt, fig)


def per_split_counts(labels: Dict[str, List[int]], class_names: Sequence[str]) -> Dict[str, Dict[str, int]]:
    """``{split: {class name: count}}`` from label lists."""
    return {split: {name: int(np.sum(np.asarray(values) == index)) for index, name in enumerate(class_names)}
            for split, values in labels.items()}
