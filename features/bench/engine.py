"""Benchmark of the batch feature engine against polars and pandas on the same synthetic data.

``run()`` generates synthetic transactions with numpy (skewed like a marketplace: many buyers
with a few orders, a few sellers with very many), computes the same windowed aggregations with
three engines, checks them against each other and against a brute-force computation on a random
sample of rows, and returns the timings. The lead wires it as
``kycrisk bench features --transactions 5000000 --json``.

The aggregations: buyer count/sum/mean/max/std and seller count/sum of the USD amount over
1h, 24h, 7d and 30d, and the seller's distinct buyers over 7d; every window is ``[t - w, t)``
(``closed="left"`` in all three engines, ties at ``t`` excluded).

The data come from ``features.synthetic.fast_tables`` (the generator the tests use as well).
"""

from __future__ import annotations

import math
import resource
import time
from typing import Any

import numpy as np
import pandas as pd

from features.batch import compute_features, timestamps_us
from features.definitions import Aggregation, FeatureSet
from features.synthetic.fast_tables import synthetic_tables, synthetic_transactions

BENCH_WINDOWS = ("1h", "24h", "7d", "30d")
# --- The benchmark -------------------------------------------------------------------------------


def bench_feature_set() -> FeatureSet:
    """The benchmark's aggregations, all with ``[t - w, t)`` windows (polars' ``closed="left"``)."""
    aggs: list[Aggregation] = []
    for w in BENCH_WINDOWS:
        aggs += [Aggregation("buyer", "txn", "count", w, closed="left")]
        aggs += [Aggregation("buyer", "amount", op, w, closed="left") for op in ("sum", "mean", "max", "std")]
        aggs += [Aggregation("seller", "txn", "count", w, closed="left")]
        aggs += [Aggregation("seller", "amount", "sum", w, closed="left")]
    aggs.append(Aggregation("seller", "buyer", "nunique", "7d", closed="left"))
    return FeatureSet("bench_features", "1", "benchmark aggregations", (), tuple(aggs))


def _polars(df: pd.DataFrame) -> tuple[float, dict[str, np.ndarray]]:
    """The benchmark's aggregations with polars' rolling group_by; results in ``df``'s row order."""
    import polars as pl

    p = pl.from_pandas(df[["occurred_at", "buyer_id", "seller_id", "amount"]]).with_row_index("row")
    elapsed = 0.0
    out: dict[str, np.ndarray] = {}
    amt = pl.col("amount")
    for entity, col in (("buyer", "buyer_id"), ("seller", "seller_id")):
        t0 = time.perf_counter()
        sorted_ = p.sort(col, "occurred_at")
        elapsed += time.perf_counter() - t0
        for w in BENCH_WINDOWS:
            if entity == "buyer":
                aggs = [pl.len(), amt.sum(), amt.mean(), amt.max(), amt.std()]
                names = ["txn_count", "amount_sum", "amount_mean", "amount_max", "amount_std"]
            else:
                aggs = [pl.len(), amt.sum()]
                names = ["txn_count", "amount_sum"]
            if entity == "seller" and w == "7d":
                aggs.append(pl.col("buyer_id").n_unique())
                names.append("buyer_nunique")
            t0 = time.perf_counter()
            res = sorted_.rolling(index_column="occurred_at", period=w, closed="left", group_by=col).agg(
                *[a.alias(nm) for a, nm in zip(aggs, names, strict=True)]
            )
            elapsed += time.perf_counter() - t0
            # One output row per input row, but not in input order: align on (key, time) (rows
            # tied on both have equal windows, hence equal values). Not timed.
            res = res.sort(col, "occurred_at", maintain_order=True)
            rows = sorted_["row"].to_numpy()
            for nm in names:
                values = np.empty(len(df))
                values[rows] = res[nm].cast(pl.Float64).to_numpy()
                suffix = "_closed_left"
                window = w if nm != "buyer_nunique" else "7d"
                out[f"{entity}_{nm}_{window}{suffix}"] = values
    return elapsed, out


def _pandas(df: pd.DataFrame, rows: int) -> float:
    """Seconds for a straightforward pandas groupby().rolling() of the aggregations on ``rows`` rows."""
    sub = df.iloc[:rows][["occurred_at", "buyer_id", "seller_id", "amount"]]
    start = time.perf_counter()
    for w in BENCH_WINDOWS:
        sub.groupby("buyer_id").rolling(w, on="occurred_at", closed="left")["amount"].agg(
            ["count", "sum", "mean", "max", "std"]
        )
        sub.groupby("seller_id").rolling(w, on="occurred_at", closed="left")["amount"].agg(["count", "sum"])
    codes = sub.assign(b=pd.factorize(sub["buyer_id"])[0].astype(float))
    codes.groupby("seller_id").rolling("7d", on="occurred_at", closed="left")["b"].apply(
        lambda a: len(np.unique(a)), raw=True
    )
    return time.perf_counter() - start


def _brute_force(df: pd.DataFrame, fs: FeatureSet, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The aggregations for a few rows, by scanning each row's entity history (exact sums)."""
    t = timestamps_us(df["occurred_at"])
    x = df["amount"].to_numpy(dtype=float)
    buyers = df["buyer_id"].to_numpy()
    index = {c: df.groupby(c, sort=False).indices for c in ("buyer_id", "seller_id")}
    out = {a.name: np.full(len(rows), np.nan) for a in fs.aggregations}
    for k, i in enumerate(rows):
        for a in fs.aggregations:
            col = "buyer_id" if a.entity == "buyer" else "seller_id"
            js = index[col][df[col].iat[i]]
            lo_off, hi_off = a.offsets()
            js = js[(t[js] + lo_off <= t[i]) & (t[i] < t[js] + hi_off)]
            vals = x[js]
            if a.op == "count":
                v = float(len(js))
            elif a.op == "sum":
                v = math.fsum(vals)
            elif a.op == "mean":
                v = math.fsum(vals) / len(vals) if len(vals) else np.nan
            elif a.op == "max":
                v = float(vals.max()) if len(vals) else np.nan
            elif a.op == "std":
                v = float(np.std(vals, ddof=1)) if len(vals) >= 2 else np.nan
            else:
                v = float(len(set(buyers[js])))
            out[a.name][k] = v
    return out


def _rel_err(got: np.ndarray, expected: np.ndarray) -> float:
    both_nan = np.isnan(got) & np.isnan(expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(got - expected) / np.maximum(np.abs(expected), 1e-300)
    err = np.where(both_nan, 0.0, err)
    err = np.where(np.isnan(err), np.inf, err)
    return float(err.max()) if len(err) else 0.0


def run(
    n_transactions: int = 5_000_000,
    seed: int = 0,
    pandas_subset: int | None = 250_000,
    check_rows: int = 2_000,
) -> dict[str, Any]:
    """Time the batch engine, polars and pandas on the same synthetic transactions.

    Args:
        n_transactions: number of synthetic transactions.
        seed: random seed of the data and the checked sample.
        pandas_subset: time pandas on the first this many rows (in time order) and scale the
            time linearly to all rows; ``None`` runs pandas on everything. The early rows have
            shorter histories than later ones, so the scaled figure underestimates pandas.
        check_rows: rows checked against brute force.

    Returns:
        ``ours_s``, ``polars_s``, ``pandas_s`` (seconds; pandas scaled when run on a subset),
        ``pandas_scaled_from_rows`` (rows pandas actually ran on, or ``None``),
        ``peak_rss_mb`` (whole process, all three engines), ``transactions``, ``max_rel_err``
        (ours vs. brute force on the sample; counts must match exactly),
        ``max_rel_err_vs_polars`` (all rows), ``ratio_vs_polars`` (ours / polars),
        ``speedup_vs_pandas`` (pandas / ours), ``checked_rows``, ``notes``, ``features``.

    Raises:
        AssertionError: when a count differs from brute force or a value by more than 1e-9.
    """
    df = synthetic_transactions(n_transactions, seed, usd_only=True)
    fs = bench_feature_set()

    start = time.perf_counter()
    ours = compute_features(
        df[["transaction_id", "occurred_at", "buyer_id", "seller_id", "amount", "currency"]], fs
    )
    ours_s = time.perf_counter() - start

    polars_s, pol = _polars(df)

    rows_run = n_transactions if pandas_subset is None else min(pandas_subset, n_transactions)
    pandas_s = _pandas(df, rows_run) * (n_transactions / rows_run)

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n_transactions, min(check_rows, n_transactions), replace=False))
    brute = _brute_force(df, fs, sample)
    max_rel = 0.0
    for a in fs.aggregations:
        got = ours[a.name].to_numpy()[sample]
        if a.op in ("count", "nunique"):
            assert np.array_equal(got, brute[a.name]), f"{a.name} differs from brute force"
        else:
            max_rel = max(max_rel, _rel_err(got, brute[a.name]))
    assert max_rel <= 1e-9, f"max relative error vs brute force {max_rel}"
    vs_polars = max(_rel_err(ours[name].to_numpy(), values) for name, values in pol.items())

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "ours_s": round(ours_s, 3),
        "polars_s": round(polars_s, 3),
        "pandas_s": round(pandas_s, 3),
        "pandas_scaled_from_rows": None if rows_run == n_transactions else rows_run,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "transactions": n_transactions,
        "max_rel_err": max_rel,
        "max_rel_err_vs_polars": vs_polars,
        "ratio_vs_polars": round(ours_s / polars_s, 3),
        "speedup_vs_pandas": round(pandas_s / ours_s, 1),
        "checked_rows": len(sample),
        "notes": [
            "same data, windows [t - w, t) and ops in all three engines; ours starts from the pandas frame "
            "(string ids), polars from a polars frame (conversion not timed, per-entity sort timed)",
            f"pandas timed on the first {rows_run} rows in time order and scaled linearly (an underestimate: "
            "later rows have longer histories)"
            if rows_run != n_transactions
            else "pandas run on all rows",
        ],
        "features": [a.name for a in fs.aggregations],
    }


__all__ = ["bench_feature_set", "run", "run_late", "run_online", "run_seed"]


def run_online(
    n_warm: int = 30_000, n_measure: int = 2_000, feature_set: str = "fraud_v1", seed: int = 0
) -> dict:
    """Single-event latency of the online engine on a warm sqlite state.

    Replays about ``n_warm`` synthetic transactions (with their account events and labels) (transactions, account events, labels in time order)
    into a file-backed store, then times ``compute`` (features only) and ``apply_transaction``
    (the transactional state update) for each of the next ``n_measure`` transactions, one at a
    time. Both wall-clock and CPU time are reported: on a shared machine the wall-clock tail
    includes time the process was not running.

    Returns:
        ``{"compute_p50_ms", "compute_p99_ms", "compute_cpu_p99_ms", "apply_p50_ms",
        "apply_p99_ms", "events_warm", "transactions_measured", "feature_set"}``.
    """
    import tempfile
    import time
    from pathlib import Path

    from features.online import OnlineFeatureStore, event_log

    tables = synthetic_tables(n_warm + n_measure, seed=seed, days=30)  # transactions
    log = event_log(tables)
    with tempfile.TemporaryDirectory(prefix="kycrisk-online-") as tmp:
        store = OnlineFeatureStore(Path(tmp) / "state.db", feature_set)
        try:
            positions = [i for i, (kind, _) in enumerate(log) if kind == "transaction"]
            split = positions[max(0, len(positions) - n_measure)]
            store.replay(log[:split])
            wall, cpu, apply = [], [], []
            measured = 0
            for kind, record in log[split:]:
                if kind != "transaction":
                    (store.apply_account_event if kind == "account_event" else store.apply_label)(record)
                    continue
                w0, c0 = time.perf_counter(), time.process_time()
                store.compute(record)
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
                a0 = time.perf_counter()
                store.apply_transaction(record)
                apply.append(time.perf_counter() - a0)
                measured += 1
        finally:
            store.close()

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(np.asarray(values) * 1000.0, q)), 4)

    return {
        "feature_set": feature_set,
        "events_warm": split,
        "transactions_measured": measured,
        "compute_p50_ms": pct(wall, 50),
        "compute_p99_ms": pct(wall, 99),
        "compute_cpu_p99_ms": pct(cpu, 99),
        "apply_p50_ms": pct(apply, 50),
        "apply_p99_ms": pct(apply, 99),
    }


def run_seed(
    n_transactions: int = 30_000,
    feature_set: str = "fraud_v1",
    seed: int = 0,
    data_dir: str | None = None,
    n_probes: int = 200,
) -> dict:
    """Seeding an empty sqlite state: one event at a time (as ``Scorer.seed`` replayed) vs ``bulk_apply``.

    Both runs start from an empty file-backed store and take the same ``event_log``; the
    one-by-one run uses ``PRAGMA synchronous=OFF`` like the scorer's seeding did. Afterwards the
    two states must agree: the same applied counts, the same sqlite rows (digest of every table,
    sorted) and the same features for ``n_probes`` transactions from the end of the log.

    Args:
        n_transactions: synthetic transactions (``synthetic_tables``, 30 days) when ``data_dir``
            is not given.
        feature_set: feature set of the store.
        seed: random seed of the synthetic data.
        data_dir: a data folder (``kycrisk generate`` output) to seed from instead.
        n_probes: transactions whose features are compared.

    Returns:
        ``{"events", "applied", "event_log_s", "one_by_one_s", "bulk_s", "speedup",
        "peak_rss_mb_after_bulk", "peak_rss_mb_after_one_by_one", "identical", "feature_set",
        "source"}``; ``peak_rss_mb_*`` is the process's peak so far (bulk runs first).
    """
    import hashlib
    import tempfile
    from pathlib import Path

    from features.online import OnlineFeatureStore, event_log, timestamp_us

    if data_dir is not None:
        from features.io import load_valid_dataset

        tables = dict(load_valid_dataset(Path(data_dir)))
        source = str(data_dir)
    else:
        tables = synthetic_tables(n_transactions, seed=seed, days=30)
        source = f"synthetic_tables({n_transactions}, seed={seed}, days=30)"
    t0 = time.perf_counter()
    log = event_log(tables)
    log_s = time.perf_counter() - t0

    def rss_mb() -> float:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    def digest(store: OnlineFeatureStore) -> str:
        h = hashlib.sha256()
        for table in ("meta", "events", "bad_labels", "bases", "first_seen"):
            for row in sorted(store._conn.execute(f"SELECT * FROM {table}").fetchall()):
                h.update(repr(row).encode())
        return h.hexdigest()

    with tempfile.TemporaryDirectory(prefix="kycrisk-seed-") as tmp:
        bulk = OnlineFeatureStore(Path(tmp) / "bulk.db", feature_set)
        t0 = time.perf_counter()
        bulk_counts = bulk.bulk_apply(log)
        bulk_s = time.perf_counter() - t0
        rss_bulk = rss_mb()
        oldest = bulk._watermark - bulk.lateness_us if bulk._watermark is not None else 0
        probes = [r for k, r in log if k == "transaction" and timestamp_us(r["occurred_at"]) >= oldest]
        probes = probes[-n_probes:]
        one = OnlineFeatureStore(Path(tmp) / "one.db", feature_set)
        one._conn.execute("PRAGMA synchronous=OFF")
        counts = {"transactions": 0, "account_events": 0, "labels": 0}
        apply = {
            "transaction": (one.apply_transaction, "transactions"),
            "account_event": (one.apply_account_event, "account_events"),
            "label": (one.apply_label, "labels"),
        }
        t0 = time.perf_counter()
        for kind, rec in log:
            fn, name = apply[kind]
            counts[name] += fn(rec)
        one_s = time.perf_counter() - t0
        one._conn.execute("PRAGMA synchronous=NORMAL")
        rss_one = rss_mb()
        same_features = all(
            np.array_equal(
                np.array(list(one.compute(p).values())),
                np.array(list(bulk.compute(p).values())),
                equal_nan=True,
            )
            for p in probes
        )
        identical = counts == bulk_counts and digest(one) == digest(bulk) and same_features
        one.close()
        bulk.close()
    return {
        "feature_set": feature_set,
        "source": source,
        "events": len(log),
        "applied": bulk_counts,
        "event_log_s": round(log_s, 2),
        "one_by_one_s": round(one_s, 2),
        "bulk_s": round(bulk_s, 2),
        "speedup": round(one_s / bulk_s, 1) if bulk_s else None,
        "peak_rss_mb_after_bulk": rss_bulk,
        "peak_rss_mb_after_one_by_one": rss_one,
        "identical": bool(identical),
    }


def run_late(
    n_warm: int = 30_000,
    n_measure: int = 2_000,
    feature_set: str = "fraud_v1",
    late_seconds: float = 5.0,
    rate: float = 100.0,
    seed: int = 0,
) -> dict:
    """Late orders against in-order ones: the same orders, the same warm state, one run.

    A file-backed state is seeded (``bulk_apply``) with ``n_warm`` skewed synthetic transactions
    (``synthetic_transactions``, 30 days) and copied, so that both runs start from the same state. The next ``n_measure`` transactions are dated ``1 / rate`` seconds apart after the
    newest warm event (100 orders/s, the service's load: at the synthetic data's own pace of
    one order a minute an order is rarely behind another in its entities' logs). The in-order
    run applies them in time order; the late run in arrival order, each arriving up to
    ``late_seconds`` after its time (uniform delay), so most arrive behind newer ones. Each
    order is scored (``compute``) then applied (``apply_transaction``) as the service does; the
    two runs alternate order by order, so both see the same machine load. Afterwards both hold
    the same events, so they must answer the same features for probes after the newest order.

    Returns:
        ``{"feature_set", "events_warm", "orders", "late_seconds", "orders_per_second",
        "late_orders", "mean_lateness_s", "in_order_p50_ms", "in_order_p99_ms", "late_p50_ms",
        "late_p99_ms", "ratio_p50", "ratio_p99", "identical"}``: per-order times of score plus
        apply, and the late/in-order ratios of their percentiles.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from features.online import OnlineFeatureStore, event_log, timestamp_us

    # Skewed like a marketplace (the busiest sellers take thousands of orders a month): a late
    # order's cost is in the logs it lands in, and the busy ones are where it used to hurt.
    log = event_log({"transactions": synthetic_transactions(n_warm + n_measure, seed=seed, days=30)})
    positions = [i for i, (kind, _) in enumerate(log) if kind == "transaction"]
    split = positions[max(0, len(positions) - n_measure)]
    start = max(timestamp_us(rec["occurred_at"]) for kind, rec in log[:split] if kind != "label")
    gap = 1e6 / rate
    orders = [
        dict(rec, occurred_at=start + int((i + 1) * gap))
        for i, rec in enumerate(rec for kind, rec in log[split:] if kind == "transaction")
    ]
    delay = np.random.default_rng(seed).uniform(0.0, late_seconds * 1e6, len(orders))
    arrival = np.argsort([o["occurred_at"] + d for o, d in zip(orders, delay, strict=True)], kind="stable")
    with tempfile.TemporaryDirectory(prefix="kycrisk-late-") as tmp:
        warm = OnlineFeatureStore(Path(tmp) / "warm.db", feature_set)
        warm.bulk_apply(log[:split])
        warm.close()
        for name in ("in_order.db", "late.db"):
            shutil.copy(Path(tmp) / "warm.db", Path(tmp) / name)
        runs = {
            "in_order": (OnlineFeatureStore(Path(tmp) / "in_order.db", feature_set), range(len(orders))),
            "late": (OnlineFeatureStore(Path(tmp) / "late.db", feature_set), arrival),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        late, lateness = 0, 0.0
        newest = start
        try:
            for k in range(len(orders)):
                for name, (store, sequence) in runs.items():
                    order = orders[sequence[k]]
                    t0 = time.perf_counter()
                    store.compute(order)
                    store.apply_transaction(order)
                    times[name].append(time.perf_counter() - t0)
                    if name == "late":
                        if order["occurred_at"] < newest:
                            late += 1
                            lateness += (newest - order["occurred_at"]) / 1e6
                        newest = max(newest, order["occurred_at"])
            after = orders[-1]["occurred_at"] + 60_000_000
            probes = [dict(o, occurred_at=after) for o in orders[-200:]]
            a, b = (runs[name][0] for name in ("in_order", "late"))
            identical = all(
                np.array_equal(
                    np.array(list(a.compute(p).values())), np.array(list(b.compute(p).values())), equal_nan=True
                )
                for p in probes
            )
        finally:
            for store, _ in runs.values():
                store.close()

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(np.asarray(values) * 1000.0, q))

    out: dict[str, Any] = {
        "feature_set": feature_set,
        "events_warm": split,
        "orders": len(orders),
        "late_seconds": late_seconds,
        "orders_per_second": rate,
        "late_orders": late,
        "mean_lateness_s": round(lateness / late, 3) if late else 0.0,
    }
    for name in runs:
        out[f"{name}_p50_ms"] = round(pct(times[name], 50), 4)
        out[f"{name}_p99_ms"] = round(pct(times[name], 99), 4)
    out["ratio_p50"] = round(pct(times["late"], 50) / pct(times["in_order"], 50), 2)
    out["ratio_p99"] = round(pct(times["late"], 99) / pct(times["in_order"], 99), 2)
    out["identical"] = bool(identical)
    return out
