"""Every training hyperparameter in one place, with named profiles.

Values come from the recipe (He et al. 2015 §4.2;
DeVries & Taylor 2017 for cutout) unless a comment says otherwise. Profiles are
instances, not flags: ``demo`` is a small, fast run for laptops and CI;
``full`` is the paper's run; ``budget`` gets the most out of a wall-clock budget
(depth chosen on the machine, linear decay, label smoothing, test-time flip). ``cifar-tfx run --depth ... --epochs ...`` overrides
single fields with :func:`with_overrides`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from cifar_tfx.data.errors import UnknownNameError

if TYPE_CHECKING:
    from cifar_tfx.data.datasets import DatasetSpec

GATE_FIELDS = ("min_accuracy", "max_regression", "max_serving_latency_ms")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("step", "linear")
SWITCHES = ("auto", "on", "off")


@dataclasses.dataclass(frozen=True)
class HParams:
    """Hyperparameters of one training run (and the Evaluator's gate)."""

    # --- network (He et al. 2015 §4.2) ---
    depth: Optional[int] = 56            # 6n+2 layers: 20, 32, 44, 56, 110 (n = 3, 5, 7, 9, 18);
                                         # None: a budget run picks it from measured throughput (trainer/budget.py)
    weight_decay: float = 1e-4           # L2 on conv kernels
    # --- optimisation ---
    batch_size: int = 128                # images per step (global, over all replicas)
    learning_rate: float = 0.1           # initial SGD learning rate
    momentum: float = 0.9
    lr_drop_fractions: Tuple[float, float] = (0.5, 0.75)   # of planned steps or of the time budget
    lr_drop_factors: Tuple[float, float] = (0.1, 0.01)     # multipliers of learning_rate after each drop
    lr_schedule: str = "step"            # "step": the drops above (the seed's rule); "linear": decay to 0 at the end
    warmup_fraction: float = 0.0         # of the run: the rate ramps from 10 % to 100 % over it (0: no warm-up)
    label_smoothing: float = 0.0         # of the one-hot target spread over all classes (0: plain cross-entropy)
    # --- length: epochs (or steps), or a wall-clock budget ---
    epochs: Optional[float] = 164.0      # 64k iterations x 128 / 50k images ≈ 164 epochs
    train_steps: Optional[int] = None    # overrides epochs when set
    time_budget_minutes: Optional[float] = None  # when set, training is counted in wall-clock time
    budget_min_images: Optional[int] = None  # depth=None: images ResNet-20 must see in the budget (deeper
                                         # networks need it x depth/20, trainer/budget.py); None: the dataset's
    # --- augmentation (training split only) ---
    crop_padding: int = 4                # pixels of zero padding before the random crop
    flip: bool = True                    # random horizontal flip
    cutout_size: int = 16                # side of the square zeroed per image; 0 disables
    shuffle_buffer: int = 10_000         # examples
    test_time_flip: bool = False         # served (and gated) prediction averages the image and its mirror
    # --- runtime ---
    precision: str = "auto"              # auto: mixed_float16 on GPU; mixed_bfloat16 on CPUs with bf16, else float32
    xla: str = "auto"                    # auto: on with GPUs (4-5x slower on this CPU), off otherwise
    distribute: str = "auto"             # auto: MirroredStrategy over >1 visible GPU
    log_every_seconds: float = 5.0       # progress lines
    # --- Evaluator gate ---
    min_accuracy: float = 0.93           # recipe: ResNet-56 reaches 93.0-93.6 %
    max_regression: float = 0.005        # allowed accuracy drop versus the last blessed model
    max_serving_latency_ms: float = 5000.0  # serving check: slowest warm warm-up request (batch <= 8), CPU-sized

    def __post_init__(self) -> None:
        """Refuse any value that would waste a run, naming the field (the CLI turns this into exit 2)."""
        def positive(name: str, value: float) -> None:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")

        def within(name: str, value: float, low: float, high: float) -> None:
            if not (isinstance(value, (int, float)) and low <= value <= high):
                raise ValueError(f"{name} must be within [{low:g}, {high:g}], got {value!r}")

        if self.depth is None:
            if self.time_budget_minutes is None:
                raise ValueError("depth can be left to the trainer only in a time-budgeted run")
        elif not isinstance(self.depth, int) or self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {self.depth}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {self.batch_size!r}")
        positive("learning_rate", self.learning_rate)
        within("momentum", self.momentum, 0.0, 0.999)
        within("weight_decay", self.weight_decay, 0.0, 1.0)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}")
        if self.xla not in SWITCHES or self.distribute not in SWITCHES:
            raise ValueError(f"xla and distribute must be one of {SWITCHES}")
        if self.time_budget_minutes is None and self.epochs is None and self.train_steps is None:
            raise ValueError("set epochs, train_steps or time_budget_minutes")
        if self.epochs is not None:
            positive("epochs", self.epochs)
        if self.train_steps is not None and (not isinstance(self.train_steps, int) or self.train_steps < 1):
            raise ValueError(f"train_steps must be a whole number >= 1, got {self.train_steps!r}")
        if self.time_budget_minutes is not None:
            positive("time_budget_minutes", self.time_budget_minutes)
        fractions, factors = tuple(self.lr_drop_fractions), tuple(self.lr_drop_factors)
        if len(fractions) != len(factors) or list(fractions) != sorted(set(fractions)) \
                or not all(0 < f < 1 for f in fractions) or not all(0 < f <= 1 for f in factors):
            raise ValueError("lr_drop_fractions must rise within (0, 1), one factor in (0, 1] for each")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        within("warmup_fraction", self.warmup_fraction, 0.0, 0.5)
        within("label_smoothing", self.label_smoothing, 0.0, 0.5)
        if self.budget_min_images is not None and (not isinstance(self.budget_min_images, int)
                                                   or self.budget_min_images < 1):
            raise ValueError(f"budget_min_images must be a whole number >= 1, got {self.budget_min_images!r}")
        if not isinstance(self.cutout_size, int) or not isinstance(self.crop_padding, int) \
                or self.cutout_size < 0 or self.crop_padding < 0:
            raise ValueError("cutout_size and crop_padding must be whole numbers >= 0")
        if self.shuffle_buffer < 1:
            raise ValueError("shuffle_buffer must be >= 1")
        if not (isinstance(self.log_every_seconds, (int, float)) and 0 <= self.log_every_seconds < math.inf):
            raise ValueError(f"log_every_seconds must be a finite number >= 0 (0: every step), "
                             f"got {self.log_every_seconds!r}")
        within("min_accuracy", self.min_accuracy, 0.0, 1.0)
        within("max_regression", self.max_regression, 0.0, 1.0)
        positive("max_serving_latency_ms", self.max_serving_latency_ms)

    def check_fits(self, height: int, width: int) -> None:
        """Refuse augmentation that does not fit an image of ``height`` x ``width`` pixels."""
        if self.cutout_size > min(height, width):
            raise ValueError(f"cutout_size {self.cutout_size} is larger than the {height}x{width} images")
        if self.crop_padding > min(height, width) // 2:
            raise ValueError(f"crop_padding {self.crop_padding} is more than half the {height}x{width} images")

    def planned_steps(self, train_examples: int) -> Optional[int]:
        """Steps of an epoch/step-counted run; ``None`` for a budget-counted run."""
        if self.time_budget_minutes is not None:
            return None
        if self.train_steps is not None:
            return self.train_steps
        return max(1, int(round(self.epochs * train_examples / self.batch_size)))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def training_key(self) -> str:
        """JSON of the fields that change what is trained (the gate's bounds excluded)."""
        values = dataclasses.asdict(self)
        for gate_field in GATE_FIELDS:
            values.pop(gate_field)
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "HParams":
        """Inverse of :meth:`to_json` (and of :meth:`training_key`, gate fields defaulted)."""
        values = json.loads(text)
        values["lr_drop_fractions"] = tuple(values["lr_drop_fractions"])
        values["lr_drop_factors"] = tuple(values["lr_drop_factors"])
        return cls(**values)


FULL = HParams()  # the paper's ResNet-56 run, with cutout

DEMO = HParams(
    depth=8,                 # ResNet-8: the smallest 6n+2 network, ~1 minute on 2 CPU cores
    epochs=12.0,             # of the 5,000-image synthetic set: ~470 steps at batch 128
    batch_size=128,
    cutout_size=8,           # the synthetic shapes are small; a 16x16 square often hides them
    shuffle_buffer=5_000,
    min_accuracy=0.80,       # what the synthetic data promises (`data synth`)
    log_every_seconds=5.0,
)

BUDGET = HParams(  # "the best model in N minutes"; each lever measured in BENCHMARKS.md ("Budget levers")
    depth=None,              # the deepest 6n+2 network that sees the images it needs in the time left after
                             # the probe (DatasetSpec.budget_min_images x depth/20; trainer/budget.py)
    epochs=None,
    time_budget_minutes=30.0,
    lr_schedule="linear",    # +1.8 points over the step rule in 3 min (ResNet-14, Fashion-MNIST)
    warmup_fraction=0.02,    # a cheap guard for the first steps at the full rate (not measured on its own)
    label_smoothing=0.0,     # 0.1 measured: no gain (-0.2 / +0.0 points, within noise)
    test_time_flip=True,     # +0.15 to +0.3 points for twice the network per served image
    # cutout_size and weight_decay: the dataset's (DatasetSpec.budget_cutout_size, budget_weight_decay)
    # through profile_for_dataset: cutout 16 for CIFAR-10, 8 for Fashion-MNIST (+1.3 points in 3 min);
    # weight decay 5e-4 for CIFAR-10 (+2.0 points in 10 min), 1e-4 for Fashion-MNIST
    min_accuracy=0.80,       # 30 min on 2 CPU cores: CIFAR-10 20k-image set and Fashion-MNIST both clear it
)

PROFILES: Dict[str, HParams] = {"demo": DEMO, "full": FULL, "budget": BUDGET}


def get_profile(name: str) -> HParams:
    """The named profile, or ``KeyError`` listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownNameError(f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}") from None


def profile_for_dataset(name: str, dataset: "DatasetSpec") -> HParams:
    """The named profile as it runs on ``dataset``: the budget profile takes the dataset's cutout
    and weight decay (``DatasetSpec.budget_cutout_size``, ``budget_weight_decay``); the others keep
    their own."""
    profile = get_profile(name)
    if profile is not BUDGET:
        return profile
    return dataclasses.replace(profile, cutout_size=dataset.budget_cutout_size,
                               weight_decay=dataset.budget_weight_decay)


def with_overrides(base: HParams, **overrides: object) -> HParams:
    """``base`` with the non-``None`` overrides applied.

    A budget replaces the base's epochs/steps and epochs or steps replace its budget;
    given both, the budget counts.
    """
    values = {key: value for key, value in overrides.items() if value is not None}
    if "time_budget_minutes" in values:
        values.setdefault("epochs", None)
        values.setdefault("train_steps", None)
    if "epochs" in values:
        values.setdefault("train_steps", None)
    if "epochs" in values or "train_steps" in values:
        values.setdefault("time_budget_minutes", None)  # asked for epochs or steps: counted in them
    return dataclasses.replace(base, **values)


def with_training_length(base: HParams, epochs: float = 0.0, minutes: float = 0.0) -> HParams:
    """``base`` trained for ``minutes`` of wall-clock time if > 0, else ``epochs`` if > 0, else as is.

    The form in which a training length arrives as a pipeline parameter (Kubeflow):
    two numbers whose 0 means "the profile's value".
    """
    for name, value in (("epochs", epochs), ("minutes", minutes)):
        if not (value >= 0 and value < float("inf")):  # also refuses NaN
            raise ValueError(f"training length: {name} must be a finite number >= 0, got {value}")
    if minutes > 0:
        return with_overrides(base, time_budget_minutes=float(minutes))
    if epochs > 0:
        if base.depth is None:
            raise ValueError("training length: this profile picks its depth from a time budget; "
                             "give minutes, or compile with --depth to count in epochs")
        return dataclasses.replace(base, epochs=float(epochs), train_steps=None, time_budget_minutes=None)
    return base
