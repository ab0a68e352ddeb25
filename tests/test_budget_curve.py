"""benchmarks/budget_curve.py: what it reads from a run, how points merge, and its picture."""

import json

import pytest

from benchmarks.budget_curve import markdown, merged, parse_point, plot, read_run_output

RUN_OUTPUT = """\
pipeline cifar10-resnet finished; ML Metadata: runs/root/metadata.sqlite
trained ResNet-20: 13,463 steps in 29.2 min, 974 img/s; the budget chose it (probe: ...)
report: runs/root/report.html
pushed: cifar10 version 1 -> runs/serving/cifar10/1 (test accuracy 0.8798)
"""


def _row(profile, minutes, accuracy, date="2026-11-30"):
    return {"profile": profile, "minutes": minutes, "test_accuracy": accuracy, "depth": 20, "steps": 100,
            "wall_seconds": 60.0 * minutes + 120, "peak_rss_gib": 3.5, "date": date, "commit": "abc1234"}


def test_reads_accuracy_depth_and_steps_from_the_run_and_refuses_unknown_points():
    assert read_run_output(RUN_OUTPUT) == {"test_accuracy": 0.8798, "network": "ResNet-20", "steps": 13463}
    resnet9 = RUN_OUTPUT.replace("trained ResNet-20: 13,463", "trained ResNet-9 x2: 8,972")
    assert read_run_output(resnet9)["network"] == "ResNet-9 x2" and read_run_output(resnet9)["steps"] == 8972
    refused = "not pushed: test accuracy 0.70 is below 0.80 (test accuracy 0.7019); the serving directory is unchanged"
    assert read_run_output(refused)["test_accuracy"] == 0.7019
    assert read_run_output("pipeline failed: boom")["test_accuracy"] is None
    assert parse_point("seed:10") == ("seed", 10.0) and parse_point("budget-resnet:5") == ("budget-resnet", 5.0)
    for bad in ("budget", "fast:10", "budget:"):
        with pytest.raises(ValueError, match="PROFILE:MINUTES"):
            parse_point(bad)


def test_a_new_run_of_a_point_replaces_it_and_the_picture_is_drawn(tmp_path):
    table = merged([], _row("budget", 30.0, 0.88, "2026-11-29"))
    table = merged(table, _row("seed", 10.0, 0.60))
    table = merged(table, _row("budget", 30.0, 0.90))
    table = merged(table, dict(_row("budget-resnet", 5.0, 0.80), network="ResNet-8", depth=None))
    assert [(row["profile"], row["minutes"], row["test_accuracy"]) for row in table] == [
        ("budget", 30.0, 0.90), ("budget-resnet", 5.0, 0.80), ("seed", 10.0, 0.60)]
    png = tmp_path / "curve.png"
    plot(json.loads(json.dumps(table)), str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = markdown(table)
    assert "| budget | 30 min | ResNet-20 | 100 | 0.9000 | 32.0 min | 3.5 GiB | 2026-11-30 | abc1234 |" in text
    assert "| budget-resnet | 5 min | ResNet-8 | 100 | 0.8000 |" in text
