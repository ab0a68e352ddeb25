"""Every training hyperparameter and the gate's bounds, each declared once, with named profiles.

Each ``HParams`` field is declared with :func:`knob`: default, help, unit, bounds, and whether it is
a command-line option and a Kubeflow run-time parameter. The options of ``run`` and ``kubeflow
compile`` (``cifar_tfx/cli_hparams.py``), the bounds every value is checked against, the Kubeflow
parameters (``kubeflow/compiler.py``, folded back by :func:`with_run_values`) and the report's table
are derived from these declarations.

Values come from the recipe (He et al. 2015 §4.2; DeVries & Taylor 2017 for cutout) unless a comment
says otherwise. Profiles are instances, not flags: ``demo`` is a small, fast run for laptops and CI;
``full`` is the paper's run; ``budget`` gets the most out of a wall-clock budget (depth chosen on the
machine, linear decay, test-time flip). :func:`with_overrides` applies single fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Tuple

from cifar_tfx.data.errors import UnknownNameError

if TYPE_CHECKING:
    from cifar_tfx.data.datasets import DatasetSpec

GATE_FIELDS = ("min_accuracy", "max_regression", "min_class_accuracy", "max_serving_latency_ms")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("step", "linear")
SWITCHES = ("auto", "on", "off")
SWITCH = {"on": True, "off": False}  # a true/false field as the command line and Kubeflow parameters write it
ARCHITECTURES = ("resnet", "resnet9", "airbench")
WIDTH_FAMILIES = {"resnet9": "ResNet-9", "airbench": "Airbench"}  # architectures sized by width, no depth
WIDTH_ARCHITECTURES = tuple(WIDTH_FAMILIES)


def width_network_name(architecture: str, width: int) -> str:
    """What the logs call a width-sized network: ``ResNet-9``, ``ResNet-9 x2``, ``Airbench x4``."""
    family = WIDTH_FAMILIES[architecture]
    return family if width == 1 else f"{family} x{width}"


@dataclasses.dataclass(frozen=True)
class Knob:
    """The declaration of one hyperparameter beyond its type and default.

    Everything else is derived from it: the command-line option ``--<name-with-dashes>``
    (``cli_options.py``), the bounds checked for every value (``HParams.__post_init__``),
    the Kubeflow run-time parameters (``run_parameter``) and the report's table.
    """

    help: str
    low: Optional[float] = None      # inclusive bounds of a number
    high: Optional[float] = None
    choices: Tuple[str, ...] = ()    # allowed strings
    flag: bool = True                # offered on the command line (run and kubeflow compile)
    run_parameter: bool = False      # a Kubeflow run-time parameter, its default the compiled value
    unit: str = ""


def knob(default: object, help: str, **declaration: object):
    """A dataclass field with its :class:`Knob`."""
    return dataclasses.field(default=default, metadata={"knob": Knob(help=help, **declaration)})


def knobs() -> Dict[str, Tuple[dataclasses.Field, Knob]]:
    """``{field name: (field, Knob)}`` in declaration order."""
    return {field.name: (field, field.metadata["knob"]) for field in dataclasses.fields(HParams)}


def value_kind(field: dataclasses.Field) -> type:
    """``int``, ``float``, ``bool``, ``str`` or ``tuple``: what a field holds when it is set."""
    text = str(field.type)  # an annotation string: "Optional[int]", "Tuple[float, float]", ...
    if text.startswith("Tuple"):
        return tuple
    for kind in (bool, int, float, str):
        if re.search(rf"\b{kind.__name__}\b", text):
            return kind
    raise TypeError(f"{field.name}: no kind for {text}")


@dataclasses.dataclass(frozen=True)
class HParams:
    """Hyperparameters of one training run and the Evaluator's gate: one declaration each."""

    # --- network (He et al. 2015 §4.2) ---
    architecture: str = knob(
        "resnet", "resnet: the recipe's CIFAR ResNet-(6n+2), see depth; resnet9: Myrtle's ResNet-9 (a conv-pool "
        "network with two residual blocks, 16/32/64/128 filters x width, no depth to choose); airbench: airbench94's "
        "shape (a 24-filter stem, three conv-pool-conv stages of 16/64/64 filters x width, no shortcuts); both "
        "outside the recipe",
        choices=ARCHITECTURES, run_parameter=True)
    depth: Optional[int] = knob(
        56, "ResNet depth 6n+2 (20, 32, 44, 56, 110); a budgeted run picks one from measured throughput "
        "when none is given (0 as a Kubeflow parameter)", low=8, high=1202, run_parameter=True, unit="layers")
    width: Optional[int] = knob(
        1, "filters per stage x this (recipe 1: 16/32/64; 2: 32/64/128, four times the weights; ResNet-8 at 2 "
        "trains about as fast as ResNet-20 at 1); a budgeted ResNet-9 run picks one from measured throughput "
        "when none is given (0 as a Kubeflow parameter)", low=1, high=8, run_parameter=True)
    whitened_stem: bool = knob(False, "fix the stem's filters to whiten 3x3 patches of the training images, "
                               "not trained (airbench's patch whitening)", run_parameter=True)
    zero_init_residual: bool = knob(False, "start each block's last BatchNorm scale at 0, so every block "
                                    "begins as its shortcut (Goyal et al. 2017; no gain at 10 min here: off)",
                                    run_parameter=True)
    weight_decay: float = knob(1e-4, "L2 penalty on conv kernels (recipe 1e-4; the budget profile takes the "
                               "dataset's: 5e-4 for CIFAR-10)", low=0.0, high=1.0,
                               run_parameter=True)
    # --- optimisation ---
    batch_size: int = knob(128, "images per step, over all replicas", low=1, high=8192, run_parameter=True,
                           unit="images")
    learning_rate: float = knob(0.1, "initial SGD learning rate", low=1e-6, high=10.0, run_parameter=True)
    momentum: float = knob(0.9, "SGD momentum", low=0.0, high=0.999, run_parameter=True)
    nesterov: bool = knob(False, "Nesterov momentum (airbench uses it; +0.16 points at 10 min here, within "
                          "noise: off in every profile)", run_parameter=True)
    lr_drop_fractions: Tuple[float, float] = knob(
        (0.5, 0.75), "step schedule: drops at these fractions of the planned steps or of the budget", flag=False)
    lr_drop_factors: Tuple[float, float] = knob(
        (0.1, 0.01), "step schedule: learning_rate multiplied by these after each drop", flag=False)
    lr_schedule: str = knob("step", "step: drops at 1/2 and 3/4 (the paper's); linear: decay to 0 at the end",
                            choices=LR_SCHEDULES, run_parameter=True)
    warmup_fraction: float = knob(0.0, "fraction of the run over which the rate ramps from 10 % to 100 %",
                                  low=0.0, high=0.5, run_parameter=True)
    label_smoothing: float = knob(0.0, "target mass spread over all classes (0: plain cross-entropy)",
                                  low=0.0, high=0.5, run_parameter=True)
    # --- length: epochs (or steps), or a wall-clock budget; 0 as a Kubeflow parameter keeps the compiled one ---
    epochs: Optional[float] = knob(164.0, "training epochs (64k iterations x 128 / 50k images ≈ 164)",
                                   low=1e-3, high=10_000.0, run_parameter=True, unit="epochs")
    train_steps: Optional[int] = knob(None, "training steps instead of epochs", low=1, high=100_000_000,
                                      unit="steps")
    time_budget_minutes: Optional[float] = knob(
        None, "train for this wall-clock time instead; the schedule counts in time (a budget wins over epochs)",
        low=0.01, high=7 * 24 * 60.0, run_parameter=True, unit="minutes")
    budget_min_images: Optional[int] = knob(
        None, "images the reference network must see in a budget whose network is left open (ResNet-20, "
        "ResNet-9 x2; others need it scaled, trainer/budget.py); unset: the dataset's", low=1,
        high=10_000_000_000, flag=False, unit="images")
    # --- augmentation (training split only) ---
    crop_padding: int = knob(4, "zero padding before the random crop", low=0, high=16, run_parameter=True,
                             unit="pixels")
    flip: bool = knob(True, "random horizontal flip", run_parameter=True)
    cutout_size: int = knob(16, "side of the square zeroed per image; 0 disables", low=0, high=64,
                            run_parameter=True, unit="pixels")
    small_crop_fraction: float = knob(
        0.0, "train the first fraction of the run on random small_crop_size windows of the augmented images "
        "(cheaper steps, so more of them), then on whole images (0: whole images throughout)", low=0.0, high=0.9,
        run_parameter=True)
    small_crop_size: int = knob(24, "side of those windows", low=4, high=64, run_parameter=True, unit="pixels")
    shuffle_buffer: int = knob(10_000, "examples in the shuffle buffer", low=1, high=10_000_000,
                               unit="examples")
    test_time_flip: bool = knob(False, "serve (and gate) the mean prediction of the image and its mirror",
                                run_parameter=True)
    test_time_shift: int = knob(0, "also average over the image moved this many pixels down-right and up-left "
                                "(0: off); each view costs one more pass of the network", low=0, high=8,
                                run_parameter=True, unit="pixels")
    # --- runtime ---
    precision: str = knob("auto", "auto: mixed_float16 on GPU, mixed_bfloat16 on CPUs with bf16, else float32",
                          choices=PRECISIONS)
    xla: str = knob("auto", "XLA-compile the train step; auto: on with GPUs (4-5x slower on CPUs here)",
                    choices=SWITCHES)
    distribute: str = knob("auto", "MirroredStrategy; auto: over more than one visible GPU", choices=SWITCHES)
    log_every_seconds: float = knob(5.0, "seconds between progress lines (0: every step)", low=0.0,
                                    high=3600.0, unit="seconds")
    # --- the gate (GATE_FIELDS: the Evaluator and the Pusher apply them; they never change what is trained) ---
    min_accuracy: float = knob(0.93, "bless only at or above this test accuracy (recipe: ResNet-56 reaches "
                               "93.0-93.6 %)", low=0.0, high=1.0, run_parameter=True)
    max_regression: float = knob(0.005, "bless only if accuracy is at most this much below the last blessed "
                                 "model's", low=0.0, high=1.0, run_parameter=True)
    min_class_accuracy: float = knob(0.0, "bless only if every class reaches this test accuracy (0: no "
                                     "per-class bound)", low=0.0, high=1.0, run_parameter=True)
    max_serving_latency_ms: float = knob(5000.0, "serving check: slowest warm warm-up request (batch <= 8), "
                                         "CPU-sized", low=1.0, high=600_000.0, unit="ms")

    def __post_init__(self) -> None:
        """Refuse any value that would waste a run, naming the field (the CLI turns this into exit 2)."""
        for name, (field, declared) in knobs().items():
            check_value(name, getattr(self, name), value_kind(field), declared)
        if self.architecture != "resnet":
            if self.depth is not None:
                raise ValueError(f"depth is for the resnet architecture; {self.architecture} has none, "
                                 f"got depth {self.depth}")
        elif self.depth is None:
            if self.time_budget_minutes is None:
                raise ValueError("depth can be left to the trainer only in a time-budgeted run")
        elif (self.depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {self.depth}")
        if self.zero_init_residual and self.architecture == "airbench":
            raise ValueError("zero_init_residual is for networks with residual blocks; airbench has none")
        if self.width is None:
            if self.architecture not in WIDTH_ARCHITECTURES or self.time_budget_minutes is None:
                raise ValueError("width can be left to the trainer only in a time-budgeted resnet9 or airbench run")
        if self.time_budget_minutes is None and self.epochs is None and self.train_steps is None:
            raise ValueError("set epochs, train_steps or time_budget_minutes")
        fractions, factors = tuple(self.lr_drop_fractions), tuple(self.lr_drop_factors)
        if len(fractions) != len(factors) or list(fractions) != sorted(set(fractions)) \
                or not all(0 < f < 1 for f in fractions) or not all(0 < f <= 1 for f in factors):
            raise ValueError("lr_drop_fractions must rise within (0, 1), one factor in (0, 1] for each")

    @property
    def network_name(self) -> str:
        """What the logs and the report call the network: ``ResNet-20``, ``ResNet-9``, ``ResNet-9 x2``."""
        if self.network_left_to_probe:
            family = WIDTH_FAMILIES.get(self.architecture, "ResNet")
            return f"{family} ({self.size_knob} left to the budget)"
        if self.architecture in WIDTH_ARCHITECTURES:
            return width_network_name(self.architecture, self.width)
        return f"ResNet-{self.depth}"

    @property
    def size_knob(self) -> str:
        """The field that sizes this architecture's network, the one a budget run may leave open."""
        return "width" if self.architecture in WIDTH_ARCHITECTURES else "depth"

    @property
    def network_left_to_probe(self) -> bool:
        """A budget run without its network's size (depth of a resnet, width of a resnet9): the Trainer
        measures and chooses one."""
        return getattr(self, self.size_knob) is None

    def check_fits(self, height: int, width: int) -> None:
        """Refuse augmentation that does not fit an image of ``height`` x ``width`` pixels."""
        if self.cutout_size > min(height, width):
            raise ValueError(f"cutout_size {self.cutout_size} is larger than the {height}x{width} images")
        if self.small_crop_fraction and self.small_crop_size >= min(height, width):
            raise ValueError(f"small_crop_size {self.small_crop_size} is not smaller than the {height}x{width} images")
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
        return json.dumps(self.training_values(), sort_keys=True)

    def training_values(self) -> Dict[str, object]:
        """The fields that change what is trained, by name (what the Trainer records)."""
        values = dataclasses.asdict(self)
        for gate_field in GATE_FIELDS:
            values.pop(gate_field)
        return values

    @classmethod
    def from_json(cls, text: str) -> "HParams":
        """Inverse of :meth:`to_json`; of :meth:`training_key` with the gate's fields at their defaults
        (the Trainer does not apply them: what the Evaluator applied is in its ``gate.json``)."""
        values = json.loads(text)
        values["lr_drop_fractions"] = tuple(values["lr_drop_fractions"])
        values["lr_drop_factors"] = tuple(values["lr_drop_factors"])
        return cls(**values)


def check_value(name: str, value: object, kind: type, declared: Knob) -> None:
    """Refuse a value of the wrong kind, outside the declared bounds or choices (``None`` is "unset")."""
    if value is None or kind is tuple:
        return
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return
    if kind is str:
        if declared.choices and value not in declared.choices:
            raise ValueError(f"{name} must be one of {', '.join(declared.choices)}, got {value!r}")
        return
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (declared.low is not None and value < declared.low) or (declared.high is not None and value > declared.high):
        raise ValueError(f"{name} must be within [{declared.low:g}, {declared.high:g}], got {value!r}")


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

BUDGET = HParams(  # "the best model in N minutes"; each lever measured in BENCHMARKS.md ("Budget profile: design measurements")
    depth=None,              # the largest network that sees the images it needs in the time left after the
                             # probe: the deepest 6n+2 ResNet, or for a dataset whose budget architecture is
                             # resnet9 (CIFAR-10) the widest ResNet-9 (profile_for_dataset; trainer/budget.py)
    epochs=None,
    time_budget_minutes=30.0,
    lr_schedule="linear",    # +1.8 points over the step rule in 3 min (ResNet-14, Fashion-MNIST)
    warmup_fraction=0.02,    # a cheap guard for the first steps at the full rate (not measured on its own)
    label_smoothing=0.0,     # 0.1 measured: no gain (-0.2 / +0.0 points, within noise)
    test_time_flip=True,     # +0.15 to +0.3 points for twice the network per served image
    # cutout_size, weight_decay, batch_size with learning_rate, test_time_shift: the dataset's
    # (DatasetSpec.budget_*) through profile_for_dataset: cutout 8 (the recipe's 16 cost 1.3-1.5 points in
    # 3 and 10 min); weight decay 5e-4 for CIFAR-10 (+2.0 points in 10 min), 1e-4 for
    # Fashion-MNIST; batch 256 at 0.2 (+0.8) and a 2-pixel test-time shift (+0.5) for CIFAR-10,
    # 128 at 0.1 and none for Fashion-MNIST; the first half on 24x24 crops for CIFAR-10, none for Fashion-MNIST;
    # a fixed patch-whitening stem for CIFAR-10 (+0.45 in 30 min), a learned one for Fashion-MNIST
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
    """The named profile as it runs on ``dataset``: the budget profile takes the dataset's architecture (its
    network's size left open), cutout, weight decay, batch size with its learning rate, test-time shift,
    small-crop fraction and stem (``DatasetSpec.budget_*``, each with its measurement); the others keep their own."""
    profile = get_profile(name)
    if profile is not BUDGET:
        return profile
    profile = with_overrides(profile, architecture=dataset.budget_architecture)
    return dataclasses.replace(profile, cutout_size=dataset.budget_cutout_size,
                               weight_decay=dataset.budget_weight_decay, batch_size=dataset.budget_batch_size,
                               learning_rate=dataset.budget_learning_rate,
                               test_time_shift=dataset.budget_test_time_shift,
                               small_crop_fraction=dataset.budget_small_crop_fraction,
                               whitened_stem=dataset.budget_whitened_stem)


def with_overrides(base: HParams, **overrides: object) -> HParams:
    """``base`` with the non-``None`` overrides applied.

    A budget replaces the base's epochs/steps and epochs or steps replace its budget;
    given both, the budget counts. Another architecture drops the base's size (a resnet's depth, a resnet9's
    width) unless given: left open if the base left its own open, else the new architecture's default.
    """
    values = {key: value for key, value in overrides.items() if value is not None}
    if "depth" in values:
        values.setdefault("architecture", "resnet")  # only a resnet has a depth
    architecture = values.get("architecture", base.architecture)
    if architecture != base.architecture:
        size_open = base.network_left_to_probe
        if architecture in WIDTH_ARCHITECTURES:
            values.setdefault("depth", None)  # the profile's depth belongs to the resnet architecture
            values.setdefault("width", None if size_open else (base.width or 1))
        else:
            values.setdefault("width", base.width or 1)
            if not size_open and base.depth is None:
                values.setdefault("depth", HParams().depth)
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
        if base.network_left_to_probe:
            raise ValueError(f"training length: this profile picks its {base.size_knob} from a time budget; "
                             f"give minutes, or compile with --{base.size_knob} to count in epochs")
        return dataclasses.replace(base, epochs=float(epochs), train_steps=None, time_budget_minutes=None)
    return base


def run_parameter_fields() -> Tuple[str, ...]:
    """The fields a Kubeflow run may set (``Knob.run_parameter``), in declaration order."""
    return tuple(name for name, (_, declared) in knobs().items() if declared.run_parameter)


def training_run_fields() -> Tuple[str, ...]:
    """The run parameters the Trainer folds in (:func:`with_run_values`); the gate's are the Evaluator's."""
    return tuple(name for name in run_parameter_fields() if name not in GATE_FIELDS)


def run_parameter_kind(name: str) -> type:
    """The type run parameter ``name`` has in a pipeline: its field's kind, but ``str`` for a true/false
    field, written ``on`` / ``off`` (TFX 1.16.0's ``RuntimeParameter`` takes only int, float and str:
    tfx/orchestration/data_types.py at tag v1.16.0, the release setup.py pins)."""
    kind = value_kind(knobs()[name][0])
    return str if kind is bool else kind


def check_run_parameter(name: str, value: object) -> None:
    """Refuse a run's value for run parameter ``name`` as its declaration would (``ValueError``); 0 for a
    field the profile may leave unset means "the compiled value" (:func:`with_run_values`)."""
    field, declared = knobs()[name]
    kind = value_kind(field)
    if str(field.type).startswith("Optional") and value == 0:
        return
    if kind is bool:
        if value not in SWITCH:
            raise ValueError(f"{name} must be {' or '.join(SWITCH)}, got {value!r}")
        return
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    check_value(name, value, kind, declared)


def run_parameter_value(hparams: HParams, name: str) -> object:
    """How ``hparams.<name>`` travels as a run parameter: an unset value (``None``) as 0 of its kind,
    which :func:`with_run_values` reads as "the compiled value"; true / false as ``on`` / ``off``."""
    field, _ = knobs()[name]
    value = getattr(hparams, name)
    if isinstance(value, bool):
        return "on" if value else "off"
    return value_kind(field)(0) if value is None else value


def with_run_values(base: HParams, values: Mapping[str, object]) -> HParams:
    """``base`` with the training values a Kubeflow run set (gate fields are the Evaluator's).

    A run passes every parameter, most at their defaults, the compiled values; those change nothing, so
    only the values that differ from ``base``'s are applied, as :func:`with_overrides` applies options
    (a depth alone makes the network a resnet; another architecture drops the compiled one's size).
    0 for a field the profile may leave unset (depth, width, epochs, time budget) keeps ``base``'s;
    the length follows :func:`with_training_length` (a budget wins over epochs). True / false fields
    arrive as ``on`` / ``off`` (:func:`run_parameter_kind`).
    """
    values = {name: value for name, value in values.items() if name not in GATE_FIELDS}
    unknown = set(values) - set(run_parameter_fields())
    if unknown:
        raise ValueError(f"not run parameters: {sorted(unknown)}")
    for name, value in values.items():
        check_run_parameter(name, value)
    epochs = float(values.pop("epochs", 0.0) or 0.0)
    minutes = float(values.pop("time_budget_minutes", 0.0) or 0.0)
    values = {name: SWITCH[value] if value_kind(knobs()[name][0]) is bool else value
              for name, value in values.items() if value != run_parameter_value(base, name)}
    for size in ("depth", "width"):
        if values.get(size) == 0:
            values.pop(size)
    return with_training_length(with_overrides(base, **values), epochs=epochs, minutes=minutes)
