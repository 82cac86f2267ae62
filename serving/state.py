"""The service state: the stores of one state folder, opened with their keys, loaded in bulk, closed.

``ServiceState.open`` is the one place where the Scorer's stores are constructed from a state
folder and the secrets (``serving.secrets_config``), so that a later choice of store
implementation by configuration (sqlite by default, Redis / PostgreSQL) changes this module only.
Under ``<state_dir>`` today:

- ``profiles.sqlite``: the customer profile store (``serving.profiles.ProfileStore``), encrypted
  with the state key. It is opened first: it takes the state folder's lock (``state.lock``,
  shared while the service runs; the privacy commands take it exclusively) before any other store
  is read;
- ``features.sqlite``: the online feature state (``features.online.OnlineFeatureStore``), its
  device and IP keys pseudonymised with the salt;
- ``history.sqlite``: the customer history (``serving.history.CustomerHistory``) that the
  risk-tier model's customer behaviour reads, device ids pseudonymised likewise;
- ``decisions.sqlite``: the decision log (``serving.decision_log.DecisionLog``, HMAC-keyed when a
  key is configured, its head anchored where ``KYCRISK_DECISION_LOG_ANCHORS`` names) and, in its
  transactions, the request journal (``serving.journal.Journal``) whose outbox is sealed with the
  state key;
- ``watchlist.parquet``: the watchlist the onboarding screener is fitted on (written by seeding).

Secrets come from configuration, never from the state folder (``serving.secrets_config``): the
pseudonym salt (``KYCRISK_PII_SALT``) pseudonymises personal data in the decision log and the device
ids of the feature state and the customer history (``serving.privacy.Pseudonymiser``), the state
key (``KYCRISK_STATE_KEY``) encrypts the profile store (``serving.profiles``) and the journal's
outbox, and the log is keyed (HMAC) when ``KYCRISK_DECISION_LOG_KEY`` is set; each from its
environment variable or the secrets file that ``KYCRISK_SECRETS_FILE`` names. The state folder's
lock is held (shared) while the state is open, so the privacy commands refuse a state in use.

Split from ``serving.scorer``, whose ``__init__`` used to open these inline: the Scorer decides,
this module keeps the files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from features.online import OnlineFeatureStore, event_log
from features.screening import WatchlistScreener
from serving.decision_log import ANCHORS_ENV, DecisionLog
from serving.history import CustomerHistory
from serving.journal import Journal
from serving.privacy import Pseudonymiser
from serving.profiles import ProfileCipher, ProfileStore
from serving.secrets_config import Secrets, resolve_secrets

__all__ = ["WATCHLIST_FILE", "ServiceState", "load_screener"]

WATCHLIST_FILE = "watchlist.parquet"


@dataclasses.dataclass(frozen=True)
class ServiceState:
    """The open stores of one state folder (see the module docstring); build it with ``open``."""

    state_dir: Path
    secrets: Secrets
    profiles: ProfileStore
    pseudonymise: Pseudonymiser
    features: OnlineFeatureStore
    history: CustomerHistory
    decisions: DecisionLog
    journal: Journal

    @classmethod
    def open(
        cls,
        state_dir: str | Path,
        feature_set: str,
        *,
        salt: bytes | str | None = None,
        state_key: bytes | str | None = None,
        decision_log_key: bytes | str | None = None,
    ) -> ServiceState:
        """Open (or create) every store of ``state_dir``; a store that fails closes those opened before it.

        Args:
            state_dir: the state folder (created when missing).
            feature_set: the online feature definitions the feature state keeps (the fraud model's).
            salt, state_key, decision_log_key: secrets given explicitly; the others come from
                configuration (``serving.secrets_config.resolve_secrets``), never from the state folder.

        Raises:
            serving.secrets_config.SecretsError: no salt or state key is configured.
            serving.profiles.StateKeyError: the state key is not the one the state was written with.
            serving.profiles.StateLocked: a privacy command holds the state folder.
        """
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        secrets = resolve_secrets(
            state_dir, salt=salt, state_key=state_key, decision_log_key=decision_log_key
        )
        with contextlib.ExitStack() as opened:
            # the profile store first: it takes the state folder's lock before any store is read
            profiles = opened.enter_context(
                contextlib.closing(ProfileStore(state_dir / "profiles.sqlite", secrets.state_key))
            )
            pseudonymise = Pseudonymiser(secrets.salt)
            features = opened.enter_context(
                OnlineFeatureStore(state_dir / "features.sqlite", feature_set, pseudonymise=pseudonymise)
            )
            history = opened.enter_context(CustomerHistory(state_dir / "history.sqlite", pseudonymise))
            anchors = os.environ.get(ANCHORS_ENV) or None  # the head, anchored outside the state (auditors)
            decisions = opened.enter_context(
                DecisionLog(
                    state_dir / "decisions.sqlite",
                    key=secrets.decision_log_key,
                    salt=secrets.salt,
                    group_commit=True,  # concurrent requests share one fsync; each still returns only once on disk
                    anchors=anchors,
                )
            )
            # the journal rides in the decision log's transactions; its outbox holds personal data,
            # sealed with the state key
            journal = Journal(decisions, cipher=ProfileCipher(secrets.state_key), salt=secrets.salt)
            opened.pop_all()  # all open: from here on ``close`` closes them
        return cls(state_dir, secrets, profiles, pseudonymise, features, history, decisions, journal)

    def close(self) -> None:
        """Close every store (what was committed is already on disk)."""
        self.journal.flush_done()
        self.journal.close()
        self.features.close()
        self.profiles.close()
        self.history.close()
        self.decisions.close()

    def store_watchlist(self, watchlist: pd.DataFrame) -> WatchlistScreener:
        """Keep ``watchlist`` in the state folder (the next start screens with it) and return its screener."""
        watchlist.to_parquet(self.state_dir / WATCHLIST_FILE)
        return WatchlistScreener().fit(watchlist)

    def load_history(self, tables: Mapping[str, pd.DataFrame | None]) -> dict[str, int]:
        """Load a data set's transactions, account events and labels into the history and the feature state.

        The customer history takes the raw rows in bulk (idempotent by id). An empty feature state
        is loaded in bulk too; one that already holds events takes them event by event, duplicates
        ignored.

        Args:
            tables: the data set's tables by contract name (``transactions`` required).

        Returns:
            Counts ``transactions``, ``account_events``, ``labels`` applied to the feature state.
        """
        # The raw rows the risk-tier model's customer behaviour reads (bulk, idempotent by id).
        self.history.add_transactions(tables["transactions"])
        for name, add in (
            ("account_events", self.history.add_account_events),
            ("labels", self.history.add_labels),
        ):
            if tables.get(name) is not None:
                add(tables[name])
        events = event_log(tables)
        counts = {"transactions": 0, "account_events": 0, "labels": 0}
        if self.features.empty:
            # the bulk path: the same state as event by event (tested), 8x faster, and one
            # sqlite transaction (all or nothing) so no fsync needs turning off
            counts.update(self.features.bulk_apply(events))
        else:
            # seeding on top of an existing state: event by event, duplicates ignored. A bulk
            # load that is simply redone if it fails: skip the per-event fsync meanwhile.
            conn = self.features._conn
            conn.execute("PRAGMA synchronous=OFF")
            try:
                self._apply_one_by_one(events, counts)
            finally:
                conn.execute("PRAGMA synchronous=NORMAL")
        return counts

    def _apply_one_by_one(
        self, events: Iterable[tuple[str, Mapping[str, Any]]], counts: dict[str, int]
    ) -> None:
        for kind, rec in events:
            if kind == "transaction":
                counts["transactions"] += self.features.apply_transaction(rec)
            elif kind == "account_event":
                counts["account_events"] += self.features.apply_account_event(rec)
            else:
                counts["labels"] += self.features.apply_label(rec)


def load_screener(watchlist: str | Path | pd.DataFrame | None, state_dir: Path) -> WatchlistScreener | None:
    """The onboarding screener: fitted on ``watchlist`` (a table, or a parquet / CSV file), else on the
    state folder's stored watchlist; None when there is none or it is empty."""
    if watchlist is None:
        stored = state_dir / WATCHLIST_FILE
        if not stored.is_file():
            return None
        watchlist = stored
    if not isinstance(watchlist, pd.DataFrame):
        path = Path(watchlist)
        watchlist = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return WatchlistScreener().fit(watchlist) if len(watchlist) else None
