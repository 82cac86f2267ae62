"""PNG evaluation plots for runs and model cards: ROC, precision-recall, reliability, tiers, segments.

Every function draws on its own ``matplotlib.figure.Figure`` with the Agg canvas, created inside
the function: nothing touches pyplot's global state or the process-wide backend, so importing
this module has no side effects and the plots work on headless machines and in threads. Each
``plot_*`` writes one PNG to ``path`` (creating its folder) and returns the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from training.metrics import average_precision, reliability_table, roc_auc

TIER_COLOURS = {"low": "#4c9f70", "medium": "#e0a030", "high": "#c0392b"}


def _figure(width: float = 6.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _named_scores(score) -> dict[str, np.ndarray]:
    if isinstance(score, Mapping):
        return {str(name): np.asarray(values, dtype=float) for name, values in score.items()}
    return {"model": np.asarray(score, dtype=float)}


def plot_roc(y, score, path, *, title: str = "ROC curve") -> Path:
    """ROC curve(s) with AUC in the legend.

    Args:
        y: 0/1 labels.
        score: scores, or ``{name: scores}`` to compare models on the same rows.
        path: PNG file to write.
        title: plot title.

    Returns:
        ``path`` as a Path.
    """
    from sklearn.metrics import roc_curve

    fig = _figure()
    ax = fig.add_subplot()
    y_arr = np.asarray(y)
    for name, s in _named_scores(score).items():
        fpr, tpr, _ = roc_curve(y_arr, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(y_arr, s):.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set(
        xlabel="false-positive rate",
        ylabel="true-positive rate (recall)",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_precision_recall(y, score, path, *, title: str = "Precision-recall curve") -> Path:
    """Precision-recall curve(s) with average precision in the legend and the prevalence as baseline.

    Args:
        y: 0/1 labels.
        score: scores, or ``{name: scores}``.
        path: PNG file to write.
        title: plot title.

    Returns:
        ``path`` as a Path.
    """
    from sklearn.metrics import precision_recall_curve

    fig = _figure()
    ax = fig.add_subplot()
    y_arr = np.asarray(y)
    for name, s in _named_scores(score).items():
        precision, recall, _ = precision_recall_curve(y_arr, s)
        ax.step(recall, precision, where="post", label=f"{name} (AP {average_precision(y_arr, s):.3f})")
    prevalence = float(np.mean(y_arr)) if y_arr.size else 0.0
    ax.axhline(prevalence, linestyle=":", color="grey", label=f"prevalence {prevalence:.2%}")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_calibration(
    y, probability, path, *, n_bins: int = 10, strategy: str = "quantile", title: str = "Reliability"
) -> Path:
    """Reliability diagram (mean predicted vs observed fraud rate per bin) over a count histogram.

    Args:
        y: 0/1 labels.
        probability: predicted probabilities in [0, 1].
        path: PNG file to write.
        n_bins, strategy: bins as in ``training.metrics.reliability_table``.
        title: plot title.

    Returns:
        ``path`` as a Path.
    """
    table = reliability_table(y, probability, n_bins, strategy).dropna(subset=["mean_predicted"])
    fig = _figure(6.0, 6.0)
    ax, hist = fig.subplots(2, 1, height_ratios=(3, 1), sharex=False)
    top = (
        float(max(table["mean_predicted"].max(), table["fraction_positive"].max(), 1e-3))
        if len(table)
        else 1.0
    )
    ax.plot([0, top], [0, top], linestyle=":", color="grey", label="perfectly calibrated")
    ax.plot(table["mean_predicted"], table["fraction_positive"], marker="o", label=f"model ({strategy} bins)")
    ax.set(xlabel="mean predicted probability", ylabel="observed fraud rate", title=title)
    ax.legend(loc="upper left")
    hist.hist(np.asarray(probability, dtype=float), bins=50, color="#7f8c8d")
    hist.set(xlabel="predicted probability", ylabel="rows", yscale="log")
    return _save(fig, path)


def plot_tier_distribution(tiers, path, *, y=None, title: str = "Risk tiers") -> Path:
    """Share of entities per tier, annotated with the fraud rate per tier when labels are given.

    Args:
        tiers: tier per entity (``low`` / ``medium`` / ``high``).
        path: PNG file to write.
        y: optional 0/1 labels.
        title: plot title.

    Returns:
        ``path`` as a Path.
    """
    t = pd.Series(np.asarray(tiers, dtype=object))
    order = [x for x in TIER_COLOURS if x in set(t)] + sorted(set(t) - set(TIER_COLOURS))
    share = t.value_counts(normalize=True).reindex(order, fill_value=0.0)
    fig = _figure()
    ax = fig.add_subplot()
    bars = ax.bar(order, share.to_numpy(), color=[TIER_COLOURS.get(x, "#7f8c8d") for x in order])
    if y is not None:
        rate = pd.Series(np.asarray(y, dtype=float)).groupby(t).mean()
        labels = [f"{share[x]:.1%}\nfraud {rate.get(x, np.nan):.1%}" for x in order]
    else:
        labels = [f"{share[x]:.1%}" for x in order]
    ax.bar_label(bars, labels=labels)
    ax.set(ylabel="share of entities", title=title, ylim=(0, min(1.0, float(share.max()) * 1.25 + 0.05)))
    return _save(fig, path)


def plot_segment_comparison(
    table: pd.DataFrame, path, *, metric: str = "fpr", overall: float | None = None, title: str | None = None
) -> Path:
    """One metric per segment as bars, with the overall value as a line.

    Args:
        table: output of ``training.metrics.segment_metrics`` (any frame indexed by segment).
        path: PNG file to write.
        metric: column to plot (``fpr``, ``tpr``, ``flag_rate``, ``auc_roc``, ...).
        overall: reference line; defaults to ``table.attrs["overall"][metric]`` when present.
        title: plot title; defaults to the metric name.

    Returns:
        ``path`` as a Path.
    """
    if metric not in table.columns:
        raise ValueError(f"the table has no column {metric!r}")
    if overall is None:
        overall = table.attrs.get("overall", {}).get(metric)
    fig = _figure(max(6.0, 0.6 * len(table) + 2), 4.5)
    ax = fig.add_subplot()
    labels = [str(i) for i in table.index]
    bars = ax.bar(labels, table[metric].to_numpy(dtype=float), color="#2e86c1")
    ax.bar_label(bars, fmt="%.3g")
    if overall is not None and np.isfinite(overall):
        ax.axhline(overall, linestyle="--", color="black", label=f"overall {overall:.3g}")
        ax.legend(loc="upper right")
    ax.set(ylabel=metric, xlabel=table.index.name or "segment", title=title or f"{metric} by segment")
    ax.tick_params(axis="x", labelrotation=30)
    return _save(fig, path)


def plot_mean_contributions(mean_abs: pd.Series, path, *, title: str) -> Path:
    """Mean |TreeSHAP contribution| per feature as horizontal bars (the run's ``shap_summary.png``).

    Args:
        mean_abs: mean absolute contribution (log-odds) per feature, in the order to draw (bottom first).
        path: PNG file to write.
        title: plot title.

    Returns:
        ``path`` as a Path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # its own size and resolution (not ``_figure``'s): one bar per feature, readable names
    figure = Figure(figsize=(8, 0.3 * len(mean_abs) + 1.5))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.barh(mean_abs.index, mean_abs.to_numpy())
    ax.set_xlabel("mean |contribution| (log-odds, exact TreeSHAP)")
    ax.set_title(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
