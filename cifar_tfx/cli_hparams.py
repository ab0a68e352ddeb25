"""Command-line options for the hyperparameters, derived from their declarations in ``HParams``.

Every field whose :class:`~cifar_tfx.trainer.hparams.Knob` says ``flag`` becomes
``--<name-with-dashes>``; its help shows the declared unit and bounds; a value is
parsed by the field's kind here (one ``error:`` line for ``nan`` in a whole-number
option) and checked against the bounds by ``HParams`` itself. Adding a field to
``HParams`` adds its option to ``run`` and ``kubeflow compile``.
"""

from __future__ import annotations

import argparse
from typing import Dict

from cifar_tfx.cli_common import BadArgumentError
from cifar_tfx.data.datasets import get_dataset
from cifar_tfx.trainer.hparams import GATE_FIELDS, SWITCH, Knob, knobs, value_kind


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _help(declared: Knob) -> str:
    bounds = ""
    if declared.low is not None:
        bounds = f" [{declared.low:g}, {declared.high:g}{' ' + declared.unit if declared.unit else ''}]"
    return (declared.help + bounds).replace("%", "%%")


def add_hparam_options(parser: argparse.ArgumentParser) -> None:
    """One option per declared hyperparameter, in two groups: training and the gate."""
    training = parser.add_argument_group("training (default: the profile's value)")
    gate = parser.add_argument_group("the gate (default: the profile's value)")
    for name, (field, declared) in knobs().items():
        if not declared.flag:
            continue
        kind = value_kind(field)
        choices = tuple(SWITCH) if kind is bool else (declared.choices or None)
        (gate if name in GATE_FIELDS else training).add_argument(
            option_name(name), dest=name, choices=choices, help=_help(declared),
            metavar=None if choices else kind.__name__.upper())


def overrides_from_args(args: argparse.Namespace) -> Dict[str, object]:
    """``{field: value}`` for every hyperparameter option given, parsed by the field's kind."""
    overrides: Dict[str, object] = {}
    for name, (field, declared) in knobs().items():
        text = getattr(args, name, None) if declared.flag else None
        if text is None:
            continue
        kind = value_kind(field)
        try:
            overrides[name] = SWITCH[text] if kind is bool else kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise BadArgumentError(f"{option_name(name)} must be {what}, got {text!r}") from None
    return overrides


def hparams_from_args(args: argparse.Namespace):
    """The ``--profile`` hyperparameters (default: ``budget`` with a time budget, else ``demo``),
    as they run on ``--dataset``, with every given option applied."""
    from cifar_tfx.trainer.hparams import profile_for_dataset, with_overrides

    profile = args.profile or ("budget" if args.time_budget_minutes is not None else "demo")
    try:
        return with_overrides(profile_for_dataset(profile, get_dataset(args.dataset)), **overrides_from_args(args))
    except ValueError as err:
        raise BadArgumentError(str(err)) from err
