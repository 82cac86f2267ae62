"""Decision records and their chain: the record types, the canonical bytes hashed, SHA-256 or HMAC.

What one decision is (``DecisionInput`` in, ``DecisionRecord`` out) and how its hash is computed
and chained from the header's genesis hash; storing records is ``serving.decision_log.store``'s job,
checking a stored chain ``serving.decision_log.verify``'s.

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

Hash chain
    ``hash = SHA-256(canonical_json(record))`` where ``record`` holds every field above except
    ``hash`` itself (``prev_hash`` included; the JSON columns embedded as JSON values, not as
    strings), encoded as UTF-8. The first record's ``prev_hash`` is the log's genesis hash (below);
    each later one's is the hash of the record before it. An independent auditor can recompute a
    hash with nothing but the standard library::

        row = {...every column but hash, the four JSON columns parsed with plain json.loads...}
        data = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        hashlib.sha256(data.encode("utf-8")).hexdigest()  # or hmac.new(key, data, "sha256")

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
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serving.decision_log.canonical import _dumps, _quote, decode_json, encode_json
from serving.decision_log.keys import _secret

FORMAT_VERSION = "2"
CHAINS = ("sha256", "hmac-sha256")
_GENESIS_FIELDS = ("chain", "created_at", "format_version", "key_id", "log_id")

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
