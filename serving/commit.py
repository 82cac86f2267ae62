"""One commit per request across the service's stores: idempotency, the outbox, recovery after a crash.

A request of the scoring service changes up to four sqlite files (decision log, online feature
state, customer history, profiles). ``RequestCommit`` makes that all or nothing, with the
decision log's transaction as the single commit point (``serving.journal`` rides in it):

1. ``claim``: the request's ids (``order:T-1``, ...) are claimed in the journal. A retry with an
   identical body gets the original answer (``done``); one with another body is a 409 naming
   the fields that differ; a duplicate arriving while the first is still in flight waits for it,
   so concurrent duplicates give one decision.
2. The Scorer applies the request's events to the feature state's MEMORY only
   (``OnlineFeatureStore.stage_*``: the next request sees them at once), decides, and appends
   its decisions with the journal write (idempotency rows + the sealed outbox of effects) in one
   transaction: the commit.
3. ``finish``: the staged feature rows, the customer history rows and the profile go to their
   files; the outbox row is marked done.

A crash before 3 ends leaves the effects in the outbox: ``recover`` (run when the Scorer opens the
state, before it serves) applies them again; every store ignores what it already holds. A crash
before the commit leaves nothing on disk at all (memory is gone with the process). A failure in
between without a crash (a bug, a full disk) makes memory ahead of disk: ``failed`` waits until
no other request is between staging and finishing, rebuilds memory from disk and re-applies the
outbox, so the state is again exactly what was committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from features.online import OnlineFeatureStore, StagedWrite
from serving.errors import IdempotencyConflict
from serving.history import CustomerHistory
from serving.journal import Journal, JournalEntry, body_digests

log = logging.getLogger(__name__)

__all__ = ["RequestCommit"]

WAIT_SECONDS = 60.0  # how long a duplicate waits for the request in flight (the HTTP timeout)


class RequestCommit:
    """Claims, finishes and recovers requests (see the module docstring).

    Args:
        journal: the idempotency table and outbox.
        features: the online feature state.
        history: the customer history.
        put_profiles: stores ``[(profile, screening), ...]`` unless the store already holds them
            as the customer's current profile (used to finish and to recover onboardings).
    """

    def __init__(
        self,
        journal: Journal,
        features: OnlineFeatureStore,
        history: CustomerHistory,
        put_profiles: Callable[[list[tuple[dict[str, Any], dict[str, Any]]]], Any],
    ):
        self.journal = journal
        self.features = features
        self.history = history
        self.put_profiles = put_profiles
        self._cond = threading.Condition()
        self._active = 0
        self._stale = False

    # -- idempotency --

    def entry(self, key: str, body: Mapping[str, Any]) -> JournalEntry:
        digest, fields = body_digests(body, self.journal.salt)
        return JournalEntry(key, digest, fields)

    def claim(
        self, entries: list[JournalEntry], where: list[str], *, strict: bool = True
    ) -> dict[int, JournalEntry]:
        """Claim the entries not done before; return the done ones by position (the replays).

        Args:
            entries: one per request id.
            where: the field path prefix of each (``""``, ``orders[3].``, ``events[1].``), for errors.
            strict: another body under a known id is a conflict (else a new version: onboarding).

        Raises:
            IdempotencyConflict: an id is known (or in flight) with another body; nothing is claimed.
        """
        todo = list(range(len(entries)))
        done: dict[int, JournalEntry] = {}
        while todo:
            claims = self.journal.claim([(entries[i], strict) for i in todo])
            conflicts = [
                (f"{where[i]}{field}", "differs from the earlier request with the same id")
                for i, c in zip(todo, claims, strict=True)
                if c.outcome == "conflict"
                for field in (c.fields or ["body"])
            ]
            if conflicts:
                raise IdempotencyConflict(
                    "an id of this request was used before with another body: "
                    + ", ".join(f for f, _ in conflicts),
                    conflicts[0][0],
                    conflicts,
                )
            waits = [c.event for c in claims if c.outcome == "wait"]
            for event in waits:
                if not event.wait(WAIT_SECONDS):
                    raise TimeoutError("an identical request with the same id is still in flight")
            if waits:
                continue  # the first one committed (look it up) or failed (claim it ourselves)
            for i, c in zip(todo, claims, strict=True):
                if c.outcome == "done":
                    done[i] = c.entry
            todo = [i for i, c in zip(todo, claims, strict=True) if c.outcome == "new"]
            if todo and len(todo) < len(claims):
                continue  # claim only the new ones
            break
        return done

    def release(self, entries: Iterable[JournalEntry]) -> None:
        self.journal.release([e.key for e in entries])

    # -- staging gate --

    def enter(self) -> None:
        """Before staging: wait while a failure is being repaired."""
        with self._cond:
            while self._stale:
                self._cond.wait()
            self._active += 1

    def leave(self) -> None:
        """After finishing (or when nothing was staged)."""
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def failed(self) -> None:
        """A request failed between staging and finishing: rebuild memory from what was committed."""
        with self._cond:
            self._active -= 1
            self._stale = True
            self._cond.notify_all()
            while self._active > 0:
                self._cond.wait()
            try:
                self.features.reload()
                self.recover()
            finally:
                self._stale = False
                self._cond.notify_all()

    # -- effects --

    @staticmethod
    def effects(
        transactions: list[dict[str, Any]] = (),  # type: ignore[assignment]
        account_events: list[dict[str, Any]] = (),  # type: ignore[assignment]
        labels: list[dict[str, Any]] = (),  # type: ignore[assignment]
        profiles: list[tuple[dict[str, Any], dict[str, Any]]] = (),  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """The outbox payload of a request."""
        return {
            "transactions": list(transactions),
            "account_events": list(account_events),
            "labels": list(labels),
            "profiles": [list(p) for p in profiles],
        }

    def finish(self, effects: Mapping[str, Any], staged: list[StagedWrite | None], outbox_id: int) -> None:
        """Write a committed request's effects to the stores, then mark its outbox row done."""
        self.features.persist(staged)
        self._history(effects)
        if effects["profiles"]:
            self.put_profiles([tuple(p) for p in effects["profiles"]])
        self.journal.mark_done(outbox_id)

    def _history(self, effects: Mapping[str, Any]) -> None:
        if effects["transactions"]:
            self.history.add_transactions(effects["transactions"])
        if effects["account_events"]:
            self.history.add_account_events(effects["account_events"])
        if effects["labels"]:
            self.history.add_labels(effects["labels"])

    def recover(self) -> int:
        """Apply again every committed effect a crash or failure left in the outbox.

        Events are re-staged without the lateness check (they were accepted when they arrived);
        every store ignores what it holds already.

        Returns:
            The number of outbox rows applied.
        """
        pending = self.journal.pending()
        refused = 0
        for outbox_id, effects in pending:
            try:
                staged: list[StagedWrite | None] = []
                staged += [
                    self.features.stage_transaction(e, check_time=False) for e in effects["transactions"]
                ]
                staged += [
                    self.features.stage_account_event(e, check_time=False) for e in effects["account_events"]
                ]
                staged += [self.features.stage_label(e) for e in effects["labels"]]
                self.finish(effects, staged, outbox_id)
            except Exception as exc:  # one bad row must not stop every start: set it aside
                self.journal.quarantine(outbox_id, f"{type(exc).__name__}: {exc}")
                refused += 1
        if refused:
            self.features.reload()  # drop what the refused rows staged in memory
        self.journal.flush_done()
        if pending:
            log.warning(
                "recovered %d interrupted request(s) from the outbox (%d quarantined)", len(pending), refused
            )
        return len(pending)
