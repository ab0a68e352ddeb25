"""Pictures people look at: training curves with the learning rate, and the confusion matrix with per-class accuracy on the test split (computed by the Trainer)."""

from __future__ import annotations

import os
from typing import Dict, List, Sequence

import numpy as np


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str, title: str) -> str:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_training(history: Dict[str, List[float]], learning_rates: Sequence[float], path: str,
                  title: str = "") -> str:
    """Loss and accuracy per epoch, learning rate per step; written as a PNG to ``path``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    axes[0].plot(epochs, history.get("loss", []), marker="o")
    axes[0].set(title="training loss (epoch mean)", xlabel="epoch")
    axes[1].plot(epochs, history.get("accuracy", []), marker="o", color="tab:green")
    axes[1].set(title="training accuracy (augmented)", xlabel="epoch", ylim=(0, 1))
    axes[2].step(np.arange(len(learning_rates)), learning_rates, where="post", color="tab:red")
    axes[2].set(title="learning rate used", xlabel="step (this attempt)", yscale="log")
    for axis in axes:
        axis.grid(alpha=0.3)
    return _save(plt, fig, path, title)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str, title: str = "") -> str:
    """Confusion matrix (rows: true class) and per-class accuracy; written as a PNG."""
    plt = pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    per_class = np.divide(np.diag(matrix), matrix.sum(axis=1), out=np.zeros(len(matrix)), where=matrix.sum(axis=1) > 0)
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 2]})
    axes[0].imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        axes[0].text(col, row, f"{int(value)}", ha="center", va="center", fontsize=7,
                     color="white" if value > matrix.max() / 2 else "black")
    axes[0].set(xticks=range(len(class_names)), yticks=range(len(class_names)),
                xlabel="predicted", ylabel="true", title="confusion matrix")
    axes[0].set_xticklabels(class_names, rotation=45, ha="right")
    axes[0].set_yticklabels(class_names)
    axes[1].barh(range(len(class_names)), per_class, color="tab:blue")
    axes[1].set(yticks=range(len(class_names)), xlim=(0, 1), title="per-class accuracy")
    axes[1].set_yticklabels(class_names)
    axes[1].invert_yaxis()
    for index, value in enumerate(per_class):
        axes[1].text(min(value, 0.9), index, f" {value:.1%}", va="center")
    return _save(plt, fig, path, title)
