"""The risk-tier model's card: what the model is for, its data, metrics, rules, policy and limits (markdown).

Split from ``training.risk`` for length: the card is a long template over a trained model's
results and reads nothing but them and the configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from features.customer import BEHAVIOUR_COLUMNS
from training import card
from training.config import Config
from training.names import RISK_MODEL
from training.policy import TierPolicy
from training.risk.assembly import RiskData
from training.spec import TrainedModel


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


def model_card(model: TrainedModel, dataset: RiskData, data: Path, config: Config, model_uri: str) -> str:
    """The model card (markdown) logged with every run."""
    m = model.metrics
    fmt = card.formatter(m)
    split = model.split.to_dict()
    segs = card.segment_keys(
        m, ("segment.", "final.segment."), (".fpr", ".fpr_min_max_ratio", ".auc_roc", ".fpr_ratio_to_overall")
    )
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
    features = "\n".join(f"- `{name}`: {meaning}" for name, meaning in BEHAVIOUR_COLUMNS.items())
    top_psi = ", ".join(f"`{name}` {row.psi:.2f}" for name, row in model.psi.head(5).iterrows())
    review_rules = {**model.review_rules, "missed_customer_cost": config.risk.missed_customer_cost}
    target = config.risk.target_settings()
    return f"""{card.header(RISK_MODEL, model_uri)}

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
- Split by snapshot time with gaps of {config.split.label_delay_days} days (label delay): train {split["train_start"]} to {split["train_end"]}, validation {split["valid_start"]} to {split["valid_end"]}, test {split["test_start"]} to {split["test_end"]}.
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
