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
    strings), encoded as UTF-8. The first record's ``prev_hash`` is ``GENESIS_HASH`` (64 zeros);
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

Keyed chain (``key``)
    Without a key, anyone can verify the log (the algorithm is public), and any accidental or
    naive change is detected, but an attacker who can write the file can rewrite every hash from
    the edited record to the end and the chain will verify. With ``key`` the hashes are
    HMAC-SHA256: without the key nobody can forge a consistent chain. The price: verifying needs
    the key, a verifier holding it could also forge, so it must live in a secret store with
    access logging; losing it leaves the log readable but unverifiable; one key per log file
    (rotate by starting a new file and anchoring the old head). The file records a key id (an
    HMAC of a constant, which reveals nothing about the key) so that a wrong key is a clear error.

Anchoring (``head``)
    A chain cannot tell that its tail was cut off: the shorter log is a valid chain. Publish
    ``head()`` (``seq`` and ``hash``) periodically somewhere the log's writers cannot change
    (a ticket, an append-only bucket, an e-mail to audit, a transparency log) and pass the
    published pairs as ``anchors`` to ``verify``: a missing anchored record reveals truncation and
    a different hash reveals a rewrite, even of an unkeyed log.

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
    Triggers refuse ``UPDATE`` and ``DELETE`` on the table; that stops accidents, while the chain
    catches someone who drops the triggers.

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

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from features.contracts import ACCOUNT_EVENTS, CUSTOMERS, TRANSACTIONS

__all__ = [
    "DEFAULT_PII_FIELDS",
    "GENESIS_HASH",
    "REQUEST_PREFIXES",
    "DecisionInput",
    "DecisionLog",
    "DecisionRecord",
    "DuplicateDecisionError",
    "Problem",
    "Receipt",
    "VerifyReport",
    "decode_json",
    "encode_json",
    "mask",
    "minimise_request",
    "new_decision_id",
    "pseudonymise",
    "secret_from_env",
    "verify_path",
]

GENESIS_HASH = "0" * 64
FORMAT_VERSION = "1"
KEY_ENV = "KYCRISK_DECISION_LOG_KEY"
SALT_ENV = "KYCRISK_PII_SALT"
MIN_SECRET_BYTES = 16

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

ProblemKind = Literal["edited", "deleted", "inserted", "reordered", "truncated", "anchor", "key", "format"]


class Problem(BaseModel):
    """One break in the chain: where, what kind, and an explanation for people."""

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
        head_hash: the last record's hash (``GENESIS_HASH`` when empty).
        keyed: whether the hashes were checked as HMAC-SHA256 with a key.
        anchors_checked: how many published anchors were compared.
        problems: the breaks found, in seq order (at most ``max_problems``).
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
    anchors_checked: int = 0
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

    def summary(self) -> str:
        """One line for people: OK or BROKEN, where, why, how many records, how long."""
        chain = "HMAC-SHA256" if self.keyed else "SHA-256"
        if self.ok:
            anchors = f", {self.anchors_checked} anchor(s) matched" if self.anchors_checked else ""
            return (
                f"decision log {self.path}: OK - {self.records} records, {chain} chain intact{anchors}, "
                f"head seq {self.head_seq} {self.head_hash[:16]}, verified in {self.elapsed_s:.2f} s"
            )
        first = self.problems[0]
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
)
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
    ):
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}")
        self.path = Path(path)
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
        with self._lock:
            self._connection()

    @classmethod
    def from_env(cls, path: str | Path, **kwargs: Any) -> DecisionLog:
        """Open a log with the key from ``KYCRISK_DECISION_LOG_KEY`` and salt from ``KYCRISK_PII_SALT``."""
        return cls(path, key=secret_from_env(KEY_ENV), salt=secret_from_env(SALT_ENV), **kwargs)

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
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        # executescript would COMMIT the open transaction; run the statements one by one inside it
        for statement in _SCHEMA:
            conn.execute(statement)
        meta = _meta(conn)
        if not meta:
            chain = "hmac-sha256" if self.key is not None else "sha256"
            rows = {"format_version": FORMAT_VERSION, "chain": chain, "created_at": _utc_now()}
            if self.key is not None:
                rows["key_id"] = _key_id(self.key)
            conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", rows.items())
            meta = rows
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.path}: unknown decision log format {meta.get('format_version')!r}")
        self._keyed_log = meta.get("chain") == "hmac-sha256"
        if self.key is not None:
            if not self._keyed_log:
                raise ValueError(f"{self.path} is an unkeyed log: open it without a key")
            if meta.get("key_id") != _key_id(self.key):
                raise ValueError(f"{self.path}: the key does not match the log's key id {meta.get('key_id')}")

    def close(self) -> None:
        """Close the writer connection (a later call reopens it)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

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
            seq, prev = tail if tail is not None else (0, GENESIS_HASH)
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
            return self._append_grouped(prepared, journal)
        with self._lock:
            return self._write([prepared], [(journal, slice(0, 1))] if journal else [])[0]

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
        """``(seq, hash)`` of the last record (``(0, GENESIS_HASH)`` when empty), to publish as an anchor."""
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1")
                .fetchone()
            )
        return (0, GENESIS_HASH) if row is None else (row[0], row[1])

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

    def verify(self, *, anchors: Iterable[tuple[int, str]] = (), max_problems: int = 10) -> VerifyReport:
        """Check the whole chain (and any published anchors); see ``verify_path``."""
        with self._lock:
            self._connection()
        return verify_path(self.path, key=self.key, anchors=anchors, max_problems=max_problems)


# --- Verification -----------------------------------------------------------------------------


class _Verifier:
    """Streams the chain once, classifying each break (see ``verify_path``)."""

    def __init__(self, conn: sqlite3.Connection, key: bytes | None, max_problems: int):
        self.conn = conn
        self.key = key
        self.max_problems = max_problems
        self.problems: list[Problem] = []
        self.more = False
        self.flagged: set[str] = set()  # stored hashes of records already reported

    def add(self, problem: Problem, stored_hash: str) -> None:
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
        if value == GENESIS_HASH:
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

    def run(self, anchors: dict[int, str]) -> tuple[int, int, str, int]:
        """Check every record; returns (records, head seq, head hash, anchors matched)."""
        expected_seq, expected_prev = 1, GENESIS_HASH
        count, head_seq, head_hash, anchored = 0, 0, GENESIS_HASH, 0
        seen_anchors: set[int] = set()
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
                                detail="the hash differs from the published anchor: the log was rewritten",
                            ),
                            stored,
                        )
                expected_seq, expected_prev = max(seq, expected_seq - 1) + 1, stored
                head_seq, head_hash = seq, stored
        for seq in sorted(set(anchors) - seen_anchors):
            if seq > head_seq:
                detail = f"the anchored record {seq} is missing: the tail after seq {head_seq} was truncated"
                self.add(Problem(seq=seq, kind="truncated", detail=detail), anchors[seq])
            else:
                self.add(
                    Problem(seq=seq, kind="deleted", detail="the anchored record is missing"), anchors[seq]
                )
        self.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
        return count, head_seq, head_hash, anchored


def verify_path(
    path: str | Path,
    *,
    key: bytes | str | None = None,
    anchors: Iterable[tuple[int, str]] = (),
    max_problems: int = 10,
) -> VerifyReport:
    """Verify a decision log file (read-only; for ``kycrisk audit verify``).

    Recomputes every record's hash from its stored contents and checks the chain: seq 1, 2, 3...
    without gaps or repeats, each ``prev_hash`` equal to the hash before it, the first equal to
    ``GENESIS_HASH``; then compares the published ``anchors``. After a break it carries on from
    the stored hash, so independent breaks are each reported once.

    Args:
        path: the sqlite file.
        key: the HMAC key of a keyed log (required for one).
        anchors: published ``(seq, hash)`` pairs from ``DecisionLog.head``.
        max_problems: how many breaks to list (the rest are counted in ``more_problems``).

    Returns:
        The report; ``report.ok`` is the verdict, ``str(report)`` a one-line summary.

    Raises:
        FileNotFoundError: no file at ``path``.
    """
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no decision log at {path}")
    secret = None if key is None else _secret(key, "key")
    conn = _connect(path, read_only=True, timeout=30.0)
    try:
        conn.execute("BEGIN")  # one snapshot: appends running meanwhile are not half-seen
        meta = _meta(conn)
        base = {"path": str(path), "keyed": secret is not None}
        problem = None
        if not meta:
            problem = Problem(seq=None, kind="format", detail="not a decision log (no meta table)")
        elif meta.get("chain") == "hmac-sha256" and secret is None:
            problem = Problem(seq=None, kind="key", detail="the log is keyed: verifying it needs its key")
        elif secret is not None and meta.get("chain") != "hmac-sha256":
            problem = Problem(seq=None, kind="key", detail="a key was given but the log is not keyed")
        elif secret is not None and meta.get("key_id") != _key_id(secret):
            problem = Problem(
                seq=None, kind="key", detail=f"the key does not match the log's key id {meta.get('key_id')}"
            )
        if problem is not None:
            return VerifyReport(
                **base, ok=False, records=0, head_seq=0, head_hash=GENESIS_HASH, problems=[problem],
                elapsed_s=time.perf_counter() - started,
            )  # fmt: skip
        verifier = _Verifier(conn, secret, max_problems)
        records, head_seq, head_hash, anchored = verifier.run(dict(anchors))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return VerifyReport(
        **base,
        ok=not verifier.problems,
        records=records,
        head_seq=head_seq,
        head_hash=head_hash,
        anchors_checked=anchored,
        problems=verifier.problems,
        more_problems=verifier.more,
        elapsed_s=time.perf_counter() - started,
    )
