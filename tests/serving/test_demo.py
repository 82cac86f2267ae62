"""The serving half of ``kycrisk demo``: seed, real server, replay through HTTP, onboard, verify, stop."""

from __future__ import annotations

import pandas as pd
import pytest

from serving import demo

pytestmark = pytest.mark.filterwarnings("ignore")


def test_split_and_replay_stream_cover_the_data_once(champion, tmp_path) -> None:
    tables = {name: pd.read_parquet(champion.data / f"{name}.parquet") for name in
              ("customers", "transactions", "account_events", "labels", "watchlist")}  # fmt: skip
    end = tables["transactions"]["occurred_at"].max()
    cut = end - pd.Timedelta(hours=12)
    kept = demo.split_history(tables, cut, tmp_path / "history")
    stream = demo.replay_stream(tables, cut)
    orders = [body for kind, body in stream if kind == "order"]
    assert kept["transactions"] + len(orders) == len(tables["transactions"])
    events = [body for kind, body in stream if kind == "event"]
    assert kept["account_events"] + sum(e["kind"] == "account_event" for e in events) == len(
        tables["account_events"]
    )
    known = tables["labels"]["known_at"] <= end  # later labels have not happened at the replay's end
    assert kept["labels"] + sum(e["kind"] == "label" for e in events) == int(known.sum())
    times = [pd.Timestamp(b.get("occurred_at") or b.get("known_at")) for _, b in stream]
    assert times == sorted(times) and times[0] >= cut


def test_demo_serves_replays_onboards_and_verifies(champion, risk_champion, mlflow_store, tmp_path) -> None:
    lines: list[str] = []
    result = demo.run(
        champion.data, tmp_path, tracking_uri=mlflow_store.tracking_uri, hours=6, out=lines.append
    )
    text = "\n".join(lines)
    assert result["orders"] > 0 and result["events"] > 0
    assert sum(result["actions"].values()) == result["orders"]
    assert "APPROVE order" in text
    assert result["onboarded"]["sanctions look-alike"] == ("high", "report")
    assert result["onboarded"]["ordinary customer"][0] in ("low", "medium")
    assert "Name matches sanctions list entry W" in text
    assert result["log_ok"] and result["replay_matches"]
    assert result["log_records"] == result["orders"] + 3
    # the server is gone: its port is closed
    assert "service stopped" in text
