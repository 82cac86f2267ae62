"""Verifying a decision log file: ``verify_path`` and its verdicts (``VerifyReport``, ``Problem``).

Read-only and apart from the store, so that an auditor's ``kycrisk audit verify`` needs neither a
writer nor the scoring stack (nor pandas, nor the tier policy).

Verification
    ``verify`` checks the whole chain streaming (it builds the same bytes from the stored text
    without parsing it) and names the first broken ``seq`` and why: an edited record (its
    contents no longer match its hash), a deleted one (a gap in ``seq``), an inserted one (it does
    not chain to its predecessor, or repeats a ``seq``), a reordered one (its hash matches its
    contents under another ``seq``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from serving.decision_log.anchors import Anchor, AnchorsArg, _anchor_list
from serving.decision_log.keys import KEY_ENV, _secret
from serving.decision_log.records import (
    _HASHED,
    _PREV,
    _SEQ,
    CHAINS,
    FORMAT_VERSION,
    _canonical,
    _digest,
    _key_id,
    genesis_hash,
)
from serving.decision_log.schema import _connect, _meta

ProblemKind = Literal[
    "edited",
    "deleted",
    "inserted",
    "reordered",
    "truncated",
    "anchor",
    "unanchored",
    "downgrade",
    "header",
    "swapped",
    "key",
    "format",
]
# Problems that stop verification before any record is read: the file cannot be checked at all.
_UNVERIFIABLE = frozenset({"key", "format"})


class Problem(BaseModel):
    """One break in the chain: where, what kind, and an explanation for people.

    Kinds: ``edited``, ``deleted``, ``inserted``, ``reordered`` (a record); ``truncated``,
    ``anchor`` (a hash other than the anchored one), ``unanchored`` (records after the last
    anchor, written on close), ``downgrade``, ``header``, ``swapped`` (the log against its
    anchors); ``key`` and ``format`` mean the log could not be verified at all (its key is
    needed, a wrong key was given, or it is not a decision log of this format).
    """

    model_config = ConfigDict(frozen=True)

    seq: int | None
    kind: ProblemKind
    detail: str


class VerifyReport(BaseModel):
    """The outcome of verifying a decision log; ``str()`` is a one-line summary, ``to_json()`` JSON.

    Attributes:
        path: the log file.
        ok: whether the whole chain (and every anchor) checked out.
        records: how many records were read.
        head_seq: the last record's seq (0 when empty).
        head_hash: the last record's hash (the log's genesis hash when empty).
        keyed: whether the hashes were checked as HMAC-SHA256 with a key.
        log_id: the log id in the file's header (``None`` when unreadable).
        chain: the chain mode in the file's header (``sha256`` or ``hmac-sha256``).
        anchors_checked: how many published anchors were compared and matched.
        anchors_other_logs: anchors skipped because they name another log id.
        unanchored_records: records after the highest anchor (not covered by any anchor).
        problems: the breaks found, header problems first, then in seq order (at most
            ``max_problems``).
        more_problems: whether more breaks were found than listed.
        elapsed_s: seconds the verification took.
    """

    model_config = ConfigDict(frozen=True)

    path: str
    ok: bool
    records: int
    head_seq: int
    head_hash: str
    keyed: bool
    log_id: str | None = None
    chain: str | None = None
    anchors_checked: int = 0
    anchors_other_logs: int = 0
    unanchored_records: int = 0
    problems: list[Problem] = Field(default_factory=list)
    more_problems: bool = False
    elapsed_s: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def first_broken_seq(self) -> int | None:
        """The seq of the first break, or ``None``."""
        return self.problems[0].seq if self.problems else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reason(self) -> str | None:
        """Why the first break is a break, or ``None``."""
        return f"{self.problems[0].kind}: {self.problems[0].detail}" if self.problems else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> Literal["intact", "broken", "unverifiable"]:
        """``intact``, ``broken``, or ``unverifiable`` (key needed or wrong, not a log of this format)."""
        if self.ok:
            return "intact"
        return "unverifiable" if self.problems[0].kind in _UNVERIFIABLE else "broken"

    def summary(self) -> str:
        """One line for people: OK, BROKEN or CANNOT VERIFY, where, why, how many records, how long."""
        chain = "HMAC-SHA256" if self.keyed else "SHA-256"
        if self.ok:
            anchors = f", {self.anchors_checked} anchor(s) matched" if self.anchors_checked else ""
            if self.anchors_other_logs:
                anchors += f" ({self.anchors_other_logs} of other logs skipped)"
            if self.unanchored_records:
                anchors += f", {self.unanchored_records} record(s) after the last anchor"
            return (
                f"decision log {self.path}: OK - {self.records} records, {chain} chain intact{anchors}, "
                f"head seq {self.head_seq} {self.head_hash[:16]}, verified in {self.elapsed_s:.2f} s"
            )
        first = self.problems[0]
        if self.verdict == "unverifiable":
            return f"decision log {self.path}: CANNOT VERIFY ({first.kind}): {first.detail}"
        where = f" at seq {first.seq}" if first.seq is not None else ""
        count = f"{len(self.problems)}{'+' if self.more_problems else ''} problem(s)"
        return (
            f"decision log {self.path}: BROKEN{where} ({first.kind}): {first.detail} - "
            f"{count} in {self.records} records ({chain}), checked in {self.elapsed_s:.2f} s"
        )

    def __str__(self) -> str:
        return self.summary()

    def to_json(self) -> str:
        """The report as JSON (with ``first_broken_seq`` and ``reason``)."""
        return self.model_dump_json()



def _header_problem(meta: Mapping[str, str]) -> Problem | None:
    """What is wrong with a header read from a file, or ``None`` when it is a well-formed one."""
    if not meta:
        return Problem(seq=None, kind="format", detail="not a decision log (no meta table)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        hint = (
            "format 1 (a constant genesis, no log id) could be downgraded in place and is no longer read; "
            "start a new log file"
            if version == "1"
            else "this version reads and writes format " + FORMAT_VERSION
        )
        detail = f"decision log format {version!r} is not supported: {hint}"
        return Problem(seq=None, kind="format", detail=detail)
    chain = meta.get("chain")
    keyed = chain == "hmac-sha256"
    expected = {"format_version", "chain", "created_at", "log_id"} | ({"key_id"} if keyed else set())
    wrong = []
    if chain not in CHAINS:
        wrong.append(f"chain {chain!r} is not one of {CHAINS}")
    if missing := sorted(expected - set(meta)):
        wrong.append(f"{', '.join(missing)} missing")
    if unknown := sorted(set(meta) - expected):
        wrong.append(f"unexpected {', '.join(unknown)}")
    if wrong:
        return Problem(
            seq=None, kind="header", detail=f"the log's header was altered: {'; '.join(wrong)}"
        )  # fmt: skip
    return None



class _Verifier:
    """Streams the chain once, classifying each break (see ``verify_path``)."""

    def __init__(self, conn: sqlite3.Connection, key: bytes | None, genesis: str, max_problems: int):
        self.conn = conn
        self.key = key
        self.genesis = genesis
        self.max_problems = max_problems
        self.problems: list[Problem] = []
        self.more = False
        self.flagged: set[str] = set()  # stored hashes of records already reported

    def add(self, problem: Problem, stored_hash: str = "") -> None:
        self.flagged.add(stored_hash)
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)
        else:
            self.more = True

    def _hash(self, values: tuple) -> str | None:
        try:
            return _digest(_canonical(values), self.key)
        except (TypeError, UnicodeEncodeError):  # a column of the wrong type: written outside the API
            return None

    def seq_of_hash(self, value: str) -> int | None:
        if value == self.genesis:
            return 0
        row = self.conn.execute("SELECT seq FROM decisions WHERE hash = ? LIMIT 1", (value,)).fetchone()
        return None if row is None else row[0]

    def hash_mismatch(self, values: tuple, stored: str) -> Problem:
        seq = values[_SEQ]
        candidates = [s for s in range(max(1, seq - 32), seq + 33) if s != seq]
        linked = self.seq_of_hash(values[_PREV])
        if linked is not None and linked + 1 != seq:
            candidates.insert(0, linked + 1)
        for candidate in candidates:
            moved = values[:_SEQ] + (candidate,) + values[_SEQ + 1 :]
            if self._hash(moved) == stored:
                return Problem(
                    seq=seq,
                    kind="reordered",
                    detail=f"the record stored at seq {seq} was written as seq {candidate}: records were "
                    "renumbered or moved",
                )
        if self._hash(values) is None:
            detail = "a column holds a value of the wrong type: the record was written outside the log's API"
        else:
            detail = "the contents do not match the stored hash: the record was altered after it was written"
        return Problem(seq=seq, kind="edited", detail=detail)

    def broken_link(self, seq: int, prev: str) -> Problem:
        if seq == 1:
            detail = (
                "its prev_hash is not the genesis hash of the log's header: the header (chain mode, key "
                "id, log id, created_at) was changed after the log was written"
            )
            return Problem(seq=seq, kind="header", detail=detail)
        linked = self.seq_of_hash(prev)
        if linked == 0:
            detail = "it chains to the genesis value although it is not the first record (a forged chain)"
        elif linked is not None:
            detail = (
                f"it chains to seq {linked}, not to its predecessor {seq - 1}: a record forged after "
                f"seq {linked} (a fork of the chain)"
            )
        else:
            detail = (
                f"its prev_hash matches no record: it was forged, or record {seq - 1} was rewritten "
                "with a recomputed hash"
            )
        return Problem(seq=seq, kind="inserted", detail=detail)

    def run(self, anchors: dict[int, str], closed: bool) -> tuple[int, int, str, int]:
        """Check every record against the chain and ``anchors`` (``{seq: hash}``).

        ``closed``: the last anchor was written on close, so no record may follow the highest one.
        Returns (records, head seq, head hash, anchors matched).
        """
        expected_seq, expected_prev = 1, self.genesis
        count, head_seq, head_hash, anchored = 0, 0, self.genesis, 0
        if 0 in anchors:
            if anchors[0] == self.genesis:
                anchored += 1
            else:
                detail = (
                    "the genesis hash differs from the anchored one: the log's header (chain mode, key id, "
                    "log id, created_at) was rewritten"
                )
                self.add(Problem(seq=0, kind="anchor", detail=detail))
        seen_anchors: set[int] = {0}
        cursor = self.conn.execute(f"SELECT {', '.join(_HASHED)}, hash FROM decisions ORDER BY seq")
        digest, key = _digest, self.key
        while rows := cursor.fetchmany(2000):
            for row in rows:
                values, stored = row[:-1], row[-1]
                seq, prev = values[_SEQ], values[_PREV]
                count += 1
                try:
                    computed = digest(_canonical(values), key)
                except (TypeError, UnicodeEncodeError):
                    computed = None
                if computed != stored:
                    self.add(self.hash_mismatch(values, stored), stored)
                elif seq > expected_seq:
                    missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
                    self.add(
                        Problem(seq=seq, kind="deleted", detail=f"records {missing} are missing"), stored
                    )
                elif seq < expected_seq:
                    self.add(
                        Problem(
                            seq=seq,
                            kind="inserted",
                            detail=f"seq {seq} repeats or precedes its predecessor's seq {expected_seq - 1}",
                        ),
                        stored,
                    )
                elif prev != expected_prev and prev not in self.flagged and expected_prev not in self.flagged:
                    self.add(self.broken_link(seq, prev), stored)
                if seq in anchors:
                    seen_anchors.add(seq)
                    if anchors[seq] == stored:
                        anchored += 1
                    else:
                        self.add(
                            Problem(
                                seq=seq,
                                kind="anchor",
                                detail="the hash differs from the anchored one: the log was rewritten",
                            ),
                            stored,
                        )
                expected_seq, expected_prev = max(seq, expected_seq - 1) + 1, stored
                head_seq, head_hash = seq, stored
        missing = sorted(set(anchors) - seen_anchors)
        cut = [seq for seq in missing if seq > head_seq]
        for seq in missing:
            if seq <= head_seq:
                problem = Problem(seq=seq, kind="deleted", detail="the anchored record is missing")
                self.add(problem, anchors[seq])
        if cut:
            later = f" (and {len(cut) - 1} later anchor(s), up to seq {cut[-1]})" if len(cut) > 1 else ""
            if count == 0:
                detail = f"the log is empty but an anchor says seq {cut[0]} existed{later}: every record was deleted"
            else:
                detail = (
                    f"the log ends at seq {head_seq} but an anchor says seq {cut[0]} existed{later}: the tail "
                    "was cut off"
                )
            self.add(Problem(seq=cut[0], kind="truncated", detail=detail), anchors[cut[0]])
        top = max(anchors, default=None)
        if closed and top is not None and head_seq > top:
            detail = (
                f"records {top + 1}..{head_seq} follow the anchor written when the log was last closed (seq "
                f"{top}): appended by something that does not anchor (a forged append), or by a second "
                "writer process that has not anchored yet or crashed"
            )
            self.add(Problem(seq=top + 1, kind="unanchored", detail=detail))
        self.problems.sort(key=lambda p: (p.seq is not None, p.seq or 0))
        return count, head_seq, head_hash, anchored


def _anchor_problems(anchors: list[Anchor], meta: Mapping[str, str]) -> list[Problem]:
    """The header fields anchors record differently from the log: one problem per field."""
    problems: dict[str, Problem] = {}
    log_chain, log_key = meta.get("chain"), meta.get("key_id")
    for a in anchors:
        at = f"the anchor of seq {a.seq}"
        if a.chain is not None and a.chain != log_chain and "chain" not in problems:
            if a.chain == "hmac-sha256":
                kind, why = "downgrade", "the log was downgraded and rehashed"
            else:
                kind, why = "header", "the file was replaced by another log"
            key = f", key id {a.key_id}" if a.key_id else ""
            detail = f"{at} records a {a.chain} chain{key} but the log's header says {log_chain}: {why}"
            problems["chain"] = Problem(seq=None, kind=kind, detail=detail)
        rekeyed = a.chain == "hmac-sha256" == log_chain and a.key_id not in (None, log_key)
        if rekeyed and "key_id" not in problems:
            problems["key_id"] = Problem(
                seq=None, kind="header",
                detail=f"{at} records key id {a.key_id} but the log's header says {log_key}: the log was rekeyed",
            )  # fmt: skip
        for field, name in (("format_version", "format_version"), ("log_created_at", "created_at")):
            value = getattr(a, field)
            if value is not None and value != meta.get(name) and field not in problems:
                problems[field] = Problem(
                    seq=None, kind="header",
                    detail=f"{at} records {name} {value!r} but the log's header says {meta.get(name)!r}: the "
                    "header was rewritten",
                )  # fmt: skip
    return list(problems.values())


def verify_path(
    path: str | Path,
    *,
    key: bytes | str | None = None,
    anchors: AnchorsArg = (),
    expect_keyed: bool = False,
    max_problems: int = 10,
) -> VerifyReport:
    """Verify a decision log file (read-only; for ``kycrisk audit verify``).

    Checks the header (format 2, consistent, the key's id), then recomputes every record's hash
    from its stored contents and checks the chain: seq 1, 2, 3... without gaps or repeats, each
    ``prev_hash`` equal to the hash before it, the first equal to the header's genesis hash; then
    compares the anchors (see ``serving.decision_log.anchors`` for what they reveal). After a break it
    carries on from the stored hash, so independent breaks are each reported once.

    Records appended after the last anchor cannot be checked against anchors: cutting them is
    not detected (``unanchored_records`` counts them), unless the last anchor was written on
    ``close`` (then any record after it is reported).

    Args:
        path: the sqlite file.
        key: the HMAC key of a keyed log (required for one); giving a key implies ``expect_keyed``.
        anchors: an anchors file (path), or ``Anchor`` objects, mappings with their fields, or
            ``(seq, hash)`` pairs. Anchors naming another log id are skipped (one file may serve
            several logs), but if none names this log's id the file was swapped.
        expect_keyed: refuse an unkeyed log (a keyed log downgraded in place, verified without
            anchors).
        max_problems: how many breaks to list (the rest are counted in ``more_problems``).

    Returns:
        The report; ``report.ok`` is the verdict, ``report.verdict`` tells broken from
        unverifiable (key needed or wrong, not a decision log of this format), ``str(report)`` a
        one-line summary.

    Raises:
        FileNotFoundError: no file at ``path``, or no anchors file.
        ValueError: a malformed anchor (its line number or index), or a key shorter than 16 bytes.
    """
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no decision log at {path}")
    secret = None if key is None else _secret(key, "key")
    # Anchors are read before the log's snapshot: each names a record committed before it was
    # written, so an append running meanwhile cannot look like a truncation.
    given = _anchor_list(anchors)
    conn = _connect(path, read_only=True, timeout=30.0)
    try:
        conn.execute("BEGIN")  # one snapshot: appends running meanwhile are not half-seen
        meta = _meta(conn)
        chain = meta.get("chain")
        base = {"path": str(path), "log_id": meta.get("log_id"), "chain": chain}
        problem = _header_problem(meta)
        header: list[Problem] = []
        if problem is not None and problem.kind == "format":
            pass
        elif chain == "hmac-sha256" and secret is None:
            problem = Problem(
                seq=None, kind="key",
                detail=f"the log is keyed (HMAC-SHA256, key id {meta.get('key_id')}): verifying it needs its "
                f"key ({KEY_ENV}); it never verifies as unkeyed",
            )  # fmt: skip
        elif chain == "hmac-sha256" and secret is not None and meta.get("key_id") != _key_id(secret):
            problem = Problem(
                seq=None, kind="key", detail=f"the key does not match the log's key id {meta.get('key_id')}"
            )
        else:
            if problem is not None:  # an altered header: report it, and check the chain as it stands
                header.append(problem)
                problem = None
            if chain != "hmac-sha256" and (secret is not None or expect_keyed):
                why = "a key was given" if secret is not None else "a keyed log was expected"
                detail = f"{why} but the log's header says {chain}: a keyed log downgraded in place, or the wrong file"
                header.append(Problem(seq=None, kind="downgrade", detail=detail))
        if problem is not None:
            return VerifyReport(
                **base, ok=False, records=0, head_seq=0, head_hash="0" * 64, keyed=secret is not None,
                problems=[problem], elapsed_s=time.perf_counter() - started,
            )  # fmt: skip
        keyed = chain == "hmac-sha256"
        log_id = meta.get("log_id")
        mine = [a for a in given if a.log_id is None or a.log_id == log_id]
        other_logs = len(given) - len(mine)
        if given and not mine:
            ids = sorted({a.log_id for a in given if a.log_id})
            detail = (
                f"no anchor names this log (log id {log_id}; the anchors name {', '.join(ids)}): the file was "
                "replaced or recreated"
            )
            header.append(Problem(seq=None, kind="swapped", detail=detail))
        header += _anchor_problems(mine, meta)
        for before, after in zip(mine, mine[1:], strict=False):
            # a writer anchors its head on open: records between a close and the next open were
            # written while no writer had the log open (unless a second process does not anchor)
            if before.event == "close" and after.event == "open" and after.seq > before.seq:
                detail = (
                    f"records {before.seq + 1}..{after.seq} were appended between a close anchor (seq "
                    f"{before.seq}) and the next open anchor (seq {after.seq}), while no writer had the log "
                    "open: a forged append, or a writer process that does not anchor"
                )
                header.append(Problem(seq=before.seq + 1, kind="unanchored", detail=detail))
        pairs: dict[int, str] = {}
        for a in mine:
            if pairs.setdefault(a.seq, a.hash) != a.hash:
                detail = f"two anchors give seq {a.seq} different hashes: one is forged or is another log's"
                header.append(Problem(seq=None, kind="anchor", detail=detail))
        verifier = _Verifier(conn, secret if keyed else None, genesis_hash(meta), max_problems)
        for p in header:
            verifier.add(p)
        closed = bool(mine) and mine[-1].event == "close"
        records, head_seq, head_hash, anchored = verifier.run(pairs, closed)
        conn.execute("COMMIT")
    finally:
        conn.close()
    top = max(pairs, default=head_seq)
    return VerifyReport(
        **base,
        ok=not verifier.problems,
        records=records,
        head_seq=head_seq,
        head_hash=head_hash,
        keyed=keyed,
        anchors_checked=anchored,
        anchors_other_logs=other_logs,
        unanchored_records=max(0, head_seq - top) if pairs else 0,
        problems=verifier.problems,
        more_problems=verifier.more,
        elapsed_s=time.perf_counter() - started,
    )
