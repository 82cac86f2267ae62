"""The service clock: what "now" is for the Scorer (real or simulated), to refuse events dated in the future.

Its own module because every kind of request (orders, onboarding, account events) checks its times
against it, and the service, the bare app and the benchmarks build one from their settings without
needing the Scorer.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from serving.errors import ScorerError

__all__ = ["Clock", "time_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_us(value: Any) -> int | None:
    """A time as integer microseconds since the epoch (None when missing)."""
    if value is None or value is pd.NaT:
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value) // 1000  # .value is nanoseconds whatever the unit


class Clock:
    """The service's notion of "now", to refuse events dated in the future.

    The online state accepts events up to its allowed lateness behind the newest one, so a single
    order dated next year would move that watermark and make every real order after it "late".
    ``check`` therefore refuses a time more than ``max_future_seconds`` ahead of now (clock skew
    between the platform and this service; default 5 minutes).

    ``start`` runs a simulated clock for replays and demos on data dated later than today (the
    synthetic data set runs to the end of 2026): now is ``start`` when the clock is made, and
    advances with real time. The service reads ``KYCRISK_CLOCK_START`` and
    ``KYCRISK_MAX_FUTURE_SECONDS`` (``from_env``).
    """

    def __init__(self, start: Any = None, max_future_seconds: float = 300.0):
        if not max_future_seconds >= 0:
            raise ValueError(f"max_future_seconds must be >= 0, got {max_future_seconds!r}")
        self.max_future_us = int(max_future_seconds * 1_000_000)
        self.offset_us = 0 if start is None else time_us(pd.Timestamp(start)) - time.time_ns() // 1000
        self.simulated = start is not None

    @classmethod
    def from_env(cls) -> Clock:
        start = os.environ.get("KYCRISK_CLOCK_START") or None
        seconds = os.environ.get("KYCRISK_MAX_FUTURE_SECONDS")
        try:
            return cls(start, 300.0 if seconds in (None, "") else float(seconds))
        except ValueError as exc:
            raise ValueError(f"KYCRISK_CLOCK_START / KYCRISK_MAX_FUTURE_SECONDS: {exc}") from exc

    def now_us(self) -> int:
        return time.time_ns() // 1000 + self.offset_us

    def check(self, value: Any, field: str) -> None:
        """Raise ``ScorerError`` naming ``field`` when ``value`` is too far ahead of now."""
        if isinstance(value, date) and not isinstance(value, datetime | pd.Timestamp):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, datetime) and not isinstance(value, pd.Timestamp):
            # Python's arithmetic: exact for any year 1-9999 (pandas' nanosecond range ends in 2262)
            aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            t = (aware - _EPOCH) // timedelta(microseconds=1)
        else:
            t = time_us(value)
        now = self.now_us()
        if t is not None and t > now + self.max_future_us:
            stamp = pd.Timestamp(t, unit="us", tz="UTC").isoformat()
            clock = pd.Timestamp(now, unit="us", tz="UTC").isoformat()
            raise ScorerError(
                f"{stamp} is {(t - now) / 1e6:,.0f} s ahead of the service clock ({clock}"
                f"{', simulated' if self.simulated else ''}); at most {self.max_future_us / 1e6:g} s ahead "
                "is accepted",
                field,
            )
