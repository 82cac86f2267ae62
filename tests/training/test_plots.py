"""Tests of training.plots: every plot writes a non-empty PNG; importing draws nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import training.plots
from training.metrics import segment_metrics
from training.plots import (
    plot_calibration,
    plot_precision_recall,
    plot_roc,
    plot_segment_comparison,
    plot_tier_distribution,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(2)
    n = 400
    y = (rng.random(n) < 0.1).astype(int)
    p = np.clip(0.5 * y + 0.5 * rng.random(n), 0, 1)
    return y, p, rng.choice(["individual", "business"], n)


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_curves(tmp_path, scored):
    y, p, _ = scored
    assert_png(plot_roc(y, p, tmp_path / "roc.png"))
    assert_png(plot_roc(y, {"champion": p, "challenger": p**2}, tmp_path / "roc_two.png"))
    assert_png(plot_precision_recall(y, p, tmp_path / "nested" / "pr.png"))
    assert_png(plot_calibration(y, p, tmp_path / "calibration.png"))
    assert_png(plot_calibration(y, p, tmp_path / "calibration_uniform.png", strategy="uniform"))


def test_tiers_and_segments(tmp_path, scored):
    y, p, segment = scored
    tiers = np.where(p >= 0.7, "high", np.where(p >= 0.4, "medium", "low"))
    assert_png(plot_tier_distribution(tiers, tmp_path / "tiers.png", y=y))
    assert_png(plot_tier_distribution(tiers, str(tmp_path / "tiers_no_labels.png")))
    table = segment_metrics(y, p, segment, threshold=0.5)
    assert_png(plot_segment_comparison(table, tmp_path / "segments.png"))
    assert_png(plot_segment_comparison(table, tmp_path / "segments_tpr.png", metric="tpr"))
    with pytest.raises(ValueError, match="no column"):
        plot_segment_comparison(table, tmp_path / "bad.png", metric="colour")


def test_import_has_no_side_effects():
    # matplotlib (backend choice, font cache) is imported only inside the plotting functions, and
    # pyplot (global figures, process-wide backend) never.
    tree = ast.parse(Path(training.plots.__file__).read_text(encoding="utf-8"))

    def imported(nodes) -> list[str]:
        names = []
        for node in nodes:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        return names

    assert not [n for n in imported(tree.body) if n.startswith("matplotlib")]
    assert not [n for n in imported(ast.walk(tree)) if "pyplot" in n or n.startswith("pylab")]
