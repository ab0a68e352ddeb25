"""The step learning-rate schedule, counted in steps or in wall-clock time.

The rate depends only on the *fraction of training done*: ``step / planned_steps``
in step mode, ``elapsed / budget`` in budget mode. ``learning_rate_at`` is the
whole rule; :class:`TrainingClock` says how far along a run is. Both are plain
Python so that the boundaries can be tested exactly, with an injected clock.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence


def learning_rate_at(fraction_done: float, initial: float, drop_fractions: Sequence[float],
                     drop_factors: Sequence[float], schedule: str = "step",
                     warmup_fraction: float = 0.0) -> float:
    """The learning rate of a step run when ``fraction_done`` of the training is done.

    ``step`` (the seed's rule): ``initial`` until the first drop fraction is reached,
    then ``initial * factor`` (``HParams.lr_drop_fractions``, ``lr_drop_factors``).
    A drop applies from the first step whose fraction done is at or past its
    boundary: with 100 planned steps, steps 0-49 use 0.1, 50-74 use 0.01, 75-99 use 0.001.

    ``linear``: ``initial * (1 - fraction_done)``, reaching 0 when the run ends.

    With ``warmup_fraction`` > 0 either rule is scaled by a ramp from 0.1 to 1 over
    that first fraction of the run.
    """
    if schedule == "linear":
        rate = initial * max(0.0, 1.0 - fraction_done)
    elif schedule == "step":
        rate = initial
        for boundary, factor in zip(drop_fractions, drop_factors):
            if fraction_done >= boundary:
                rate = initial * factor
    else:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    if warmup_fraction > 0 and fraction_done < warmup_fraction:
        rate *= 0.1 + 0.9 * fraction_done / warmup_fraction
    return rate


class TrainingClock:
    """How much of a run is done: by steps (``planned_steps``) or by time (``budget_seconds``).

    ``elapsed_before`` is time spent by earlier attempts of the same run (restored
    from a checkpoint), so a resumed budget run counts it. ``clock`` returns seconds.
    """

    def __init__(self, planned_steps: Optional[int] = None, budget_seconds: Optional[float] = None,
                 elapsed_before: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        if (planned_steps is None) == (budget_seconds is None):
            raise ValueError("give exactly one of planned_steps and budget_seconds")
        self.planned_steps = planned_steps
        self.budget_seconds = budget_seconds
        self.elapsed_before = elapsed_before
        self._clock = clock
        self._started = clock()

    @property
    def by_time(self) -> bool:
        return self.budget_seconds is not None

    def elapsed(self) -> float:
        """Seconds of training so far, earlier attempts included."""
        return self.elapsed_before + self._clock() - self._started

    def fraction_done(self, step: int) -> float:
        """Fraction of the run done before ``step`` (0-based) runs."""
        if self.by_time:
            return self.elapsed() / self.budget_seconds
        return step / self.planned_steps

    def finished(self, steps_done: int) -> bool:
        """True once the planned steps ran or the budget is spent."""
        if self.by_time:
            return self.elapsed() >= self.budget_seconds
        return steps_done >= self.planned_steps
