"""A fixed first layer that whitens 3x3 patches (the "patch whitening" of the fastest CIFAR-10 trainers).

The stem convolution of a ResNet with ``HParams.whitened_stem`` is not learned: its filters are the
leading eigenvectors of the covariance of 3x3 patches of training images (after Transform's
normalisation), each scaled by 1/sqrt(eigenvalue + :data:`EPSILON`) and used with both signs, so the
ReLU after it passes either side of each direction. Its outputs start decorrelated with unit variance,
which is the starting point the later layers would otherwise have to learn.

Plain NumPy over a sample of images, decomposed once per run (:func:`patch_whitening`); every network
the run builds (each width a budget probes, a recheck's restart) cuts its own stem from that decomposition
(:meth:`PatchWhitening.kernel`), and :func:`cifar_tfx.trainer.train.build_and_compile` puts it into the network.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PATCH = 3            # the stem's kernel size
EPSILON = 1e-2       # added to each eigenvalue: directions of tiny variance are not blown up
SAMPLE_IMAGES = 2048  # images whose patches estimate the covariance (the first records of the split)
_CHUNK = 128          # images per step of the covariance sum (bounds memory: 128 x 30 x 30 x 27 floats)


def patch_covariance(images: np.ndarray) -> np.ndarray:
    """``[N, H, W, C]`` images -> ``[9C, 9C]`` covariance of all their 3x3 patches (row-major, channel last)."""
    if images.ndim != 4 or images.shape[1] < PATCH or images.shape[2] < PATCH:
        raise ValueError(f"patch whitening needs [N, H, W, C] images of at least {PATCH}x{PATCH}, "
                         f"got shape {images.shape}")
    dims = PATCH * PATCH * images.shape[-1]
    total, outer, count = np.zeros(dims), np.zeros((dims, dims)), 0
    for start in range(0, len(images), _CHUNK):
        chunk = images[start:start + _CHUNK].astype(np.float64)
        windows = np.lib.stride_tricks.sliding_window_view(chunk, (PATCH, PATCH), axis=(1, 2))
        # windows: [n, H-2, W-2, C, 3, 3] -> patches flattened as (row, column, channel), the conv kernel's order
        patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, dims)
        total += patches.sum(axis=0)
        outer += patches.T @ patches
        count += len(patches)
    mean = total / count
    return outer / count - np.outer(mean, mean)


@dataclasses.dataclass(frozen=True)
class PatchWhitening:
    """The principal directions of a sample's 3x3 patches, from which a stem of any width is cut.

    ``directions``: ``[9C, 9C]``, one direction per column, largest variance first; ``variances``: theirs.
    """

    directions: np.ndarray
    variances: np.ndarray
    channels: int

    def kernel(self, filters: int) -> np.ndarray:
        """``[3, 3, C, filters]`` stem kernel: the ``filters // 2`` leading directions, each scaled by
        1/sqrt(variance + :data:`EPSILON`), then the same negated. A stem wider than the 9C directions
        (ResNet-9 x4's 64 filters on 27) takes them again from the first, so any even width can be whitened."""
        if filters <= 0 or filters % 2:
            raise ValueError(f"a whitened stem needs an even number of filters, got {filters}")
        leading = np.arange(filters // 2) % self.directions.shape[1]
        scaled = self.directions[:, leading] / np.sqrt(self.variances[leading] + EPSILON)
        kernel = np.concatenate([scaled, -scaled], axis=1)
        return kernel.reshape(PATCH, PATCH, self.channels, filters).astype(np.float32)


def patch_whitening(images: np.ndarray) -> PatchWhitening:
    """The :class:`PatchWhitening` of ``[N, H, W, C]`` images (their patch covariance's eigenvectors)."""
    variances, directions = np.linalg.eigh(patch_covariance(images))
    order = np.argsort(variances)[::-1]
    return PatchWhitening(directions=directions[:, order], variances=np.maximum(variances[order], 0.0),
                          channels=images.shape[-1])


def whitening_kernel(images: np.ndarray, filters: int) -> np.ndarray:
    """``[3, 3, C, filters]`` stem kernel whitening the patches of ``images`` (:meth:`PatchWhitening.kernel`)."""
    return patch_whitening(images).kernel(filters)
