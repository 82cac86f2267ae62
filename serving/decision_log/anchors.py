"""Anchors of a decision log's head outside it: the anchor type, reading and appending anchors files.

Apart from the store because an auditor reads and writes anchors (a head kept in a ticket) without
opening a log, and the verifier compares them; writing them on time is the store's part.

Anchors (``anchors``, ``KYCRISK_ANCHORS``)
    A chain cannot tell that its tail was cut off: the shorter log is a valid chain; and without a
    key whoever can write the file can rehash it whole. So the head is anchored outside the log:
    given ``anchors=<file>``, the log appends its head to that file when it opens, after every
    ``anchor_every`` appended records (default 100), on ``anchor()`` and on ``close()``. The count
    is kept after the commit, outside the write lock: an append pays a counter increment (about
    1.5 µs), and the one append in ``anchor_every`` that crosses the count also pays an
    ``open``/``write``/``fsync`` of the anchors file on its own thread, while other threads go on
    appending (measured 6.7 ms median, 12 ms worst, on this machine's disk under other load). The file
    must not be in the log's own folder (the state folder): whoever can rewrite the state could
    rewrite anchors kept beside it. Each line is one JSON object (sorted keys, UTF-8), appended
    with ``O_APPEND`` in one write and fsynced::

        {"chain": "hmac-sha256", "created_at": "2026-05-09T07:35:25.123456Z", "event": "every",
         "format_version": "2", "hash": "<64 hex>", "key_id": "<16 hex>" | null,
         "log": "/srv/kycrisk/state/decisions.sqlite", "log_created_at": "...", "log_id": "<32 hex>",
         "seq": 1000}

    ``seq`` and ``hash`` are the head at that moment (seq 0 and the genesis hash for an empty
    log), ``event`` is ``open``, ``every``, ``close`` or ``manual``, ``created_at`` when the anchor
    was written, ``log_created_at``, ``log_id``, ``chain``, ``key_id`` and ``format_version`` copy
    the header. Only ``seq`` and ``hash`` are required in a line an auditor writes back by hand (a
    head kept in a ticket or an e-mail); every other field given is checked; unknown fields are
    refused. ``verify(anchors=...)`` takes such a file (a malformed line is refused with its line
    number), parsed ``Anchor`` objects or ``(seq, hash)`` pairs, and reports: an anchored seq
    missing from the log (truncation: "the log ends at seq 990 but an anchor says seq 1000
    existed"; an empty log: every record deleted), an anchored hash that differs (a rewrite), a
    chain mode, key id, format or creation time other than the anchored one (a downgrade, or a
    replaced file), a log id no anchor names (a swapped or recreated file; anchors of other logs
    in the same file are skipped and counted), and records appended while no writer had the log
    open: after an anchor written on ``close`` when that is the last anchor, or between a ``close``
    anchor and the next ``open`` one (appended by something that does not anchor: a forgery).
    What anchors cannot do: records appended after the last anchor of a writer that is still
    running or crashed can be cut (or, unkeyed, forged) undetected; a clean ``close()`` leaves
    nothing unanchored, and a crash leaves at most ``anchor_every - 1`` records uncovered. With
    several writer processes on one file, verify once they have closed: another process's records
    after the last ``close`` anchor look like a forged append until that process anchors them.
    Copy the anchors file (or its last lines) somewhere the service cannot write, often: a copy
    the attacker can edit protects nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.decision_log.canonical import _dumps

ANCHORS_ENV = "KYCRISK_ANCHORS"
DEFAULT_ANCHOR_EVERY = 100


class Anchor(BaseModel):
    """One anchored head of a decision log: one line of an anchors file (see the module docstring).

    Attributes:
        seq: the head's seq (0: the log was empty).
        hash: the head's hash (the genesis hash when ``seq`` is 0).
        log_id: the log's id, from its header.
        chain: the log's chain mode, ``sha256`` or ``hmac-sha256``.
        key_id: the key id of a keyed log (``None`` for an unkeyed one).
        format_version: the log's format.
        log_created_at: when the log was created, from its header.
        created_at: when the anchor was written.
        event: why it was written: ``open``, ``every``, ``close`` or ``manual``.
        log: the log's path when it was anchored (for people; not checked).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    seq: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    log_id: str | None = None
    chain: Literal["sha256", "hmac-sha256"] | None = None
    key_id: str | None = None
    format_version: str | None = None
    log_created_at: str | None = None
    created_at: str | None = None
    event: Literal["open", "every", "close", "manual"] | None = None
    log: str | None = None

    def to_line(self) -> str:
        """The anchor as one line of an anchors file (canonical JSON, no newline)."""
        return _dumps(self.model_dump())


def _anchor_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def read_anchors(path: str | Path) -> list[Anchor]:
    """Parse an anchors file: one JSON object per line, blank lines skipped, in file order.

    Args:
        path: the anchors file (``KYCRISK_ANCHORS``, or a copy the auditor kept).

    Returns:
        The anchors, in the order of the file.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a line is not an anchor (names the file, the line number and why).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no anchors file at {path}")
    anchors = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            where = f"anchors file {path}, line {number}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{where}: not UTF-8 text") from None
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{where}: not JSON ({exc.msg}); a torn last line is a write cut by a crash"
                ) from None
            if not isinstance(value, dict):
                raise ValueError(f"{where}: expected a JSON object with seq and hash")
            try:
                anchors.append(Anchor.model_validate(value))
            except ValidationError as exc:
                raise ValueError(f"{where}: {_anchor_error(exc)}") from None
    return anchors


# What verify takes as anchors: an anchors file, or anchors, their mappings or (seq, hash) pairs.
AnchorsArg = str | Path | Iterable[Anchor | Mapping[str, Any] | tuple[int, str]]


def _anchor_list(anchors: AnchorsArg) -> list[Anchor]:
    if isinstance(anchors, str | Path):
        return read_anchors(anchors)
    out = []
    for i, item in enumerate(anchors):
        try:
            if isinstance(item, Anchor):
                out.append(item)
            elif isinstance(item, Mapping):
                out.append(Anchor.model_validate(dict(item)))
            else:
                seq, hash_ = item
                out.append(Anchor(seq=seq, hash=hash_))
        except ValidationError as exc:
            raise ValueError(f"anchors[{i}]: {_anchor_error(exc)}") from None
        except (TypeError, ValueError):
            raise ValueError(f"anchors[{i}]: expected an Anchor, a mapping or a (seq, hash) pair") from None
    return out


def _anchors_path(anchors: str | Path, log_path: Path) -> Path:
    """The anchors file's path, refused inside the log's own folder or in a folder that does not exist."""
    path = Path(anchors).expanduser()
    resolved, folder = path.resolve(), log_path.parent.resolve()
    if resolved == folder or resolved.is_relative_to(folder):
        raise ValueError(
            f"the anchors file {path} is inside the decision log's folder {folder}: whoever can rewrite "
            f"the log could rewrite anchors kept beside it; keep them elsewhere ({ANCHORS_ENV})"
        )
    if resolved.is_dir():
        raise ValueError(f"the anchors path {path} is a folder: give a file (one anchor per line)")
    if not resolved.parent.is_dir():
        raise ValueError(f"the anchors file's folder {resolved.parent} does not exist")
    return resolved


def _append_line(path: Path, line: str) -> None:
    """Append one line to ``path`` in one ``O_APPEND`` write and fsync it (and the folder when new)."""
    new = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # read: the last byte
    try:
        size = os.fstat(fd).st_size
        # a line torn by a crash must not swallow this one: start on a fresh line
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        data = (("\n" if torn else "") + line + "\n").encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
