"""The data card of a generated dataset (what is in it, how it was made, how it is labelled) and the writer of its files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.errors import Pandas4Warning

from features import contracts
from features.reference import load_reference
from features.synthetic.patterns import BAD_STAGES, PERIOD_DAYS, SPECS
from features.units import SECONDS_PER_DAY

GENERATOR_VERSION = "1.0"
TABLE_ORDER = ("customers", "transactions", "account_events", "watchlist", "labels", "patterns")


def _share(counts: pd.Series, total: int) -> dict[str, float]:
    return {str(k): round(float(v) / total, 6) if total else 0.0 for k, v in counts.items()}


def _quantiles(days: pd.Series) -> dict[str, float]:
    if len(days) == 0:
        return {"p50": None, "p90": None, "min": None, "max": None}
    q = np.quantile(days.to_numpy(dtype=float), [0.5, 0.9])
    return {
        "p50": round(float(q[0]), 2),
        "p90": round(float(q[1]), 2),
        "min": round(float(days.min()), 2),
        "max": round(float(days.max()), 2),
    }


def datacard(tables: dict[str, pd.DataFrame]) -> dict:
    """Describe a generated dataset.

    Args:
        tables: the output of ``features.synthetic.generate``.

    Returns:
        A JSON-ready dict: ``generator`` (version, arguments, reproduce command), ``period``,
        ``rows`` per table, ``fraud_rate`` (share of transactions labelled fraud), ``bad_rate``
        (share with any of ``contracts.BAD_TRANSACTION_LABELS``), ``label_rates`` per label value
        for transactions and customers, ``label_sources``, ``label_delay_days`` (p50/p90/min/max of
        ``known_at - occurred_at`` over transaction labels, overall and per label),
        ``labels_known_after_period``, ``patterns`` (per pattern: transactions, customers,
        instances, labelled and unlabelled counts, rate, label, mechanism), ``label_noise`` and
        ``mix`` (customer types, roles, regions, countries, cross-border share, categories, ...).
    """
    customers, tx, labels = tables["customers"], tables["transactions"], tables["labels"]
    patterns, watchlist, events = tables["patterns"], tables["watchlist"], tables["account_events"]
    meta = patterns.attrs.get("generator", {})
    n_tx, n_cust = len(tx), len(customers)

    tx_labels = labels[labels["entity_type"] == "transaction"]
    cust_labels = labels[labels["entity_type"] == "customer"]
    bad = tx_labels[tx_labels["label"].isin(contracts.BAD_TRANSACTION_LABELS)]
    occurred = tx.set_index("transaction_id")["occurred_at"]
    delay = (tx_labels["known_at"] - tx_labels["entity_id"].map(occurred)).dt.total_seconds() / SECONDS_PER_DAY
    period_end = pd.Timestamp(meta["period_end"]) if meta else tx["occurred_at"].max()
    period_start = pd.Timestamp(meta["period_start"]) if meta else tx["occurred_at"].min().floor("D")

    card: dict = {
        "generator": {
            "name": "features.synthetic",
            "version": meta.get("version", GENERATOR_VERSION),
            "arguments": meta.get("arguments", {}),
            "command": _command(meta.get("arguments", {})),
        },
        "period": {
            "start": period_start.isoformat(),
            "end_exclusive": period_end.isoformat(),
            "first_transaction": tx["occurred_at"].min().isoformat() if n_tx else None,
            "last_transaction": tx["occurred_at"].max().isoformat() if n_tx else None,
        },
        "rows": {name: int(len(tables[name])) for name in TABLE_ORDER if name in tables},
        "fraud_rate": round(
            float(tx_labels.loc[tx_labels["label"] == "fraud", "entity_id"].nunique()) / n_tx, 6
        )
        if n_tx
        else 0.0,
        "bad_rate": round(float(bad["entity_id"].nunique()) / n_tx, 6) if n_tx else 0.0,
        "label_rates": {
            "transactions": {
                label: {"count": int(c), "rate": round(int(c) / n_tx, 6) if n_tx else 0.0}
                for label, c in tx_labels.groupby("label")["entity_id"].nunique().items()
            },
            "customers": {
                label: {"count": int(c), "rate": round(int(c) / n_cust, 6) if n_cust else 0.0}
                for label, c in cust_labels.groupby("label")["entity_id"].nunique().items()
            },
        },
        "label_sources": {str(k): int(v) for k, v in labels["source"].value_counts().sort_index().items()},
        "label_delay_days": {
            **_quantiles(delay),
            "by_label": {str(k): _quantiles(v) for k, v in delay.groupby(tx_labels["label"]) if len(v)},
        },
        "labels_known_after_period": int((labels["known_at"] >= period_end).sum()),
        "patterns": _pattern_summary(patterns, meta),
        "label_noise": _label_noise(patterns),
        "mix": _mix(customers, tx, events, watchlist),
    }
    return card


def _command(arguments: dict) -> str | None:
    if not arguments:
        return None
    return (
        f"kycrisk generate --customers {arguments['n_customers']} --days {arguments['days']} "
        f"--seed {arguments['seed']} --start {arguments['start']} --out OUT"
    )


def _pattern_summary(patterns: pd.DataFrame, meta: dict) -> dict:
    out = {}
    days = meta.get("arguments", {}).get("days")
    for spec in SPECS:
        rows = patterns[patterns["pattern"] == spec.name]
        t = rows[rows["entity_type"] == "transaction"]
        c = rows[rows["entity_type"] == "customer"]
        instances = int(rows["instance"].nunique())
        eligible = meta.get("eligible", {}).get(spec.name)
        scale = days / PERIOD_DAYS if (spec.per_period and days) else 1.0
        out[spec.name] = {
            "transactions": int(len(t)),
            "customers": int(c["entity_id"].nunique()),
            "instances": instances,
            "eligible": eligible,
            "planted_rate": round(instances / eligible / scale, 6) if eligible else None,
            "labelled_transactions": int(t["labelled"].sum()),
            "unlabelled_transactions": int((~t["labelled"]).sum()),
            "labelled_customers": int(c["labelled"].sum()),
            "unlabelled_customers": int((~c["labelled"]).sum()),
            "stages": {str(k): int(v) for k, v in rows["stage"].value_counts().sort_index().items()},
            "labels": {str(k): int(v) for k, v in rows["label"].value_counts().sort_index().items()},
            "rate": spec.rate,
            "rate_of": spec.rate_of,
            "per_120_days": spec.per_period,
            "label": spec.label,
            "documented_labelled_share": spec.labelled_share,
            "delay_days": list(spec.delay_days),
            "delay_from": spec.delay_from,
            "mechanism": spec.mechanism,
        }
    return out


def _label_noise(patterns: pd.DataFrame) -> dict:
    t = patterns[patterns["entity_type"] == "transaction"]
    meant_bad = t[t["stage"].isin(list(BAD_STAGES))]
    fraud = meant_bad[meant_bad["stage"].map(BAD_STAGES) == "fraud"]
    friendly = t[t["pattern"] == "friendly_fraud"]
    return {
        "bad_transactions_planted": int(len(meant_bad)),
        "bad_transactions_never_labelled": int((~meant_bad["labelled"]).sum()),
        "fraud_transactions_planted": int(len(fraud)),
        "fraud_transactions_never_labelled": int((~fraud["labelled"]).sum()),
        "share_of_fraud_never_labelled": round(float((~fraud["labelled"]).mean()), 4) if len(fraud) else 0.0,
        "good_transactions_labelled_fraud": int(friendly["labelled"].sum()),
        "cleared_customers_labelled_legitimate": int((patterns["label"] == "legitimate").sum()),
    }


def _mix(customers: pd.DataFrame, tx: pd.DataFrame, events: pd.DataFrame, watchlist: pd.DataFrame) -> dict:
    n, n_tx = len(customers), len(tx)
    countries = load_reference("countries").set_index("iso2")
    region = customers["residence_country"].map(countries["region"])
    residence = customers["residence_country"].value_counts()
    residence = residence.sort_values(ascending=False, kind="stable").head(15)
    return {
        "customer_type": _share(customers["customer_type"].value_counts().sort_index(), n),
        "role": _share(customers["role"].value_counts().sort_index(), n),
        "residence_region": _share(region.value_counts().sort_index(), n),
        "residence_countries": int(customers["residence_country"].nunique()),
        "top_residence_countries": _share(residence, n),
        "documented_customers": round(float(customers["document_type"].notna().mean()), 6) if n else 0.0,
        "document_type": _share(customers["document_type"].value_counts().sort_index(), n),
        "twofa_enabled_at_onboarding": round(float(customers["twofa_enabled"].mean()), 6) if n else 0.0,
        "onboarded_during_period": int(
            (customers["onboarded_at"] >= tx["occurred_at"].min().floor("D")).sum()
        )
        if n_tx
        else 0,
        "cross_border_transactions": round(float((tx["buyer_country"] != tx["seller_country"]).mean()), 6)
        if n_tx
        else 0.0,
        "goods_category": _share(tx["goods_category"].value_counts().sort_index(), n_tx),
        "payment_method": _share(tx["payment_method"].value_counts().sort_index(), n_tx),
        "currency_top10": _share(
            tx["currency"].value_counts().sort_values(ascending=False, kind="stable").head(10), n_tx
        ),
        "event_type": {str(k): int(v) for k, v in events["event_type"].value_counts().sort_index().items()},
        "watchlist": {str(k): int(v) for k, v in watchlist["list_type"].value_counts().sort_index().items()},
    }


def render_markdown(card: dict) -> str:
    """The data card for people (``datacard.md``)."""
    g, period = card["generator"], card["period"]
    lines = [
        "# Synthetic marketplace dataset",
        "",
        "Made by `features.synthetic` (the `kycrisk generate` command) for development, demos and tests. "
        "Every customer, order and label is invented; reference data (country risk, prices, FX) is approximate. "
        "Do not tune production thresholds on it.",
        "",
        f"- Generator version: {g['version']}; arguments: "
        + ", ".join(f"`{k}={v}`" for k, v in g["arguments"].items()),
        f"- Reproduce (byte-identical files with the same package versions): `{g['command']}`",
        f"- Period: {period['start']} to {period['end_exclusive']} (exclusive); transactions from "
        f"{period['first_transaction']} to {period['last_transaction']}",
        "",
        "## Tables",
        "",
        "| table | rows |",
        "|---|---:|",
        *(f"| {name} | {rows:,} |" for name, rows in card["rows"].items()),
        "",
        "`patterns` is generator-only ground truth (which planted pattern produced each transaction or customer, "
        "its stage, and whether it got labelled). Never use it as a feature.",
        "",
        "## Labels",
        "",
        f"- Transactions labelled `fraud`: {card['fraud_rate']:.3%}; with any bad label "
        f"({', '.join(contracts.BAD_TRANSACTION_LABELS)}): {card['bad_rate']:.3%}.",
        f"- Delay from order to label (`known_at - occurred_at`, transaction labels): median "
        f"{card['label_delay_days']['p50']} days, 90th percentile {card['label_delay_days']['p90']} days. "
        f"{card['labels_known_after_period']:,} labels become known after the period ends (kept: that is what a "
        "training cut-off sees).",
        "",
        "| entity | label | count | share of entities |",
        "|---|---|---:|---:|",
    ]
    for entity, rates in card["label_rates"].items():
        for label, v in rates.items():
            lines.append(f"| {entity} | {label} | {v['count']:,} | {v['rate']:.3%} |")
    noise = card["label_noise"]
    lines += [
        "",
        "Label noise, on purpose: "
        f"{noise['fraud_transactions_never_labelled']:,} of {noise['fraud_transactions_planted']:,} planted fraud "
        f"orders ({noise['share_of_fraud_never_labelled']:.1%}) are never labelled (victims who never notice, "
        f"fraudsters never caught); {noise['good_transactions_labelled_fraud']:,} genuine orders are labelled "
        "fraud (friendly fraud chargebacks); "
        f"{noise['cleared_customers_labelled_legitimate']:,} customers carry `legitimate` after a review cleared them.",
        "",
        "## Planted patterns",
        "",
        "| pattern | documented rate | instances (of eligible) | transactions (labelled / not) | customers (labelled / not) |",
        "|---|---|---:|---:|---:|",
    ]
    for name, p in card["patterns"].items():
        eligible = f" of {p['eligible']:,}" if p.get("eligible") is not None else ""
        lines.append(
            f"| {name} | {p['rate']:.3%} of {p['rate_of']} | {p['instances']:,}{eligible} "
            f"| {p['labelled_transactions']:,} / {p['unlabelled_transactions']:,} "
            f"| {p['labelled_customers']:,} / {p['unlabelled_customers']:,} |"
        )
    lines.append("")
    for name, p in card["patterns"].items():
        lo, hi = p["delay_days"]
        lines += [
            f"### {name}",
            "",
            p["mechanism"],
            "",
            f"Label: {p['label']}. About {p['documented_labelled_share']:.0%} of instances get labelled, "
            f"{lo:g}-{hi:g} days after {p['delay_from']}. Instances here: {p['instances']:,}.",
            "",
        ]
    mix = card["mix"]
    lines += [
        "## Population",
        "",
        f"- Customer types: {_fmt(mix['customer_type'])}; roles: {_fmt(mix['role'])}.",
        f"- Residence regions: {_fmt(mix['residence_region'])}; {mix['residence_countries']} countries; "
        f"top: {_fmt(mix['top_residence_countries'])}.",
        f"- Documented customers: {mix['documented_customers']:.1%} ({_fmt(mix['document_type'])}); "
        f"2FA at onboarding: {mix['twofa_enabled_at_onboarding']:.1%}; onboarded during the period: "
        f"{mix['onboarded_during_period']:,}.",
        f"- Cross-border orders: {mix['cross_border_transactions']:.1%}. Payment methods: {_fmt(mix['payment_method'])}.",
        f"- Goods categories: {_fmt(mix['goods_category'])}.",
        f"- Watchlist entries: {_fmt_counts(mix['watchlist'])}. Account events: {_fmt_counts(mix['event_type'])}.",
        "",
        "## Reference data",
        "",
        "Country risk (FATF lists as recalled, sanctions regimes), goods-category reference prices and FX rates "
        "come from `data/reference/*.csv`; each file states its source, date and caveats in its `#` header.",
        "",
    ]
    return "\n".join(lines)


def _fmt(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1%}" for k, v in shares.items())


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())


def write_dataset(tables: dict[str, pd.DataFrame], out_dir: Path, seed: int) -> dict:
    """Write the tables as parquet plus ``datacard.json`` and ``datacard.md``.

    The files are deterministic: the same tables (hence the same generator arguments) give
    byte-identical files with the same package versions.

    Args:
        tables: the output of ``features.synthetic.generate``.
        out_dir: folder to create (existing files of the same names are overwritten).
        seed: the seed the tables were generated with (recorded in the card).

    Returns:
        The data card (as written to ``datacard.json``).

    Raises:
        ValueError: when ``seed`` contradicts the seed recorded in the tables.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = datacard(tables)
    recorded = card["generator"]["arguments"].get("seed")
    if recorded is not None and recorded != int(seed):
        raise ValueError(f"tables were generated with seed {recorded}, not {seed}")
    card["generator"]["arguments"] = {**card["generator"]["arguments"], "seed": int(seed)}
    for name in TABLE_ORDER:
        if name not in tables:
            continue
        with warnings.catch_warnings():
            # pyarrow 25 reads tz-aware columns through Series.values, which pandas 3.1 deprecates.
            warnings.filterwarnings("ignore", message="Series.values", category=Pandas4Warning)
            table = pa.Table.from_pandas(tables[name], preserve_index=False)
        # pandas copies DataFrame.attrs into the schema metadata; keep files free of run metadata.
        metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"PANDAS_ATTRS"}
        pq.write_table(
            table.replace_schema_metadata(metadata), out_dir / f"{name}.parquet", compression="zstd"
        )
    (out_dir / "datacard.json").write_text(
        json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out_dir / "datacard.md").write_text(render_markdown(card), encoding="utf-8")
    return card
