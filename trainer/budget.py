"""Which network a wall-clock budget can afford, from throughput measured on this machine.

A budget run that leaves its network's size open (``HParams.network_left_to_probe``) chooses it on a
:class:`Ladder`: the depth of a CIFAR ResNet-(6n+2) (:data:`RESNET_DEPTHS`), or the width of ResNet-9
(:data:`RESNET9_WIDTHS`) or of the airbench shape (:data:`AIRBENCH_WIDTHS`). It first times a few steps
of the ladder's two probe networks on the real input pipeline, fits seconds per image as a straight line
in the network's size (``Ladder.size``: n blocks per stage for a ResNet, since every block costs about
the same; width² for the others, since a convolution's work grows with the square of its filters; the
stem, head and input pipeline are the intercept) and then trains the largest candidate that still sees
enough training images in the time left (a run that starts on small crops sees more of them per
second: :func:`small_crop_gain`). "Enough" grows with the network: the ladder's reference network
needs ``min_images`` (``HParams.budget_min_images``, by default the dataset's for the architecture)
and any other candidate that times its value over the reference's (a ResNet-d needs d/20 of what
ResNet-20 does; ResNet-9 at width w needs w/2 of what width 2 does), since a bigger network is
better only if it gets proportionally more optimizer steps (measured: on Fashion-MNIST in 30
minutes, ResNet-56 seeing 0.75M images ended 0.6 points below ResNet-20 seeing 0.66M in 10). When
none does, the smallest candidate trains.

A probe shares the machine with whatever else runs during its ~45 s. So the run times its
own steady training once, early (:class:`~cifar_tfx.trainer.callbacks.ThroughputCheck`), and
:func:`recheck_network` compares that with the probe's prediction: when they differ by more than
:data:`RECHECK_TOLERANCE`, the probe's rates are scaled by the same factor (load slows every
network alike) and the choice is made again for the time left; a different answer restarts
training with that network. Everything here is plain Python;
:func:`cifar_tfx.trainer.train.measure_throughput` does the timing.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Dict, Mapping, Optional, Tuple

from cifar_tfx.trainer.hparams import width_network_name

RECHECK_TOLERANCE = 0.2  # steady training within +-20 % of the probe's prediction keeps the choice


@dataclasses.dataclass(frozen=True)
class Ladder:
    """The networks of one architecture a budget chooses among, by one size field of ``HParams``."""

    knob: str                         # the HParams field the choice sets: "depth" or "width"
    candidates: Tuple[int, ...]       # its values, smallest network first
    probes: Tuple[int, ...]           # the two values timed by the probe, smallest first
    reference: int                    # the candidate whose need is min_images
    size: Callable[[int], float]      # seconds per image is taken to be a straight line in this
    label: Callable[[int], str]       # what the logs call the network

    def images_needed(self, value: int, min_images: int) -> float:
        """Training images the ``value`` network should see to be worth choosing: min_images x value/reference."""
        return min_images * value / self.reference


# ResNet-(6n+2) by depth: n = 1 and n = 5 probed, far enough apart for the fit, cheap enough to time.
RESNET_DEPTHS = Ladder(knob="depth", candidates=(8, 14, 20, 32, 44, 56), probes=(8, 32), reference=20,
                       size=lambda depth: (depth - 2) // 6, label=lambda depth: f"ResNet-{depth}")
# ResNet-9 by width, both CPU widths probed. Width 2 needs the dataset's budget_min_images_resnet9; width 4
# (Myrtle's own 64/128/256/512) is for accelerators: on 2 CPU cores it is never affordable, and its need
# (twice width 2's, by the rule above) is not measured.
RESNET9_WIDTHS = Ladder(knob="width", candidates=(1, 2, 4), probes=(1, 2), reference=2,
                        size=lambda width: width * width, label=functools.partial(width_network_name, "resnet9"))
# The airbench shape by width; width 4 (airbench94's 64/256/256) is the reference: it needs the dataset's
# budget_min_images_airbench. Widths 2 and 4 probed; the fixed 24-filter stem is part of the intercept.
AIRBENCH_WIDTHS = Ladder(knob="width", candidates=(2, 3, 4), probes=(2, 4), reference=4,
                         size=lambda width: width * width, label=functools.partial(width_network_name, "airbench"))
LADDERS: Dict[str, Ladder] = {"resnet": RESNET_DEPTHS, "resnet9": RESNET9_WIDTHS, "airbench": AIRBENCH_WIDTHS}


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


@dataclasses.dataclass(frozen=True)
class NetworkChoice:
    """The chosen network (``value`` of ``ladder.knob``), what it rests on, and a one-line reason for the log."""

    ladder: Ladder
    value: int
    measured: Dict[int, float]       # probed value -> images/s timed by the probe
    predicted: Dict[int, float]      # candidate -> images/s from the fit
    images: Dict[int, float]         # candidate -> training images it would see in the time left
    min_images: int                  # what the ladder's reference network needs; see Ladder.images_needed
    train_examples: int
    seconds_left: float
    image_gain: float = 1.0          # images seen per whole-image image/s (small_crop_gain)

    @property
    def network(self) -> str:
        return self.ladder.label(self.value)

    def reason(self) -> str:
        ladder, label = self.ladder, self.ladder.label
        probed = ", ".join(f"{label(v)} {rate:,.0f} img/s" for v, rate in sorted(self.measured.items()))
        table = ", ".join(f"{label(v)} {self.images[v] / 1e6:.2f}M of "
                          f"{ladder.images_needed(v, self.min_images) / 1e6:.2f}M" for v in sorted(self.images))
        seen = self.images[self.value]
        why = ("the largest that sees what it needs" if seen >= ladder.images_needed(self.value, self.min_images)
               else "none sees what it needs: the smallest")
        crops = f" (small crops counted, x{self.image_gain:.2f})" if self.image_gain != 1.0 else ""
        minutes_left = max(self.seconds_left, 0.0) / 60    # a probe longer than the budget leaves none, not less
        return (f"probe: {probed}; images seen in the {minutes_left:.1f} min left{crops} of those needed "
                f"({label(ladder.reference)} {self.min_images / 1e6:.2f}M, scaled by {ladder.knob}): {table} "
                f"-> {self.network} ({why}; {seen / self.train_examples:.0f} epochs)")

    def to_json(self) -> Dict[str, object]:
        return {"knob": self.ladder.knob, "value": self.value, "network": self.network,
                "measured_images_per_second": self.measured, "predicted_images_per_second": self.predicted,
                "predicted_images_seen": self.images, "min_images": self.min_images,
                "seconds_left": self.seconds_left, "image_gain": self.image_gain, "reason": self.reason()}


def predict_throughput(measured: Mapping[int, float], ladder: Ladder = RESNET_DEPTHS) -> Dict[int, float]:
    """Images/s of each of ``ladder``'s candidates, from a least-squares line through seconds/image vs
    ``ladder.size``.

    Needs at least two measured values of different size. A fit that would give a non-positive
    cost (measurement noise) falls back to cost proportional to size + 1.
    """
    points = [(ladder.size(value), 1.0 / rate) for value, rate in measured.items() if rate > 0]
    if len({size for size, _ in points}) < 2:
        raise ValueError(f"need throughput of two different {ladder.knob}s, got {dict(measured)}")
    mean_size = sum(size for size, _ in points) / len(points)
    mean_cost = sum(cost for _, cost in points) / len(points)
    slope = (sum((size - mean_size) * (cost - mean_cost) for size, cost in points)
             / sum((size - mean_size) ** 2 for size, _ in points))
    intercept = mean_cost - slope * mean_size
    smallest = ladder.size(ladder.candidates[0])
    if slope <= 0 or intercept + slope * smallest <= 0:
        per_unit = mean_cost / (mean_size + 1)
        slope, intercept = per_unit, per_unit
    return {value: 1.0 / max(intercept + slope * ladder.size(value), 1e-9) for value in ladder.candidates}


def choose_network(measured: Mapping[int, float], train_examples: int, seconds_left: float, min_images: int,
                   ladder: Ladder = RESNET_DEPTHS, head_start: Optional[Mapping[int, float]] = None,
                   image_gain: float = 1.0) -> NetworkChoice:
    """The largest of ``ladder``'s candidates predicted to see the images it needs (``Ladder.images_needed``)
    in ``seconds_left``, counting the images a network has already trained on (``head_start``: a
    recheck's network) and ``image_gain`` images per image its whole-image rate predicts
    (:func:`small_crop_gain`)."""
    if train_examples < 1:
        raise ValueError("no training examples")
    predicted = predict_throughput(measured, ladder)
    images = {value: rate * image_gain * max(seconds_left, 0.0) + (head_start or {}).get(value, 0.0)
              for value, rate in predicted.items()}
    enough = [value for value in ladder.candidates if images[value] >= ladder.images_needed(value, min_images)]
    value = max(enough) if enough else min(ladder.candidates)
    return NetworkChoice(ladder=ladder, value=value, measured=dict(measured), predicted=predicted, images=images,
                         min_images=min_images, train_examples=train_examples, seconds_left=seconds_left,
                         image_gain=image_gain)


@dataclasses.dataclass(frozen=True)
class Recheck:
    """The probe's choice seen again from steady training throughput."""

    ladder: Ladder
    chosen: int                       # the value the probe chose and training started with
    observed: float                   # its steady images/s in training
    predicted: float                  # what the probe predicted for it, on whole images
    choice: Optional[NetworkChoice]   # the choice made again on corrected rates; None when within tolerance
    speedup: float = 1.0              # how much faster than whole images the timed phase trains (small crops)

    @property
    def ratio(self) -> float:
        """Observed over predicted, both counted in whole images."""
        return self.observed / self.speedup / self.predicted

    @property
    def value(self) -> int:
        """The value of ``ladder.knob`` to train from now on."""
        return self.choice.value if self.choice is not None else self.chosen

    @property
    def switched(self) -> bool:
        return self.value != self.chosen

    def reason(self) -> str:
        rate = f"{self.observed:,.0f} img/s"
        if self.speedup != 1.0:
            rate += (f" on small crops, {self.observed / self.speedup:,.0f} as whole images "
                     f"(the probe's x{self.speedup:.2f})")
        chosen, now = self.ladder.label(self.chosen), self.ladder.label(self.value)
        head = f"recheck: {chosen} trains at {rate}, the probe predicted {self.predicted:,.0f}"
        if self.choice is None:
            return f"{head} (within {RECHECK_TOLERANCE:.0%}): keeps {chosen}"
        verdict = f"still {chosen}" if not self.switched else f"restarting with {now}"
        return (f"{head}: the probe was off by x{self.ratio:.2f}; with every probed rate scaled by that, "
                f"{verdict} ({self.choice.reason()})")

    def to_json(self) -> Dict[str, object]:
        return {"chosen": self.chosen, "observed_images_per_second": self.observed, "observed_speedup": self.speedup,
                "predicted_images_per_second": self.predicted, "switched_to": self.value if self.switched else None,
                "switched_to_network": self.ladder.label(self.value) if self.switched else None,
                "reason": self.reason()}


def recheck_network(measured: Mapping[object, float], chosen: int, observed: float, train_examples: int,
                    seconds_left: float, min_images: int, images_seen: float = 0.0, ladder: Ladder = RESNET_DEPTHS,
                    speedup: float = 1.0, image_gain: float = 1.0) -> Recheck:
    """Compare the ``chosen`` network's steady ``observed`` images/s with the prediction from the probe's
    ``measured`` rates; beyond :data:`RECHECK_TOLERANCE`, choose again for the ``seconds_left`` with
    every measured rate scaled by observed/predicted. The ``chosen`` network keeps the ``images_seen``
    it has trained on; any other network starts from nothing. ``speedup``: the rate was timed on
    images that train that many times faster than the whole ones the probe timed (small crops);
    ``image_gain``: what small crops add to the images of the time left (:func:`small_crop_gain`)."""
    measured = {int(value): rate for value, rate in measured.items()}  # JSON keys are strings
    predicted = predict_throughput(measured, ladder)[chosen]
    timed = Recheck(ladder=ladder, chosen=chosen, observed=observed, predicted=predicted, choice=None,
                    speedup=speedup)
    if abs(timed.ratio - 1.0) <= RECHECK_TOLERANCE:
        return timed
    corrected = {value: rate * timed.ratio for value, rate in measured.items()}
    return dataclasses.replace(timed, choice=choose_network(corrected, train_examples, seconds_left, min_images,
                                                            ladder, head_start={chosen: images_seen},
                                                            image_gain=image_gain))
