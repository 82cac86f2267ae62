"""The service state (``serving.state``): opening, closing and bulk-loading the stores of one state folder."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from features.synthetic import generate
from serving.profiles import StateLock, StateLocked
from serving.state import ServiceState, load_screener

KEY = os.urandom(32)
SALT = "a test salt of more than enough characters"


def _open(folder):
    return ServiceState.open(folder, "fraud_v1", salt=SALT, state_key=KEY)


def test_open_creates_the_stores_holds_the_state_lock_and_close_releases_it(tmp_path) -> None:
    state = _open(tmp_path / "state")
    try:
        names = {p.name for p in (tmp_path / "state").iterdir()}
        assert {"profiles.sqlite", "features.sqlite", "history.sqlite", "decisions.sqlite"} <= names
        with pytest.raises(StateLocked, match="in use by a running service"):
            StateLock(tmp_path / "state", exclusive=True)
    finally:
        state.close()
    StateLock(tmp_path / "state", exclusive=True).release()


def test_a_store_that_fails_to_open_closes_the_ones_opened_before_it(tmp_path) -> None:
    folder = tmp_path / "state"
    (folder / "decisions.sqlite").mkdir(parents=True)  # the decision log cannot open a folder
    with pytest.raises(Exception):  # noqa: B017 - whatever sqlite raises for it
        _open(folder)
    # the profile store opened first and took the lock: it was closed again
    StateLock(folder, exclusive=True).release()


def test_load_history_in_bulk_then_event_by_event_on_a_state_that_holds_events(tmp_path) -> None:
    tables = generate(n_customers=100, days=10, seed=5)
    transactions = tables["transactions"].sort_values("occurred_at", kind="stable")
    first = transactions.iloc[: len(transactions) // 2]
    rest = transactions.iloc[len(transactions) // 2 :]
    state = _open(tmp_path / "state")
    try:
        assert state.features.empty
        loaded = state.load_history({"transactions": first})
        assert loaded["transactions"] == len(first) and not state.features.empty
        # on top of an existing state: event by event, the last order again (a duplicate) ignored
        again = state.load_history({"transactions": pd.concat([first.tail(1), rest])})
        assert again == {"transactions": len(rest), "account_events": 0, "labels": 0}
    finally:
        state.close()


def test_load_screener_reads_the_stored_watchlist_unless_given_one(tmp_path) -> None:
    tables = generate(n_customers=100, days=10, seed=5)
    assert load_screener(None, tmp_path) is None
    assert load_screener(tables["watchlist"].iloc[:0], tmp_path) is None
    state = _open(tmp_path / "state")
    try:
        screener = state.store_watchlist(tables["watchlist"])
    finally:
        state.close()
    stored = load_screener(None, tmp_path / "state")
    assert stored is not None and type(stored) is type(screener)
