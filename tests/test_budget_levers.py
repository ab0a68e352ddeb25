"""The lever benchmark's variant specs (``name:field=value,...`` becomes the HParams it trains) and its progress."""

import io

import pytest

from benchmarks.budget_levers import PrefixedLines, resolve_variant, variants
from cifar_tfx.data.datasets import get_dataset


@pytest.fixture(scope="module")
def table():
    return variants(10.0, get_dataset("cifar10"))


def test_overrides_of_every_kind_are_applied(table):
    hparams = resolve_variant("budget-d20:nesterov=on,learning_rate=0.4,batch_size=512,lr_schedule=step", table)
    assert (hparams.depth, hparams.nesterov, hparams.learning_rate, hparams.batch_size, hparams.lr_schedule) == \
        (20, True, 0.4, 512, "step")
    assert resolve_variant("budget-d20:zero_init_residual=off", table).zero_init_residual is False
    airbench = resolve_variant("budget-airbench:width=4,whitened_stem=on", table)
    assert (airbench.architecture, airbench.depth, airbench.width, airbench.whitened_stem) == ("airbench", None, 4, True)


@pytest.mark.parametrize("spec, message", [
    ("budget-d20:nesterov=true", "on or off"),
    ("budget-d20:no_such_field=1", "known HParams field"),
    ("no-such-variant", "unknown variant"),
])
def test_bad_specs_are_refused_naming_the_problem(table, spec, message):
    with pytest.raises(SystemExit, match=message):
        resolve_variant(spec, table)


def test_progress_lines_come_whole_and_prefixed_as_soon_as_they_end():
    terminal = io.StringIO()
    progress = PrefixedLines("  [budget-d20] ", terminal)
    progress.write("budget: training ResNet-20")
    assert terminal.getvalue() == ""  # half a line waits for its end
    progress.write(" (probe)\nstep 10/budget 0:10:00  ")
    progress.write("1,000 img/s\nstep 20")
    assert terminal.getvalue().splitlines() == ["  [budget-d20] budget: training ResNet-20 (probe)",
                                                "  [budget-d20] step 10/budget 0:10:00  1,000 img/s"]
