"""The tamper-evident decision log: every scoring decision, append-only and hash-chained, in sqlite.

What is stored
    One row per decision (table ``decisions``): ``seq`` (1, 2, 3, ... without gaps),
    ``decision_id`` (a ULID-style id: 48-bit millisecond time + 80 random bits, Crockford
    base32, sortable by time; or the caller's own id), ``kind`` (``score``, ``onboard``, ...),
    ``created_at`` (UTC ISO 8601, ``2026-05-09T07:35:25.123456Z``), the minimised ``request``,
    the exact model input ``features``, ``models`` (``{name: version}``), ``feature_set``,
    ``policy_version``, ``score``, ``tier``, ``action``, ``reasons`` (list of dicts),
    ``prev_hash`` and ``hash``. Together with the model registry that is enough to verify a
    decision and to replay it months later: load the logged model versions, feed them the logged
    features, compare score, tier and action.

JSON encoding (``request``, ``features``, ``models``, ``reasons``)
    Canonical JSON: ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)``, stored as UTF-8 text. Finite floats are written with
    Python's ``repr`` (the shortest text that round-trips), so every float64 comes back bit for
    bit, ``-0.0`` included. Values JSON cannot hold are tagged objects with one key:
    ``{"$float": "nan" | "inf" | "-inf"}``, ``{"$datetime": "<isoformat>"}`` and
    ``{"$date": "<isoformat>"}``; reading decodes them back (``NaN`` stays distinct from
    ``null``, which means "no value"). numpy scalars become Python scalars (exactly; float32 widens
    losslessly to float64); ``pd.NA`` and ``pd.NaT`` become ``null``. A user dict shaped like a
    tag is refused, as are sets, bytes, Decimals and numpy datetimes (ambiguous or lossy).
    ``features`` is a JSON object, so its key order is not kept: replay reorders the columns to
    the model's ``feature_names_in_``.

Hash chain
    ``hash = SHA-256(canonical_json(record))`` where ``record`` holds every field above except
    ``hash`` itself (``prev_hash`` included; the JSON columns embedded as JSON values, not as
    strings), encoded as UTF-8. The first record's ``prev_hash`` is the log's genesis hash (below);
    each later one's is the hash of the record before it. An independent auditor can recompute a
    hash with nothing but the standard library::

        row = {...every column but hash, the four JSON columns parsed with plain json.loads...}
        data = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        hashlib.sha256(data.encode("utf-8")).hexdigest()  # or hmac.new(key, data, "sha256")

    ``verify`` checks the whole chain streaming (it builds the same bytes from the stored text
    without parsing it) and names the first broken ``seq`` and why: an edited record (its
    contents no longer match its hash), a deleted one (a gap in ``seq``), an inserted one (it does
    not chain to its predecessor, or repeats a ``seq``), a reordered one (its hash matches its
    contents under another ``seq``).

Header (table ``meta``, format 2)
    Written once, in the transaction that creates the file: ``format_version`` (``"2"``),
    ``chain`` (``sha256`` or ``hmac-sha256``), ``key_id`` (keyed logs only), ``log_id`` (32 random
    hex characters: which file this is, so that a replaced or recreated file is told apart) and
    ``created_at``. Triggers refuse ``UPDATE``, ``DELETE`` and further ``INSERT`` on it. The header
    is bound into the chain: record 1's ``prev_hash`` is the genesis hash ::

        header = {"chain": ..., "created_at": ..., "format_version": "2", "key_id": ... or None,
                  "log_id": ...}
        hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    so flipping the chain mode or key id in the header alone breaks the chain at seq 1. Format 1
    (a constant genesis, no log id) is refused: it could be downgraded in place.

Keyed chain (``key``)
    Without a key, anyone can verify the log (the algorithm is public), and any accidental or
    naive change is detected, but an attacker who can write the file can rewrite every hash from
    the edited record to the end and the chain will verify. With ``key`` the hashes are
    HMAC-SHA256: without the key nobody can forge a consistent chain. The price: verifying needs
    the key, a verifier holding it could also forge, so it must live in a secret store with
    access logging; losing it leaves the log readable but unverifiable; one key per log file
    (rotate by starting a new file and anchoring the old head). The file records a key id (an
    HMAC of a constant, which reveals nothing about the key) so that a wrong key is a clear error.
    A keyed log never verifies as unkeyed: without a key ``verify`` refuses a log whose header
    says keyed; an attacker who rewrites the header to ``sha256`` and rehashes every record is
    caught by the anchors (they record the keyed mode and the HMAC hashes) and, without anchors,
    by ``expect_keyed=True`` (``kycrisk audit verify --expect-keyed``), implied by giving a key.

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

Durability and concurrency
    WAL journal with ``synchronous=FULL``: each append is one ``BEGIN IMMEDIATE`` transaction
    that fsyncs the WAL before it returns, so a decision the platform has been told about
    survives a crash or power loss. ``NORMAL`` skips that fsync (the database stays consistent,
    but the last decisions can vanish on power loss: a decision answered but never logged), which
    an audit log must not allow. The price is one fsync per commit: 0.1-0.2 ms on this machine's
    disk when idle, about 4 ms when other work keeps it busy; the rest of an append (validation,
    minimisation, exact JSON, hashing, the insert) is about 0.13 ms.
    ``BEGIN IMMEDIATE`` takes sqlite's write lock before the tail is read, so two processes never
    chain onto the same record; it is retried with short sleeps (sqlite's own busy handler backs
    off to 100 ms sleeps and starves one writer). A lock serialises the threads of one process
    over its one connection. ``group_commit=True`` commits the appends of concurrent threads in
    one transaction (one fsync) without weakening durability: every caller still returns only
    after its record is on disk (measured with 8 threads: 2,500 -> 3,600 appends/s on an idle
    disk, 490 -> 1,800 on a busy one). Processes cannot share a group commit; at high rates give each worker
    process its own log file (each its own chain, anchored separately).
    Triggers refuse ``UPDATE`` and ``DELETE`` on both tables; that stops accidents, while the chain
    and the anchors catch someone who drops the triggers.

Personal data
    The log never stores raw personal data. ``minimise_request`` replaces every personal field
    (``DEFAULT_PII_FIELDS``: the columns marked ``pii`` in ``features.contracts`` for customers,
    transactions and account events, bare and with the request prefixes ``buyer_`` and
    ``seller_``) with ``{"pseudonym": ..., "masked": ...}``: the pseudonym is a keyed hash, the
    same for the same value (so auditors can match one customer's decisions without seeing who
    it is), and the mask is a hint for people (``a***@example.com``, ``****4567``). A string under
    any other key that is, or contains, an e-mail or IP address is pseudonymised whole (free text
    is not otherwise scanned: names or phones under unknown keys need ``pii_fields``). Features are the model's input, which
    must be replayed exactly, so they are not rewritten: a feature named like a personal field,
    or a string value that is an e-mail or IP address, is refused. Note that the profile
    transformer (``features.profile``) reads raw names, e-mails and document numbers, so the
    features to log are the values *after* the personal-data-consuming steps, not the raw
    request.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import random
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)

from features.contracts import ACCOUNT_EVENTS, CUSTOMERS, TRANSACTIONS

__all__ = [
    "ANCHORS_ENV",
    "DEFAULT_ANCHOR_EVERY",
    "DEFAULT_PII_FIELDS",
    "FORMAT_VERSION",
    "REQUEST_PREFIXES",
    "Anchor",
    "DecisionInput",
    "DecisionLog",
    "DecisionRecord",
    "DuplicateDecisionError",
    "Problem",
    "Receipt",
    "VerifyReport",
    "decode_json",
    "encode_json",
    "genesis_hash",
    "mask",
    "minimise_request",
    "new_decision_id",
    "pseudonymise",
    "read_anchors",
    "secret_from_env",
    "verify_path",
]

FORMAT_VERSION = "2"
KEY_ENV = "KYCRISK_DECISION_LOG_KEY"
SALT_ENV = "KYCRISK_PII_SALT"
ANCHORS_ENV = "KYCRISK_ANCHORS"
DEFAULT_ANCHOR_EVERY = 100
MIN_SECRET_BYTES = 16

_log = logging.getLogger(__name__)

# --- Personal data ----------------------------------------------------------------------------

# Prefixes the scoring request gives a party's profile columns (as features.profile reads them).
REQUEST_PREFIXES = ("buyer_", "seller_")
_PII_TABLES = (CUSTOMERS, TRANSACTIONS, ACCOUNT_EVENTS)
# Derived from the contracts, so that a column newly marked pii is minimised without a code change.
PII_COLUMNS = frozenset(c.name for t in _PII_TABLES for c in t.columns if c.pii)
DEFAULT_PII_FIELDS = PII_COLUMNS | {p + c for p in REQUEST_PREFIXES for c in PII_COLUMNS}
# Personal columns a reviewer may see a hint of; the others (names, addresses, birth dates,
# IPs) are only pseudonymised.
MASKED_COLUMNS = {"email": "email", "document_number": "document", "phone": "phone"}
PSEUDONYM_HEX = 32  # 128 bits of HMAC-SHA256: collisions are out of reach at any realistic volume

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_PSEUDONYM = re.compile(f"[0-9a-f]{{{PSEUDONYM_HEX}}}")
_SPACES = re.compile(r"\s+")


def _secret(value: bytes | str, what: str) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(f"{what} must be at least {MIN_SECRET_BYTES} bytes (use 32 random bytes)")
    return raw


def secret_from_env(name: str) -> bytes | None:
    """Read a secret (HMAC key or pseudonym salt) from an environment variable.

    Args:
        name: the variable, e.g. ``KYCRISK_DECISION_LOG_KEY`` or ``KYCRISK_PII_SALT``.

    Returns:
        The value's UTF-8 bytes, or ``None`` when the variable is unset or empty.

    Raises:
        ValueError: the value is shorter than 16 bytes.
    """
    value = os.environ.get(name)
    return _secret(value, name) if value else None


def _normalise(value: Any) -> str:
    if isinstance(value, datetime | date):
        text = value.isoformat()
    elif isinstance(value, Mapping | list | tuple):
        text = _dumps(_jsonable(value, "value"))
    else:
        text = str(value)
    # NFKC + casefold + collapsed spaces: "ANNA  Müller" and "anna müller" are one person.
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def pseudonymise(value: Any, salt: bytes | str) -> str:
    """A stable keyed pseudonym of a personal value.

    HMAC-SHA256 of the normalised value (Unicode NFKC, case-folded, runs of white space
    collapsed), truncated to 128 bits. The same value and salt always give the same pseudonym;
    another salt gives an unrelated one. The salt must stay secret: names, phones and birth dates
    are few enough to be guessed and hashed by anyone who knows it.

    Args:
        value: the personal value (str, date, number, or a JSON-like structure).
        salt: the secret salt (at least 16 bytes).

    Returns:
        32 lower-case hex characters.
    """
    data = _normalise(value).encode("utf-8")
    return hmac.digest(_secret(salt, "salt"), data, "sha256")[: PSEUDONYM_HEX // 2].hex()


def mask(value: str, kind: Literal["email", "document", "phone"] | None = None) -> str:
    """A hint of a personal value for people: ``a***@example.com``, ``****4567``, ``+******89``.

    The number of stars is fixed, so the mask does not reveal the value's length.

    Args:
        value: an e-mail address, document number or phone number.
        kind: which one; guessed when ``None`` (``@`` means e-mail, a leading ``+`` a phone).

    Returns:
        The masked text.
    """
    text = str(value).strip()
    if kind is None:
        kind = "email" if "@" in text else "phone" if text.startswith("+") else "document"
    if kind == "email":
        local, _, domain = text.rpartition("@")
        return f"{local[:1]}***@{domain.lower()}"
    if kind == "phone":
        digits = "".join(c for c in text if c.isdigit())
        return ("+" if text.startswith("+") else "") + "******" + (digits[-2:] if len(digits) >= 6 else "")
    # Documents: the last four characters (as on bank cards) only when at least four stay hidden.
    keep = 4 if len(text) >= 8 else 2 if len(text) >= 5 else 0
    return "****" + (text[-keep:] if keep else "")


def _personal_kind(text: str) -> str | None:
    """How a free string holds personal data: ``"email"`` or ``"ip"`` (the whole string is one),
    ``"text"`` (an e-mail or IPv4 address inside longer text), or ``None``."""
    stripped = text.strip()
    if "@" in stripped and _EMAIL.fullmatch(stripped):
        return "email"
    if 3 <= len(stripped) <= 45 and ("." in stripped or ":" in stripped):
        try:
            ipaddress.ip_address(stripped)
        except ValueError:
            pass
        else:
            return "ip"
    if "@" in stripped and _EMAIL.search(stripped):
        return "text"
    if "." in stripped:
        for match in _IPV4.finditer(stripped):
            try:
                ipaddress.IPv4Address(match.group())
            except ValueError:
                continue
            return "text"
    return None


def _is_minimised(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and "pseudonym" in value
        and set(value) <= {"pseudonym", "masked"}
        and isinstance(value["pseudonym"], str)
        and _PSEUDONYM.fullmatch(value["pseudonym"]) is not None
        and isinstance(value.get("masked", ""), str)
    )


def _minimised(value: Any, mask_kind: str | None, salt: bytes) -> Any:
    if value is None or _is_minimised(value):
        return value
    if isinstance(value, list | tuple):
        return [_minimised(v, mask_kind, salt) for v in value]
    out = {"pseudonym": pseudonymise(value, salt)}
    if mask_kind is not None and isinstance(value, str) and value.strip():
        out["masked"] = mask(value, mask_kind)  # type: ignore[arg-type]
    return out


def _mask_kind(field: str) -> str | None:
    for prefix in REQUEST_PREFIXES:
        if field.startswith(prefix):
            field = field[len(prefix) :]
            break
    return MASKED_COLUMNS.get(field)


def minimise_request(
    request: Mapping[str, Any], pii_fields: Iterable[str] | None = None, *, salt: bytes | str
) -> dict[str, Any]:
    """A copy of a request with its personal data pseudonymised (and masked where a hint helps).

    Every value under a key in ``pii_fields`` (at any depth: ``{"buyer": {"email": ...}}`` matches
    ``email``) becomes ``{"pseudonym": <32 hex>}``, plus ``"masked"`` for e-mails, phones and
    document numbers; lists are minimised element by element; ``None`` stays ``None`` ("not
    collected" is not personal). A string under any other key that is, or contains, an e-mail or
    IPv4 address is pseudonymised whole. Already minimised values are kept, so minimising twice
    changes nothing.
    The input is not modified.

    Args:
        request: the request as a JSON-like mapping.
        pii_fields: keys holding personal data; ``DEFAULT_PII_FIELDS`` when ``None``.
        salt: the secret pseudonym salt (at least 16 bytes).

    Returns:
        The minimised request.
    """
    fields = DEFAULT_PII_FIELDS if pii_fields is None else frozenset(pii_fields)
    key = _secret(salt, "salt")

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            if _is_minimised(value):
                return dict(value)
            return {
                k: _minimised(v, _mask_kind(k), key) if k in fields else walk(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, str):
            kind = _personal_kind(value)
            if kind is not None:
                return _minimised(value, "email" if kind == "email" else None, key)
        return value

    return walk(request)


def _raw_pii(value: Any, fields: frozenset[str], where: str) -> list[str]:
    """Where ``value`` still holds raw personal data (keys in ``fields``, e-mail or IP strings)."""
    found: list[str] = []
    if isinstance(value, Mapping):
        if _is_minimised(value):
            return found
        for k, v in value.items():
            path = f"{where}.{k}"
            if k in fields and v is not None and not _is_minimised(v):
                found.append(path)
            else:
                found += _raw_pii(v, fields, path)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found += _raw_pii(v, fields, f"{where}[{i}]")
    elif isinstance(value, str) and _personal_kind(value):
        found.append(where)
    return found


# --- JSON encoding ----------------------------------------------------------------------------

_TAGS = frozenset({"$float", "$datetime", "$date"})
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")).encode
_quote = json.encoder.encode_basestring  # the C function json.dumps(str, ensure_ascii=False) uses


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON types, with the tags of the module docstring (exact round trip)."""
    kind = type(value)
    if kind is float:  # the common case first: feature values
        return value if value - value == 0.0 else _nonfinite(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            t = type(v)
            if t is float:
                out[k] = v if v - v == 0.0 else _nonfinite(v)
            elif t is str or t is int or t is bool or v is None:
                out[k] = v
            else:
                out[k] = _jsonable(v, f"{where}.{k}")
        if len(out) == 1 and next(iter(out)) in _TAGS:
            raise ValueError(f"{where}: a dict with the single key {next(iter(out))!r} is reserved for tags")
        return out
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else _nonfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _jsonable(v, f"{where}.{k}")
        if len(out) == 1 and next(iter(out)) in _TAGS:
            raise ValueError(f"{where}: a dict with the single key {next(iter(out))!r} is reserved for tags")
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    name = type(value).__name__
    if name in ("NAType", "NaTType"):  # pandas' missing markers (NaT is also a datetime)
        return None
    if isinstance(value, datetime):
        if getattr(value, "nanosecond", 0):
            raise ValueError(f"{where}: {value!r} has nanoseconds, which the log cannot keep exactly")
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(), where)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and callable(getattr(value, "item", None)) and getattr(value, "ndim", 1) == 0:
        if dtype.kind in "mM":
            raise TypeError(f"{where}: numpy datetimes are ambiguous; pass pandas Timestamps")
        return _jsonable(value.item(), where)  # numpy scalar -> the exact Python scalar
    raise TypeError(f"{where}: {name} cannot be stored in the decision log")


def _nonfinite(value: float) -> dict[str, str]:
    return {"$float": "nan" if value != value else "inf" if value > 0 else "-inf"}


def _untag(obj: dict) -> Any:
    if len(obj) == 1:
        ((tag, text),) = obj.items()
        if tag == "$float":
            return _NONFINITE[text]
        if tag == "$datetime":
            return datetime.fromisoformat(text)
        if tag == "$date":
            return date.fromisoformat(text)
    return obj


def encode_json(value: Any) -> str:
    """The log's canonical JSON text of a value (see the module docstring for the encoding).

    Args:
        value: JSON-like data; floats, NaN, infinities, dates and numpy scalars are kept exactly.

    Returns:
        Canonical JSON: sorted keys, no white space, non-ASCII characters as themselves.
    """
    return _dumps(_jsonable(value, "value"))


def decode_json(text: str) -> Any:
    """Decode ``encode_json`` text, turning the tags back into floats, datetimes and dates."""
    # every tag is a key starting with "$": text without one needs no (slow) object hook
    return json.loads(text, object_hook=_untag) if '"$' in text else json.loads(text)


# --- Records ----------------------------------------------------------------------------------

# The hashed fields in canonical (sorted) order; _canonical() relies on exactly this order.
_HASHED = (
    "action",
    "created_at",
    "decision_id",
    "feature_set",
    "features",
    "kind",
    "models",
    "policy_version",
    "prev_hash",
    "reasons",
    "request",
    "score",
    "seq",
    "tier",
)
assert _HASHED == tuple(sorted(_HASHED))
_JSON_FIELDS = ("request", "features", "models", "reasons")
_SEQ, _PREV = _HASHED.index("seq"), _HASHED.index("prev_hash")
_DECISION_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.:-]{0,127}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _canonical(v: tuple) -> str:
    """Canonical JSON of a row in ``_HASHED`` order whose JSON fields are canonical text.

    Equal to ``json.dumps`` of the parsed record with sorted keys, built without parsing: the
    stored JSON text is embedded byte for byte, so any change to it changes the hash.
    """
    action, created_at, decision_id, feature_set, features, kind, models = v[:7]
    policy_version, prev_hash, reasons, request, score, seq, tier = v[7:]
    return "".join(
        (
            '{"action":',
            _quote(action),
            ',"created_at":',
            _quote(created_at),
            ',"decision_id":',
            _quote(decision_id),
            ',"feature_set":',
            _quote(feature_set),
            ',"features":',
            features,
            ',"kind":',
            _quote(kind),
            ',"models":',
            models,
            ',"policy_version":',
            _quote(policy_version),
            ',"prev_hash":',
            _quote(prev_hash),
            ',"reasons":',
            reasons,
            ',"request":',
            request,
            ',"score":',
            "null" if score is None else float.__repr__(score),
            ',"seq":',
            int.__repr__(seq),
            ',"tier":',
            _quote(tier),
            "}",
        )
    )


def _digest(text: str, key: bytes | None) -> str:
    data = text.encode("utf-8")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.digest(key, data, "sha256").hex()


def _key_id(key: bytes) -> str:
    return hmac.digest(key, b"kycrisk.decision_log.key_id", "sha256").hex()[:16]


def new_decision_id() -> str:
    """A new ULID-style decision id: 26 Crockford base32 characters, sortable by creation time."""
    n = ((time.time_ns() // 1_000_000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(n >> shift) & 31] for shift in range(125, -1, -5))


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@cache
def _policy_values() -> tuple[tuple[str, ...], tuple[str, ...]]:
    # Imported on first append only: verifying a log needs neither pandas nor the policy.
    from training.policy import ACTIONS, TIERS

    return TIERS, ACTIONS


def _py_scalar(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if getattr(value, "dtype", None) is not None and callable(item) else value


class DecisionInput(BaseModel):
    """What the caller gives ``DecisionLog.append``; the log adds seq, id, time and hashes.

    Attributes:
        kind: what was decided: ``score`` (an order), ``onboard``, ... (lower-case word).
        request: the platform's request (minimised by the log before it is stored).
        features: the exact model input values, ``{name: value}``.
        models: ``{model name: version}`` of every model that contributed.
        feature_set: the feature set version, e.g. ``fraud_v1``.
        policy_version: the tier policy version that decided.
        score: the model score (a probability), or ``None`` for a decision without a model.
        tier: ``low``, ``medium`` or ``high`` (``training.policy.TIERS``).
        action: one of ``training.policy.ACTIONS``.
        reasons: the reasons given to the platform, as dicts.
        decision_id: the caller's id for the decision; a new ULID-style id when ``None``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    request: dict[str, Any]
    features: dict[str, Any]
    models: dict[str, str]
    feature_set: str = Field(min_length=1)
    policy_version: str = Field(min_length=1)
    score: float | None = Field(allow_inf_nan=False)
    tier: str
    action: str
    reasons: list[dict[str, Any]]
    decision_id: str | None = None

    @field_validator("request", mode="before")
    @classmethod
    def _model_to_dict(cls, value: Any) -> Any:
        return value.model_dump() if isinstance(value, BaseModel) else value

    @field_validator("reasons", mode="before")
    @classmethod
    def _reason_objects(cls, value: Any) -> Any:
        # training.policy.Reason is a dataclass; accept it as well as its dict form
        if isinstance(value, list | tuple):
            return [asdict(r) if is_dataclass(r) and not isinstance(r, type) else r for r in value]
        return value

    @field_validator("score", mode="before")
    @classmethod
    def _numpy_score(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("score must be a number, not a bool")
        return _py_scalar(value)

    @field_validator("decision_id")
    @classmethod
    def _id_shape(cls, value: str | None) -> str | None:
        if value is not None and not _DECISION_ID.fullmatch(value):
            raise ValueError("decision_id must be 1-128 characters of [0-9A-Za-z_.:-]")
        return value

    @model_validator(mode="after")
    def _known_values(self) -> DecisionInput:
        tiers, actions = _policy_values()
        if self.tier not in tiers:
            raise ValueError(f"tier {self.tier!r} is not one of {tiers}")
        if self.action not in actions:
            raise ValueError(f"action {self.action!r} is not one of {actions}")
        if self.score is not None and not self.models:
            raise ValueError("a scored decision must name its models and versions (replay needs them)")
        if any(not name or not version for name, version in self.models.items()):
            raise ValueError("model names and versions must not be empty")
        return self


class DecisionRecord(BaseModel):
    """One logged decision, as read back (immutable: the log has no update or delete).

    The dicts are decoded copies; changing them changes nothing in the log.
    """

    model_config = ConfigDict(frozen=True)

    seq: int
    decision_id: str
    kind: str
    created_at: str
    request: dict[str, Any]
    features: dict[str, Any]
    models: dict[str, str]
    feature_set: str
    policy_version: str
    score: float | None
    tier: str
    action: str
    reasons: list[dict[str, Any]]
    prev_hash: str
    hash: str

    @property
    def created(self) -> datetime:
        """``created_at`` as a timezone-aware datetime."""
        return datetime.fromisoformat(self.created_at)

    def canonical_json(self) -> str:
        """The canonical JSON text the record's hash is computed over."""
        values = self.model_dump(exclude={"hash"})
        return _canonical(tuple(encode_json(values[f]) if f in _JSON_FIELDS else values[f] for f in _HASHED))

    def compute_hash(self, key: bytes | str | None = None) -> str:
        """Recompute this record's hash (SHA-256, or HMAC-SHA256 with ``key``) from its contents.

        Equal to ``hash`` for an unaltered record; checking the record's place in the chain
        (and the chain up to an anchor) is ``DecisionLog.verify``'s job.
        """
        return _digest(self.canonical_json(), None if key is None else _secret(key, "key"))

    @classmethod
    def _from_row(cls, row: Mapping[str, Any], trusted: bool = False) -> DecisionRecord:
        data = dict(row)
        for name in _JSON_FIELDS:
            data[name] = decode_json(data[name])
        # rows just written from validated input need no second validation; rows read back do
        return cls.model_construct(**data) if trusted else cls.model_validate(data)


# --- Verification report ----------------------------------------------------------------------

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


# --- Header and anchors -----------------------------------------------------------------------

CHAINS = ("sha256", "hmac-sha256")
_GENESIS_FIELDS = ("chain", "created_at", "format_version", "key_id", "log_id")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def genesis_hash(meta: Mapping[str, str]) -> str:
    """The ``prev_hash`` of a log's first record: SHA-256 of its header (see the module docstring).

    Args:
        meta: the log's header (table ``meta``): ``chain``, ``created_at``, ``format_version``,
            ``log_id`` and, for a keyed log, ``key_id``.

    Returns:
        64 lower-case hex characters.
    """
    header = {name: meta.get(name) for name in _GENESIS_FIELDS}
    return hashlib.sha256(_dumps(header).encode("utf-8")).hexdigest()


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


# --- The log ----------------------------------------------------------------------------------

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS decisions (
        seq INTEGER PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        request TEXT NOT NULL,
        features TEXT NOT NULL,
        models TEXT NOT NULL,
        feature_set TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        score REAL,
        tier TEXT NOT NULL,
        action TEXT NOT NULL,
        reasons TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    # Stops accidents; someone who drops the triggers is caught by the chain.
    """CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'the decision log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'the decision log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta
    BEGIN SELECT RAISE(ABORT, 'the decision log header is written once'); END""",
    """CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta
    BEGIN SELECT RAISE(ABORT, 'the decision log header is written once'); END""",
)
# Created right after the header rows are inserted, in the same transaction: no row can follow them.
_SEAL_META = """CREATE TRIGGER IF NOT EXISTS meta_no_insert BEFORE INSERT ON meta
    BEGIN SELECT RAISE(ABORT, 'the decision log header is written once'); END"""
_COLUMNS = (
    "seq",
    "decision_id",
    "kind",
    "created_at",
    "request",
    "features",
    "models",
    "feature_set",
    "policy_version",
    "score",
    "tier",
    "action",
    "reasons",
    "prev_hash",
    "hash",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM decisions"
_INSERT = f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SYNCHRONOUS = ("FULL", "EXTRA", "NORMAL")


class DuplicateDecisionError(ValueError):
    """A decision id that is already in the log."""


class Receipt(NamedTuple):
    """Where an appended decision went: its ``seq``, ``decision_id``, ``created_at`` and ``hash``."""

    seq: int
    decision_id: str
    created_at: str
    hash: str


class _Prepared:
    """A validated, minimised and encoded decision waiting for its seq, time and hashes."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]):
        self.fields = fields


# Extra writes run inside an append's transaction, given the connection and the rows just
# inserted (all or nothing with them): the Scorer's idempotency keys and outbox (serving.journal).
JournalWrite = Callable[[sqlite3.Connection, list[dict[str, Any]]], None]


class _Slot:
    """One thread's decision in a group commit."""

    __slots__ = ("prepared", "journal", "done", "row", "error")

    def __init__(self, prepared: _Prepared, journal: JournalWrite | None = None):
        self.prepared = prepared
        self.journal = journal
        self.done = False
        self.row: dict[str, Any] | None = None  # the stored row
        self.error: BaseException | None = None


def _connect(path: Path, *, read_only: bool, timeout: float) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    else:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA trusted_schema = OFF")
    return conn


def _begin_immediate(conn: sqlite3.Connection, timeout: float) -> None:
    """``BEGIN IMMEDIATE``, retried every 50-1000 µs (with jitter) until ``timeout`` seconds.

    sqlite's own busy handler backs off to sleeps of 100 ms, so under contention between
    processes one writer starves the other (measured with two processes appending: worst wait
    0.9-2.7 s); short sleeps keep waits near the other writer's transaction time (worst 39 ms).
    """
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + timeout
        delay = 50e-6
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1e-3)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")


def _tail(conn: sqlite3.Connection, genesis: str) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, genesis) if row is None else (row[0], row[1])


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(conn.execute("SELECT name, value FROM meta"))
    except sqlite3.DatabaseError:  # no meta table, or not an sqlite file at all
        return {}


class DecisionLog:
    """An append-only, hash-chained decision log in one sqlite file (see the module docstring).

    Args:
        path: the sqlite file; its folder is created.
        key: HMAC key (at least 16 bytes) for a keyed chain, or ``None`` for plain SHA-256. A log
            is keyed or not from its first open; a wrong key is refused.
        salt: the secret pseudonym salt used to minimise requests; without it a request that
            still holds personal data is refused.
        pii_fields: keys of personal data in requests (``DEFAULT_PII_FIELDS`` when ``None``).
        synchronous: ``FULL`` (default: every append is on disk when it returns), ``EXTRA``, or
            ``NORMAL`` (faster, but the last appends can be lost on power loss).
        group_commit: commit the appends of concurrent threads together (same durability, fewer
            fsyncs).
        timeout: seconds to wait for another process's write lock before failing.
        anchors: the anchors file (outside the log's folder, which must exist) the head is appended
            to on open, every ``anchor_every`` records, on ``anchor()`` and on ``close()``; ``None``
            writes no anchors.
        anchor_every: records appended between two anchors (at least 1).

    Raises:
        ValueError: a bad option, a wrong key, a log of another format or with an altered header,
            or an anchors file inside the log's folder.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key: bytes | str | None = None,
        salt: bytes | str | None = None,
        pii_fields: Iterable[str] | None = None,
        synchronous: Literal["FULL", "EXTRA", "NORMAL"] = "FULL",
        group_commit: bool = False,
        timeout: float = 30.0,
        anchors: str | Path | None = None,
        anchor_every: int = DEFAULT_ANCHOR_EVERY,
    ):
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}")
        if isinstance(anchor_every, bool) or not isinstance(anchor_every, int) or anchor_every < 1:
            raise ValueError(f"anchor_every must be a whole number >= 1, got {anchor_every!r}")
        self.path = Path(path)
        self.anchors = None if anchors is None else _anchors_path(anchors, self.path)
        self.anchor_every = anchor_every
        self.key = None if key is None else _secret(key, "key")
        self.salt = None if salt is None else _secret(salt, "salt")
        self.pii_fields = DEFAULT_PII_FIELDS if pii_fields is None else frozenset(pii_fields)
        self.synchronous = synchronous
        self.group_commit = group_commit
        self.timeout = timeout
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._keyed_log = False
        self._meta: dict[str, str] = {}
        self._genesis = ""
        # Anchoring state: a counter bumped after each commit (outside the write lock) and a lock
        # that keeps the anchors file's lines whole and in order within this process.
        self._anchor_lock = threading.Lock()
        self._anchor_write_lock = threading.Lock()
        self._since_anchor = 0
        self.last_anchor: Anchor | None = None
        self.anchor_error: BaseException | None = None  # the last periodic anchor that failed
        with self._lock:
            self._connection()

    @classmethod
    def from_env(cls, path: str | Path, **kwargs: Any) -> DecisionLog:
        """Open a log with the key from ``KYCRISK_DECISION_LOG_KEY``, salt from ``KYCRISK_PII_SALT``
        and anchors file from ``KYCRISK_ANCHORS`` (each unless given in ``kwargs``)."""
        kwargs.setdefault("key", secret_from_env(KEY_ENV))
        kwargs.setdefault("salt", secret_from_env(SALT_ENV))
        kwargs.setdefault("anchors", os.environ.get(ANCHORS_ENV) or None)
        return cls(path, **kwargs)

    # -- connection --

    def _connection(self) -> sqlite3.Connection:
        """The writer connection, opened (and the schema created) on first use in each process."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # A connection must not cross fork(): a child abandons the parent's and opens its own.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path, read_only=False, timeout=self.timeout)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            _begin_immediate(conn, self.timeout)  # two processes opening a new file create it once
            self._create_schema(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        if self.anchors is not None:
            # every writer's first head is anchored: a baseline, and seq 0 records a new log's identity
            with self._anchor_lock:
                self._since_anchor = 0
            self._write_anchor(*_tail(conn, self._genesis), "open")
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        # executescript would COMMIT the open transaction; run the statements one by one inside it
        for statement in _SCHEMA:
            conn.execute(statement)
        meta = _meta(conn)
        if not meta:
            chain = "hmac-sha256" if self.key is not None else "sha256"
            rows = {
                "format_version": FORMAT_VERSION,
                "chain": chain,
                "created_at": _utc_now(),
                "log_id": os.urandom(16).hex(),
            }
            if self.key is not None:
                rows["key_id"] = _key_id(self.key)
            conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", rows.items())
            meta = rows
        conn.execute(_SEAL_META)
        problem = _header_problem(meta)
        if problem is not None:
            raise ValueError(f"{self.path}: {problem.detail}")
        self._meta, self._genesis = meta, genesis_hash(meta)
        self._keyed_log = meta.get("chain") == "hmac-sha256"
        if self.key is not None:
            if not self._keyed_log:
                raise ValueError(f"{self.path} is an unkeyed log: open it without a key")
            if meta.get("key_id") != _key_id(self.key):
                raise ValueError(f"{self.path}: the key does not match the log's key id {meta.get('key_id')}")

    def close(self) -> None:
        """Anchor the head (event ``close``), then close the writer connection (a later call
        reopens it, anchoring again).

        The ``close`` anchor is written even when the head was just anchored: it says that this
        writer stopped there, so a record found after it was appended by something else.

        Raises:
            OSError: the closing anchor could not be written (the connection is closed anyway).
        """
        try:
            if self.anchors is not None and self._conn is not None and self._pid == os.getpid():
                self._anchor_now("close")
        finally:
            with self._lock:
                if self._conn is not None and self._pid == os.getpid():
                    self._conn.close()
                self._conn = None

    # -- anchors --

    @property
    def log_id(self) -> str:
        """The random id in the log's header: which file this is."""
        return self._meta["log_id"]

    @property
    def genesis(self) -> str:
        """The log's genesis hash: the first record's ``prev_hash`` (see ``genesis_hash``)."""
        return self._genesis

    def _write_anchor(self, seq: int, hash_: str, event: str) -> Anchor:
        assert self.anchors is not None
        meta = self._meta
        anchor = Anchor(
            seq=seq, hash=hash_, log_id=meta["log_id"], chain=meta["chain"], key_id=meta.get("key_id"),
            format_version=meta["format_version"], log_created_at=meta["created_at"], created_at=_utc_now(),
            event=event, log=str(self.path.resolve()),
        )  # fmt: skip
        with self._anchor_write_lock:
            _append_line(self.anchors, anchor.to_line())
            self.last_anchor = anchor
        return anchor

    def _anchor_now(self, event: str) -> Anchor:
        with self._anchor_lock:
            self._since_anchor = 0
        return self._write_anchor(*self.head(), event)

    def anchor(self) -> Anchor:
        """Append the current head to the anchors file now (and restart the ``anchor_every`` count).

        Returns:
            The anchor written.

        Raises:
            ValueError: the log was opened without an anchors file.
            OSError: the anchors file could not be written.
        """
        if self.anchors is None:
            raise ValueError(f"{self.path}: opened without an anchors file (anchors=..., {ANCHORS_ENV})")
        return self._anchor_now("manual")

    def _committed(self, seq: int, hash_: str, count: int) -> None:
        """Count records just committed; anchor the last of them once ``anchor_every`` have gone by.

        Runs after the commit, outside the write lock: the caller's decision is on disk whatever
        happens here. A failed anchor is logged and kept in ``anchor_error`` rather than raised, so
        that a full or unwritable anchors disk does not turn logged decisions into errors; the next
        attempt comes ``anchor_every`` records later, and ``close()`` raises.
        """
        if self.anchors is None:
            return
        with self._anchor_lock:
            self._since_anchor += count
            if self._since_anchor < self.anchor_every:
                return
            self._since_anchor = 0
        try:
            self._write_anchor(seq, hash_, "every")
        except OSError as exc:
            self.anchor_error = exc
            _log.error("decision log %s: could not write an anchor to %s: %s", self.path, self.anchors, exc)

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --

    def _prepare(self, fields: DecisionInput | Mapping[str, Any]) -> _Prepared:
        """Validate, minimise and encode one decision (outside the write lock)."""
        inp = fields if isinstance(fields, DecisionInput) else DecisionInput.model_validate(fields)
        request = inp.request
        if self.salt is not None:
            request = minimise_request(request, self.pii_fields, salt=self.salt)
        leaks = _raw_pii(request, self.pii_fields, "request")
        if leaks:
            raise ValueError(f"the request holds raw personal data at {leaks}: give the log a salt")
        leaks = [f"features.{k}" for k in inp.features if k in self.pii_fields]
        leaks += _raw_pii(
            {k: v for k, v in inp.features.items() if isinstance(v, str)}, frozenset(), "features"
        )
        if leaks:
            raise ValueError(
                f"the features hold raw personal data at {leaks}: log the model input after the "
                "steps that consume personal data (the derived numbers)"
            )
        encoded = {
            "decision_id": inp.decision_id or new_decision_id(),
            "kind": inp.kind,
            "request": encode_json(request),
            "features": encode_json(inp.features),
            "models": encode_json(inp.models),
            "feature_set": inp.feature_set,
            "policy_version": inp.policy_version,
            "score": inp.score,
            "tier": inp.tier,
            "action": inp.action,
            "reasons": encode_json(inp.reasons),
        }
        try:  # lone surrogates pass json but not UTF-8: refuse them before they reach the chain
            "".join(v for v in encoded.values() if isinstance(v, str)).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the decision holds text that is not valid Unicode: {exc}") from None
        return _Prepared(encoded)

    def _write(
        self, batch: list[_Prepared], journals: list[tuple[JournalWrite, slice]] = ()
    ) -> list[dict[str, Any]]:
        """Append prepared decisions in one transaction; the caller holds ``self._lock``.

        ``journals`` are extra writes for the same transaction, each given the rows of its slice
        of ``batch`` (see ``JournalWrite``).

        Returns the stored rows (JSON fields as stored text): decoding them into records is left
        to the callers, outside the lock.
        """
        if self._keyed_log and self.key is None:
            raise ValueError(f"{self.path} is a keyed log: open it with its key to append")
        conn = self._connection()
        _begin_immediate(conn, self.timeout)  # the write lock first, then the tail: no two writers fork
        try:
            tail = conn.execute("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = tail if tail is not None else (0, self._genesis)
            rows = []
            for item in batch:
                seq += 1
                values = dict(item.fields, seq=seq, created_at=_utc_now(), prev_hash=prev)
                values["hash"] = prev = _digest(_canonical(tuple(values[f] for f in _HASHED)), self.key)
                rows.append(values)
            conn.executemany(_INSERT, [tuple(r[c] for c in _COLUMNS) for r in rows])
            for write, part in journals:
                write(conn, rows[part])
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError) and "decision_id" in str(exc):
                raise DuplicateDecisionError(f"a decision id is already in the log: {exc}") from exc
            raise
        return rows

    def _append_row(
        self, fields: DecisionInput | Mapping[str, Any], journal: JournalWrite | None = None
    ) -> dict[str, Any]:
        prepared = self._prepare(fields)
        if self.group_commit:
            row = self._append_grouped(prepared, journal)
        else:
            with self._lock:
                row = self._write([prepared], [(journal, slice(0, 1))] if journal else [])[0]
        self._committed(row["seq"], row["hash"], 1)
        return row

    def append_receipt(
        self, fields: DecisionInput | Mapping[str, Any], *, journal: JournalWrite | None = None
    ) -> Receipt:
        """``append``, returning only where the decision went (no decoding of the stored record).

        For the serving path, which answers from the decision it just made: the same checks,
        chaining and durability as ``append``. ``journal`` runs in the same transaction.
        """
        row = self._append_row(fields, journal)
        return Receipt(row["seq"], row["decision_id"], row["created_at"], row["hash"])

    def append(self, fields: DecisionInput | Mapping[str, Any]) -> DecisionRecord:
        """Append one decision as one transaction, chained to the current tail.

        Args:
            fields: a ``DecisionInput`` or a mapping with its fields.

        Returns:
            The stored record (with seq, decision id, created_at and hashes).

        Raises:
            pydantic.ValidationError: a field is missing or invalid.
            ValueError: raw personal data in the request (no salt) or the features.
            DuplicateDecisionError: the caller's decision id is already in the log.
        """
        return DecisionRecord._from_row(self._append_row(fields), trusted=True)

    def _append_grouped(self, prepared: _Prepared, journal: JournalWrite | None = None) -> dict[str, Any]:
        slot = _Slot(prepared, journal)
        with self._queue_lock:
            self._queue.append(slot)
        with self._lock:
            # The thread that gets the lock first writes everything queued meanwhile (its own slot
            # included); the others find their slot done when they get the lock in turn.
            if not slot.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                journals = [(s.journal, slice(i, i + 1)) for i, s in enumerate(batch) if s.journal]
                try:
                    rows = self._write([s.prepared for s in batch], journals)
                except Exception:
                    # one bad decision (a duplicate id) must not fail the others: retry one by one
                    for s in batch:
                        try:
                            one = [(s.journal, slice(0, 1))] if s.journal else []
                            s.row = self._write([s.prepared], one)[0]
                        except Exception as exc:
                            s.error = exc
                        s.done = True
                else:
                    for s, row in zip(batch, rows, strict=True):
                        s.row, s.done = row, True
        if slot.error is not None:
            raise slot.error
        assert slot.row is not None
        return slot.row

    def append_many(
        self, records: Iterable[DecisionInput | Mapping[str, Any]], *, journal: JournalWrite | None = None
    ) -> list[DecisionRecord]:
        """Append several decisions in one transaction (batch scoring): all or none.

        Args:
            records: ``DecisionInput`` objects or mappings (none: only ``journal`` is written).
            journal: extra writes for the same transaction, given all the inserted rows.

        Returns:
            The stored records, in order.
        """
        prepared = [self._prepare(r) for r in records]
        if not prepared and journal is None:
            return []
        with self._lock:
            rows = self._write(prepared, [(journal, slice(0, len(prepared)))] if journal else [])
        if rows:
            self._committed(rows[-1]["seq"], rows[-1]["hash"], len(rows))
        return [DecisionRecord._from_row(r, trusted=True) for r in rows]


    # -- reading --

    def get(self, decision_id: str) -> DecisionRecord | None:
        """The record of a decision id, or ``None`` when the log has no such decision."""
        with self._lock:
            conn = self._connection()
            conn.row_factory = sqlite3.Row
            try:
                row = conn.execute(f"{_SELECT} WHERE decision_id = ?", (decision_id,)).fetchone()
            finally:
                conn.row_factory = None
        return None if row is None else DecisionRecord._from_row(row)

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record (``(0, genesis)`` when empty): what an anchor records."""
        with self._lock:
            return _tail(self._connection(), self._genesis)

    def __len__(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT count(*) FROM decisions").fetchone()[0]

    def iter_records(
        self, start_seq: int = 1, end_seq: int | None = None, *, batch_size: int = 1000
    ) -> Iterator[DecisionRecord]:
        """Stream records in seq order from one consistent snapshot, without blocking writers.

        Args:
            start_seq: the first seq to return.
            end_seq: the last seq to return (inclusive), or ``None`` for the end.
            batch_size: rows fetched per round trip.

        Yields:
            ``DecisionRecord`` objects.
        """
        with self._lock:
            self._connection()  # the file and schema exist
        conn = _connect(self.path, read_only=True, timeout=self.timeout)
        conn.row_factory = sqlite3.Row
        try:
            cursor = conn.execute(
                f"{_SELECT} WHERE seq >= ? AND seq <= ? ORDER BY seq",
                (start_seq, end_seq if end_seq is not None else 2**63 - 1),
            )
            while rows := cursor.fetchmany(batch_size):
                for row in rows:
                    yield DecisionRecord._from_row(row)
        finally:
            conn.close()

    def verify(
        self,
        *,
        anchors: AnchorsArg | None = None,
        expect_keyed: bool = False,
        max_problems: int = 10,
    ) -> VerifyReport:
        """Check the whole chain and anchors (by default this log's anchors file); see ``verify_path``."""
        with self._lock:
            self._connection()
        if anchors is None:
            anchors = self.anchors if self.anchors is not None else ()
        return verify_path(
            self.path, key=self.key, anchors=anchors, expect_keyed=expect_keyed, max_problems=max_problems
        )


# --- Verification -----------------------------------------------------------------------------


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
    compares the anchors (see the module docstring for what they reveal). After a break it
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
