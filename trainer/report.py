"""The Trainer's picture: training curves with the learning rate (the run report draws the rest)."""

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
