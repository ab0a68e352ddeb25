"""Which network a wall-clock budget can afford, from throughput measured on this machine.

A budget run with ``depth=None`` first times a few steps of two probe networks
(:data:`PROBE_DEPTHS`) on the real input pipeline, fits seconds per image as a
straight line in n (the blocks per stage of a 6n+2 ResNet: every block costs about
the same, the stem, head and input pipeline are the intercept) and then trains the
deepest candidate that still sees enough training images in the time left (a run that starts on
small crops sees more of them per second: :func:`small_crop_gain`). "Enough"
grows with depth: ResNet-20 needs ``HParams.budget_min_images`` (by default the
dataset's ``budget_min_images``) and a ResNet-d needs d/20 times that, since a deeper
network is better only if it gets proportionally more optimizer steps (measured: on
Fashion-MNIST in 30 minutes, ResNet-56 seeing 0.75M images ended 0.6 points below
ResNet-20 seeing 0.66M in 10). When none does, the shallowest candidate trains.

A probe shares the machine with whatever else runs during its ~45 s. So the run times its
own steady training once, early (:class:`~cifar_tfx.trainer.callbacks.ThroughputCheck`), and
:func:`recheck_depth` compares that with the probe's prediction: when they differ by more than
:data:`RECHECK_TOLERANCE`, the probe's rates are scaled by the same factor (load slows every
depth alike) and the choice is made again for the time left; a different answer restarts
training with that network. Everything here is plain Python;
:func:`cifar_tfx.trainer.train.measure_throughput` does the timing.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional, Sequence

CANDIDATE_DEPTHS = (8, 14, 20, 32, 44, 56)
PROBE_DEPTHS = (8, 32)   # n = 1 and n = 5: far enough apart for the fit, cheap enough to time
REFERENCE_DEPTH = 20     # the depth whose need is budget_min_images; others need it scaled by depth
RECHECK_TOLERANCE = 0.2  # steady training within +-20 % of the probe's prediction keeps the choice


def images_needed(depth: int, min_images: int) -> float:
    """Training images a ResNet-``depth`` should see to be worth choosing: ``min_images`` x depth / 20."""
    return min_images * depth / REFERENCE_DEPTH


def small_crop_gain(speedup: Optional[float], small_crop_fraction: float, budget_seconds: float,
                    seconds_left: float) -> float:
    """Images seen per image the whole-image rate predicts, over the ``seconds_left`` of a
    ``budget_seconds`` budget whose first ``small_crop_fraction`` trains on small crops ``speedup``
    times faster; 1.0 without small crops. What is left of the crop phase is
    ``seconds_left - (1 - small_crop_fraction) * budget_seconds``, clipped to [0, ``seconds_left``].
    A small crop counts as an image: measured on the validation split at 10 minutes, the ResNet-14
    this count chooses beat the ResNet-8 a whole-image count chooses by 1.6 points (BENCHMARKS.md)."""
    if not speedup or seconds_left <= 0:
        return 1.0
    crop_seconds_left = seconds_left - (1.0 - small_crop_fraction) * budget_seconds
    on_crops = min(max(crop_seconds_left, 0.0), seconds_left)
    return 1.0 + (speedup - 1.0) * on_crops / seconds_left


def blocks_per_stage(depth: int) -> int:
    """n in 6n+2."""
    return (depth - 2) // 6


@dataclasses.dataclass(frozen=True)
class DepthChoice:
    """The chosen depth, what it rests on, and a one-line reason for the log."""

    depth: int
    measured: Dict[int, float]       # depth -> images/s timed by the probe
    predicted: Dict[int, float]      # candidate depth -> images/s from the fit
    images: Dict[int, float]         # candidate depth -> training images it would see in the time left
    min_images: int                  # what ResNet-20 needs; see images_needed
    train_examples: int
    seconds_left: float
    image_gain: float = 1.0          # images seen per whole-image image/s (small_crop_gain)

    def reason(self) -> str:
        probed = ", ".join(f"ResNet-{d} {rate:,.0f} img/s" for d, rate in sorted(self.measured.items()))
        table = ", ".join(f"{d}: {self.images[d] / 1e6:.2f}M of {images_needed(d, self.min_images) / 1e6:.2f}M"
                          for d in sorted(self.images))
        seen = self.images[self.depth]
        why = ("the deepest that sees what it needs" if seen >= images_needed(self.depth, self.min_images)
               else "none sees what it needs: the shallowest")
        crops = f" (small crops counted, x{self.image_gain:.2f})" if self.image_gain != 1.0 else ""
        return (f"probe: {probed}; images seen in the {self.seconds_left / 60:.1f} min left{crops} of those needed "
                f"(ResNet-20 {self.min_images / 1e6:.2f}M, scaled by depth), by depth: {table} "
                f"-> ResNet-{self.depth} ({why}; {seen / self.train_examples:.0f} epochs)")

    def to_json(self) -> Dict[str, object]:
        return {"depth": self.depth, "measured_images_per_second": self.measured,
                "predicted_images_per_second": self.predicted, "predicted_images_seen": self.images,
                "min_images": self.min_images, "seconds_left": self.seconds_left, "image_gain": self.image_gain,
                "reason": self.reason()}


def predict_throughput(measured: Mapping[int, float], candidates: Sequence[int] = CANDIDATE_DEPTHS
                       ) -> Dict[int, float]:
    """Images/s of each candidate depth, from a least-squares line through seconds/image vs n.

    Needs at least two measured depths with different n. A fit that would give a
    non-positive cost (measurement noise) falls back to cost proportional to n + 1.
    """
    points = [(blocks_per_stage(depth), 1.0 / rate) for depth, rate in measured.items() if rate > 0]
    if len({n for n, _ in points}) < 2:
        raise ValueError(f"need throughput of two different depths, got {dict(measured)}")
    mean_n = sum(n for n, _ in points) / len(points)
    mean_cost = sum(cost for _, cost in points) / len(points)
    slope = sum((n - mean_n) * (cost - mean_cost) for n, cost in points) / sum((n - mean_n) ** 2 for n, _ in points)
    intercept = mean_cost - slope * mean_n
    if slope <= 0 or intercept + slope <= 0:
        per_block = mean_cost / (mean_n + 1)
        slope, intercept = per_block, per_block
    return {depth: 1.0 / max(intercept + slope * blocks_per_stage(depth), 1e-9) for depth in candidates}


def choose_depth(measured: Mapping[int, float], train_examples: int, seconds_left: float, min_images: int,
                 candidates: Sequence[int] = CANDIDATE_DEPTHS, head_start: Optional[Mapping[int, float]] = None,
                 image_gain: float = 1.0) -> DepthChoice:
    """The deepest candidate predicted to see the images it needs (:func:`images_needed`) in ``seconds_left``,
    counting the images a depth has already trained on (``head_start``: a recheck's network) and
    ``image_gain`` images per image its whole-image rate predicts (:func:`small_crop_gain`)."""
    if train_examples < 1:
        raise ValueError("no training examples")
    predicted = predict_throughput(measured, candidates)
    images = {depth: rate * image_gain * max(seconds_left, 0.0) + (head_start or {}).get(depth, 0.0)
              for depth, rate in predicted.items()}
    enough = [depth for depth in candidates if images[depth] >= images_needed(depth, min_images)]
    depth = max(enough) if enough else min(candidates)
    return DepthChoice(depth=depth, measured=dict(measured), predicted=predicted, images=images,
                       min_images=min_images, train_examples=train_examples, seconds_left=seconds_left,
                       image_gain=image_gain)


@dataclasses.dataclass(frozen=True)
class Recheck:
    """The probe's choice seen again from steady training throughput."""

    chosen: int                       # the depth the probe chose and training started with
    observed: float                   # its steady images/s in training
    predicted: float                  # what the probe predicted for it, on whole images
    choice: Optional[DepthChoice]     # the choice made again on corrected rates; None when within tolerance
    speedup: float = 1.0              # how much faster than whole images the timed phase trains (small crops)

    @property
    def ratio(self) -> float:
        """Observed over predicted, both counted in whole images."""
        return self.observed / self.speedup / self.predicted

    @property
    def depth(self) -> int:
        """The depth to train from now on."""
        return self.choice.depth if self.choice is not None else self.chosen

    @property
    def switched(self) -> bool:
        return self.depth != self.chosen

    def reason(self) -> str:
        rate = f"{self.observed:,.0f} img/s"
        if self.speedup != 1.0:
            rate += (f" on small crops, {self.observed / self.speedup:,.0f} as whole images "
                     f"(the probe's x{self.speedup:.2f})")
        head = f"recheck: ResNet-{self.chosen} trains at {rate}, the probe predicted {self.predicted:,.0f}"
        if self.choice is None:
            return f"{head} (within {RECHECK_TOLERANCE:.0%}): keeps ResNet-{self.chosen}"
        verdict = f"still ResNet-{self.chosen}" if not self.switched else f"restarting with ResNet-{self.depth}"
        return (f"{head}: the probe was off by x{self.ratio:.2f}; with every probed rate scaled by that, "
                f"{verdict} ({self.choice.reason()})")

    def to_json(self) -> Dict[str, object]:
        return {"chosen": self.chosen, "observed_images_per_second": self.observed, "observed_speedup": self.speedup,
                "predicted_images_per_second": self.predicted, "switched_to": self.depth if self.switched else None,
                "reason": self.reason()}


def recheck_depth(measured: Mapping[object, float], chosen: int, observed: float, train_examples: int,
                  seconds_left: float, min_images: int, images_seen: float = 0.0,
                  candidates: Sequence[int] = CANDIDATE_DEPTHS, speedup: float = 1.0,
                  image_gain: float = 1.0) -> Recheck:
    """Compare ResNet-``chosen``'s steady ``observed`` images/s with the prediction from the probe's
    ``measured`` rates; beyond :data:`RECHECK_TOLERANCE`, choose again for the ``seconds_left`` with
    every measured rate scaled by observed/predicted. ResNet-``chosen`` keeps the ``images_seen``
    it has trained on; any other network starts from nothing. ``speedup``: the rate was timed on
    images that train that many times faster than the whole ones the probe timed (small crops);
    ``image_gain``: what small crops add to the images of the time left (:func:`small_crop_gain`)."""
    measured = {int(depth): rate for depth, rate in measured.items()}  # JSON keys are strings
    predicted = predict_throughput(measured, candidates)[chosen]
    timed = Recheck(chosen=chosen, observed=observed, predicted=predicted, choice=None, speedup=speedup)
    if abs(timed.ratio - 1.0) <= RECHECK_TOLERANCE:
        return timed
    corrected = {depth: rate * timed.ratio for depth, rate in measured.items()}
    return dataclasses.replace(timed, choice=choose_depth(corrected, train_examples, seconds_left, min_images,
                                                          candidates, head_start={chosen: images_seen},
                                                          image_gain=image_gain))
