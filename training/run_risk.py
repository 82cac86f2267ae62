"""Customer risk-tier training runs end to end: data folder → risk model → MLflow run, registry and promotion.

The risk model's counterpart of ``training.run`` (the fraud model): it ties the step functions of
``training.risk`` to files, the tracking store (through ``training.tracking``) and the command
line. Runs go to the experiment ``kycrisk-risk-tier``; the model is registered as
``kycrisk-risk-tier`` (alias ``challenger``, then ``champion`` once it passes the gate).

Promotion gate. ``[gate]`` in the configuration is the fraud model's gate; its fairness key
names the fraud segments (``segment.buyer_type...``). The risk model reads ``[gate.risk]`` when
present: its keys replace the base gate's keys one by one (``metrics``, ``tolerance``,
``fairness_min``, ...), so a ``[gate.risk.fairness_min]`` table alone swaps the fairness bounds
for the risk segments (``segment.customer_type...``). Without ``[gate.risk]`` the base gate is
used as it is, and its fraud-only fairness key is missing from the risk metrics: the gate fails
closed (refused, with the reason naming the key) rather than silently skipping fairness.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import logging
import platform
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training import metrics as M
from training import plots, risk, tracking
from training.explain import contributions
from training.policy import TierPolicy
from training.run import DEFAULT_CONFIG, TAG_DATA, TAG_SOURCE, load_config, load_tables, log_and_register

log = logging.getLogger(__name__)

RISK_MODEL = "kycrisk-risk-tier"
EXPERIMENT = "kycrisk-risk-tier"
GATE_OVERRIDE = "risk"  # [gate.risk]
_GATE_KEYS = frozenset(f.name for f in dataclasses.fields(tracking.Gate))
SEGMENTS = ("customer_type", "customer_region", "customer_age_band")


@dataclass
class RiskRunResult:
    run_id: str
    model_uri: str
    version: str
    metrics: dict[str, float]
    promotion: dict | None


def gate_config(config: dict[str, Any], model: str = GATE_OVERRIDE) -> dict[str, Any]:
    """The gate settings of one model: ``[gate]`` with ``[gate.<model>]``'s keys replacing its own.

    Args:
        config: the parsed training configuration.
        model: name of the override table (``risk``); other sub-tables of ``[gate]`` that are
            not gate fields (another model's override) are ignored.

    Returns:
        A dict for ``tracking.Gate.from_dict``.
    """
    gate = dict(config.get("gate", {}))
    base = {key: value for key, value in gate.items() if key in _GATE_KEYS}
    override = gate.get(model)
    if override is None:
        log.warning(
            "no [gate.%s] in the configuration: using [gate] as it is; its fairness keys name the fraud "
            "model's segments, so the %s gate fails closed until [gate.%s.fairness_min] names "
            "segment.customer_type.fpr_min_max_ratio (training/run_risk.py)",
            model,
            model,
            model,
        )
        return base
    return {**base, **dict(override)}


def _target_settings(config: dict[str, Any]) -> dict[str, Any]:
    risk_cfg = config.get("risk", {})
    return {
        "rule": "features.customer.customer_targets",
        "seller_min_bad": int(risk_cfg.get("seller_min_bad", 3)),
        "seller_min_share": float(risk_cfg.get("seller_min_share", 0.5)),
    }


def train_risk(
    data: Path, config_path: Path | None = None, source: str = "kycrisk", promote_after: bool = True
) -> RiskRunResult:
    """Train the customer risk-tier model on a data folder, log everything to MLflow, register a challenger.

    Args:
        data: folder with the contract tables (``kycrisk generate`` output or adapted data).
        config_path: training configuration (default ``training/config.toml``).
        source: input layout (``kycrisk`` or ``fdh``; the fdh benchmark has no customer labels).
        promote_after: run the promotion gate right after registering.

    Returns:
        The run id, logged model URI, registered version, metrics and the promotion decision.

    Raises:
        ValueError: invalid data or configuration, or too few known bad customers to train.
    """
    data = Path(data)
    config_file = Path(config_path) if config_path else DEFAULT_CONFIG
    config = load_config(config_file)
    tracking.configure()
    tables = load_tables(data, source)
    every = f"{int(config['risk']['snapshot_every_days'])}D"
    log.info(
        "assembling customer snapshots every %s for %s customers", every, f"{len(tables['customers']):,}"
    )
    dataset = risk.assemble_customers(tables, every)
    log.info(
        "training, calibrating and evaluating the risk-tier model on %s snapshots", f"{len(dataset.frame):,}"
    )
    model = risk.fit_risk_model(dataset, config)
    run_id, model_uri, version = log_risk_run(model, dataset, data, config, config_file, source)
    promotion = promote_risk(data, config, source=source).to_dict() if promote_after else None
    return RiskRunResult(
        run_id=run_id, model_uri=model_uri, version=version, metrics=model.metrics, promotion=promotion
    )


def log_risk_run(
    model: risk.TrainedRiskModel,
    dataset: risk.RiskData,
    data: Path,
    config: dict[str, Any],
    config_file: Path,
    source: str = "kycrisk",
) -> tuple[str, str, str]:
    """Log a trained risk-tier model as one MLflow run and register it as the challenger.

    Logs parameters (``[risk]``, ``[split]``, ``[policy]``, the gate, the target rule, split and
    snapshot periods), the config file, dataset inputs, metrics and timings, figures, tables
    (pattern recall, rule outcomes, PSI, reliability, tier policy, review rules), the Pipeline
    with metadata (feature set, tier policy, review rules, periods) and the model card.

    Returns:
        ``(run_id, model_uri, registered_version)``.
    """
    tracking.configure()
    data = Path(data)
    parquet = sorted(data.glob("*.parquet")) or sorted(data.glob("*.csv"))
    digest = tracking.sha256_files(parquet)
    split = model.split
    snapshot_period = {
        "start": dataset.period[0].isoformat(),
        "end": dataset.period[1].isoformat(),
        "every": dataset.every,
    }
    tags = {TAG_DATA: str(data.resolve()), TAG_SOURCE: source}
    with tracking.start_run(EXPERIMENT, run_name=f"risk-{dataset.feature_set}", tags=tags) as run:
        tracking.log_config_file(config_file)
        tracking.log_params_flat(
            {"risk": config["risk"], "split": config["split"], "policy": config["policy"]}
        )
        tracking.log_params_flat(
            {
                "feature_set": dataset.feature_set_id,
                "data.path": str(data.resolve()),
                "data.sha256": digest,
                "gate": gate_config(config),
                "target": _target_settings(config),
            }
        )
        tracking.log_params_flat({f"split.{k}": v for k, v in split.to_dict().items()})
        tracking.log_params_flat({f"snapshots.{k}": v for k, v in snapshot_period.items()})
        tracking.log_dataset_input(model.train_frame, "train", data.resolve(), "training", digest=digest)
        tracking.log_dataset_input(model.test_frame, "test", data.resolve(), "test", digest=digest)
        tracking.log_metrics_flat(model.metrics)
        tracking.log_metrics_flat({f"time.{k}": v for k, v in model.timings.items()})
        with tempfile.TemporaryDirectory() as tmp:
            figures = _figures(model, Path(tmp))
            tracking.log_figure_files(figures)
            tables_dir = Path(tmp) / "tables"
            tables_dir.mkdir()
            model.pattern_recall.to_csv(tables_dir / "pattern_recall.csv", index=False)
            model.rule_table.to_csv(tables_dir / "rule_outcomes.csv", index=False)
            model.psi.to_csv(tables_dir / "psi_by_feature.csv")
            M.reliability_table(model.test_y, model.test_scores).to_csv(
                tables_dir / "reliability.csv", index=False
            )
            (tables_dir / "tier_policy.json").write_text(model.policy.to_json())
            (tables_dir / "review_rules.json").write_text(
                json.dumps(model.review_rules, indent=2, sort_keys=True)
            )
            tracking.log_figure_files(sorted(tables_dir.iterdir()), artifact_path="tables")
        metadata = {
            "model_name": RISK_MODEL,
            "feature_set": dataset.feature_set,
            "feature_set_id": dataset.feature_set_id,
            "tier_policy": model.policy.to_dict(),
            "review_rules": model.review_rules,
            "training_period": {k: str(v) for k, v in split.to_dict().items()},
            "snapshot_period": snapshot_period,
            "target": _target_settings(config),
            "data_sha256": digest,
            "n_prepare_steps": risk.N_PREPARE_STEPS,
        }
        model_uri, version = log_and_register(
            model.pipeline,
            "risk_model",
            risk.categoricals_as_text(model.test_frame.head(2000)),
            metadata,
            lambda uri: model_card(model, dataset, data, config, uri),
            data,
            run.info.run_id,
        )
    return run.info.run_id, model_uri, version


def promote_risk(
    data: Path | None = None, config: dict[str, Any] | None = None, source: str = "kycrisk"
) -> tracking.PromotionResult:
    """Compare the risk challenger with the champion on the same out-of-time snapshots and gate it.

    The snapshots are re-created from the challenger's metadata (snapshot period and spacing)
    on its training data folder (``data`` overrides the folder); the out-of-time rows are those
    with ``as_of`` in its test period, their targets use every label known now and the target
    rule of ``config``. Both models score exactly those rows, each with its own review threshold.
    The gate is ``gate_config(config)`` (``[gate]`` overridden by ``[gate.risk]``).
    """
    config = config or load_config()
    tracking.configure()
    challenger = tracking.get_alias_version(RISK_MODEL, tracking.CHALLENGER)
    if challenger is None:
        raise ValueError(
            f"no {tracking.CHALLENGER!r} version of {RISK_MODEL}: train one first (kycrisk train)"
        )
    loaded = tracking.load_model(RISK_MODEL, tracking.CHALLENGER)
    folder = Path(data) if data else Path(loaded.tags.get(TAG_DATA) or challenger.tags.get(TAG_DATA, ""))
    if not folder.is_dir():
        raise FileNotFoundError(f"out-of-time data folder {folder} not found: pass --data")
    period = loaded.metadata["training_period"]
    snapshots = loaded.metadata["snapshot_period"]
    gate = tracking.Gate.from_dict(gate_config(config))
    review_cost = float(config.get("risk", {}).get("review_cost", config["policy"]["review_cost"]))
    missed = float(config["risk"]["missed_customer_cost"])
    cache: dict[str, tuple] = {}

    def oot() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        if not cache:
            tables = load_tables(folder, source)
            dataset = risk.assemble_customers(
                tables, snapshots["every"], start=snapshots["start"], end=snapshots["end"]
            )
            times = dataset.frame[risk.TIME_COLUMN]
            mask = (times >= pd.Timestamp(period["test_start"])) & (times < pd.Timestamp(period["test_end"]))
            test = dataset.frame[mask.to_numpy()].reset_index(drop=True)
            y = risk.targets(dataset, test, None, config)
            known = risk.targets(dataset, test, test[risk.TIME_COLUMN], config).astype(bool)
            cache["oot"] = (test, y, known)
        return cache["oot"]

    def evaluate(model_uri: str) -> dict[str, float]:
        pipeline, meta = tracking.load_pipeline_and_metadata(model_uri)
        test, y, known = oot()
        threshold = meta["tier_policy"]["medium_threshold"]
        return risk.evaluate_model(pipeline, test, y, threshold, review_cost, missed, known)

    return tracking.promote(RISK_MODEL, evaluate, gate)


# --- figures and the model card -----------------------------------------------------------------


def _figures(model: risk.TrainedRiskModel, folder: Path) -> list[Path]:
    y, s = model.test_y, model.test_scores
    paths = [
        plots.plot_roc(y, s, folder / "roc.png", title="ROC curve (out-of-time snapshots)"),
        plots.plot_precision_recall(
            y, s, folder / "precision_recall.png", title="Precision-recall (snapshots)"
        ),
        plots.plot_calibration(y, s, folder / "calibration.png", title="Reliability (bad customer)"),
        plots.plot_tier_distribution(
            model.decisions["tier"], folder / "tiers.png", y=y, title="Final risk tiers (score + rules)"
        ),
    ]
    for name in SEGMENTS:
        table = M.segment_metrics(y, s, model.segments[name], threshold=model.policy.medium_threshold)
        paths.append(
            plots.plot_segment_comparison(
                table,
                folder / f"segments_{name}.png",
                metric="fpr",
                title=f"FPR at the review threshold by {name}",
            )
        )
    paths.append(shap_summary(model, folder / "shap_summary.png"))
    return paths


def shap_summary(model: risk.TrainedRiskModel, path: Path, rows: int = 5000, top: int = 20) -> Path:
    """Mean |TreeSHAP contribution| per feature on test snapshots (log-odds), as a bar chart."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sample = model.test_frame.sample(min(rows, len(model.test_frame)), random_state=0)
    prepared = model.pipeline[:-1].transform(risk.categoricals_as_text(sample))
    contrib = contributions(risk.lgbm_of(model.pipeline), prepared).drop(columns="bias")
    mean_abs = contrib.abs().mean().sort_values(ascending=True).tail(top)
    figure = Figure(figsize=(8, 0.3 * len(mean_abs) + 1.5))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.barh(mean_abs.index, mean_abs.to_numpy())
    ax.set_xlabel("mean |contribution| (log-odds, exact TreeSHAP)")
    ax.set_title(f"Top {len(mean_abs)} features on {len(sample):,} test snapshots")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _policy_lines(policy: TierPolicy, review_rules: dict[str, Any]) -> str:
    ratio = review_rules["outgrown_volume_ratio"]
    age = review_rules.get("outgrown_min_review_age_days", 0.0)
    outgrown = f"30-day volume >= {ratio:g} x declared monthly volume" + (
        f" and last KYC review >= {age:g} days ago" if age else ""
    )
    high = (
        "off (no score reaches it)"
        if policy.high_threshold > 1
        else f"from probability {policy.high_threshold:.4f}"
    )
    return f"""- score tiers: medium (review) from probability {policy.medium_threshold:.4f}; high ({policy.high_action}) {high}.
- chosen on the validation period from expected cost: a review costs {policy.review_cost} USD, a missed bad customer {review_rules.get("missed_customer_cost", "the configured")} USD, rejecting a good customer {policy.reject_cost} USD + {policy.reject_margin:.0%} of the missed-customer cost; capacity {review_rules["score_review_capacity"]:.1%} of snapshots for score-driven reviews on top of the {review_rules["forced_review_share_valid"]:.1%} that rules send to review anyway (total {policy.review_capacity:.1%}).
- the final tier is the highest of the score tier and every rule that fires; rules only raise:

| rule | fires when | tier | action |
|---|---|---|---|
| WATCHLIST_CONFIRMED | sanctions hit (screening as of the snapshot) | high | report |
| WATCHLIST_POSSIBLE | possible watchlist match, or a PEP hit | medium | review |
| PEP_EDD | confirmed PEP: enhanced due diligence (never reported for being a PEP) | medium | review |
| DOC_EXPIRED | identity document expired | medium | review |
| DOC_INVALID | check digit fails and no likely typo | medium | review |
| DOC_TYPO_LIKELY | check digit fails, an adjacent swap fixes it | medium | ask_to_correct (never a reason to reject) |
| KYC_OUTGROWN | {outgrown} | medium | review (ask for documents) |"""


def model_card(
    model: risk.TrainedRiskModel, dataset: risk.RiskData, data: Path, config: dict, model_uri: str
) -> str:
    """The model card (markdown) logged with every run."""
    m = model.metrics
    fmt = lambda key: "n/a" if key not in m or m[key] is None or not np.isfinite(m[key]) else f"{m[key]:.4f}"  # noqa: E731
    split = model.split.to_dict()
    segs = [
        k
        for k in sorted(m)
        if k.startswith(("segment.", "final.segment."))
        and k.endswith((".fpr", ".fpr_min_max_ratio", ".auc_roc", ".fpr_ratio_to_overall"))
    ]
    pattern_rows = "\n".join(
        f"| {r.pattern} | {r.stage} | {r.snapshots} | {r.recall:.3f} | {r.final_recall:.3f} | {r.rejected_or_reported} |"
        for r in model.pattern_recall.itertuples()
    )
    rule_rows = "\n".join(
        f"| {r.code} | {r.fired} | {r.share:.4f} | {r.decisive} |" for r in model.rule_table.itertuples()
    )
    rule_metrics = "\n".join(
        f"- {k}: {fmt(k)}"
        for k in sorted(m)
        if k.startswith(
            ("rules.honest_typo", "rules.sanctioned", "rules.pep", "rules.outgrown", "review_rules.")
        )
        or k in ("rules.typo_decisive_reject", "rules.forced_review_share")
    )
    features = "\n".join(f"- `{name}`: {meaning}" for name, meaning in risk.feature_descriptions())
    top_psi = ", ".join(f"`{name}` {row.psi:.2f}" for name, row in model.psi.head(5).iterrows())
    review_rules = {**model.review_rules, "missed_customer_cost": config["risk"]["missed_customer_cost"]}
    target = _target_settings(config)
    return f"""# Model card: {RISK_MODEL}

Trained {datetime.now(UTC).isoformat(timespec="seconds")} by {getpass.getuser()} on {platform.node()}; model `{model_uri}`.

## Intended use
Risk tier of a marketplace customer at onboarding and then every {dataset.every} as behaviour accumulates:
probability that the customer is bad (money laundering, synthetic identity, sanctioned, stolen-goods seller,
laundering ring member, restricted-goods buyer), combined with the hard rules below into low (approve),
medium (review, ask for documents or ask to correct a document number) or high (reject, or report a
sanctions match). PEP status and outgrown KYC are review outcomes decided by transparent rules, not by the
score. Not for use as the only ground for offboarding or reporting a customer: reviewers decide.

## Data
- Folder `{data.resolve()}`; feature set `{dataset.feature_set_id}` (customer behaviour as of each snapshot, KYC profile at the snapshot time, watchlist screening as listed at the snapshot).
- Snapshots: each customer right after onboarding and every {dataset.every} from {dataset.period[0].date()} to {dataset.period[1].date()}.
- Split by snapshot time with gaps of {config["split"]["label_delay_days"]} days (label delay): train {split["train_start"]} to {split["train_end"]}, validation {split["valid_start"]} to {split["valid_end"]}, test {split["test_start"]} to {split["test_end"]}.
- Target: `{target["rule"]}` (seller rule: at least {target["seller_min_bad"]} bad sales making {target["seller_min_share"]:.0%} of sales); training and calibration use labels known when the test period starts, the test every label known now.
- Rows: train {int(m["rows.train"]):,}, validation {int(m["rows.valid"]):,}, test {int(m["rows.test"]):,} snapshots ({int(m["customers.test"]):,} customers in the test); known-bad snapshots in training {int(m["positives.train_known"])}, in validation {int(m["positives.valid_known"])}.

## Out-of-time metrics (test snapshots)
| metric | all snapshots | not yet known bad at as_of |
|---|---|---|
| AUC ROC | {fmt("auc_roc")} | {fmt("not_yet_known.auc_roc")} |
| average precision | {fmt("average_precision")} | {fmt("not_yet_known.average_precision")} |
| recall at 1% FPR | {fmt("recall_at_fpr_1pct")} | {fmt("not_yet_known.recall_at_fpr_1pct")} |
| recall at 5% FPR | {fmt("recall_at_fpr_5pct")} | {fmt("not_yet_known.recall_at_fpr_5pct")} |
| precision of the top 3% | {fmt("precision_top_3pct")} | {fmt("not_yet_known.precision_top_3pct")} |
| Brier score | {fmt("brier")} | {fmt("not_yet_known.brier")} |
| expected calibration error | {fmt("ece")} | {fmt("not_yet_known.ece")} |
| prevalence | {fmt("prevalence")} | {fmt("not_yet_known.prevalence")} |

{fmt("known_bad_at_as_of.share")} of the test snapshots belong to customers already known bad at the snapshot: the
second column is what the model adds on the others.

Policy outcome on the test snapshots: auto-decision rate {fmt("auto_decision_rate")}; tiers low {fmt("tier_share.low")},
medium {fmt("tier_share.medium")}, high {fmt("tier_share.high")}; rules force review on {fmt("rules.forced_review_share")};
recall of the final tier (medium or high) {fmt("final.recall")} at a false-positive rate of {fmt("final.fpr")}.
PSI train vs test: score {fmt("psi.score")}, largest feature {fmt("psi.max_feature")} ({top_psi}).

### By segment (score at the review threshold; `final.` = final tier incl. rules)
{chr(10).join(f"- {k}: {fmt(k)}" for k in segs)}

### Per planted pattern (every test snapshot of the pattern's customers)
| pattern | stage | snapshots | score recall | final tier medium+ | rejected or reported |
|---|---|---:|---:|---:|---:|
{pattern_rows}

### Hard and review rules on the test snapshots
| reason | fired | share | decisive |
|---|---:|---:|---:|
{rule_rows}

{rule_metrics}

## Thresholds and tier policy (version {model.policy.version})
{_policy_lines(model.policy, review_rules)}

## Features
{features}

Plus KYC profile features at the snapshot time (features/profile.py, prefix `customer_`) and the watchlist
screening result as the list stood at the snapshot.

## Limitations
- Trained on the synthetic marketplace when the data folder is generated: do not tune production thresholds on it.
- `*_all` behaviour features count from the start of the data, not of the customer: they grow with calendar
  time and drift between train and test (see the PSI table), and a model trained on a short history meets
  larger values in production.
- Bad customers whose labels arrive after the training cut-off are under-represented in training; a
  customer's snapshots are correlated (one customer, many rows), so the metrics are less certain than the
  row counts suggest.
- Hard rules fire on many snapshots (possible watchlist matches and expired documents repeat at every
  snapshot until cleared: the data record no reviewer's clearance), so the auto-decision rate is bounded
  by them, not by the model.
- Fairness: false-positive rates differ between segments (see above); the age band enters the model through
  `customer_age_years`.
"""
