"""The customer profile store: KYC profiles and their onboarding screening, encrypted at rest in sqlite.

``ProfileStore`` keeps, per customer, the contract columns of its current profile, its watchlist
screening at onboarding and a profile version (sqlite in WAL mode, ``<state_dir>/profiles.sqlite``),
and holds all of them decrypted in memory: the order model reads the profile features and the
screening of both parties on every order.

Encryption. The profile and the screening (which names the matched list entry) are each stored as
AES-256-GCM ciphertext under the state key (``KYCRISK_STATE_KEY``, ``serving.secrets_config``):
one format byte, a random 96-bit nonce, then the ciphertext and its tag. The associated data binds
each value to its customer id, version and kind (``profile`` / ``screening``), so a row copied onto
another customer, an older version put back, or a screening swapped for a profile fails to
authenticate. A key-check value in the ``meta`` table tells a wrong key (every row would fail)
from a damaged row: a wrong key is ``StateKeyError`` at start, naming the variable to check.

Bad rows never stop the start. A row that fails to decrypt-authenticate, decode or validate (a time
outside the contract's ``TIME_RANGES``, which pandas or the engines cannot hold, a non-finite or
out-of-range number, a missing or foreign column) is moved to the ``quarantine`` table with its
reason (the stored bytes unchanged, for repair), logged at WARNING with the customer id and the
reason (never a value), and the store serves the others; an order naming that customer is then an
unknown customer until it is onboarded again. ``put_many`` refuses such a profile (``ValueError``
naming the customer and the column), so the state never takes one in.

Rows written before encryption (clear JSON text) are encrypted in place when the store opens, and
``secure_delete`` overwrites the freed clear pages, so no clear copy is left in the file.

The state folder's lock. The store takes ``<state_dir>/state.lock`` (``StateLock``, ``flock``) for
as long as it is open: shared by the service's Scorer, exclusive for the privacy commands
(``serving.privacy``), so that an export or erasure never runs against a state a service is using,
and a service never starts while one runs. The kernel drops the lock when the process dies (kill -9
included), so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from features.assemble import SCREEN_COLUMNS
from features.contracts import CUSTOMERS, DEFAULT_TIME_RANGE
from features.profile import OPTIONAL_PROFILE_COLUMNS, PROFILE_COLUMNS
from serving.decision_log.canonical import decode_json, encode_json
from serving.history import connect_wal
from serving.secrets_config import STATE_KEY_BYTES, STATE_KEY_ENV

__all__ = [
    "CUSTOMER_COLUMNS",
    "LOCK_FILE",
    "ProfileCipher",
    "ProfileRowError",
    "ProfileStore",
    "StateKeyError",
    "StateLock",
    "StateLocked",
    "as_timestamp",
    "check_profile",
    "check_screening",
    "plain_value",
]

log = logging.getLogger(__name__)

CUSTOMER_COLUMNS = ("customer_id", "role", *PROFILE_COLUMNS, *OPTIONAL_PROFILE_COLUMNS)
LOCK_FILE = "state.lock"
_FORMAT = b"\x01"  # AES-256-GCM, 96-bit random nonce, 128-bit tag
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_CHECK = {"kycrisk": "state key check"}


# --- Values -----------------------------------------------------------------------------------


def as_timestamp(value: Any) -> Any:
    """Dates and datetimes as tz-aware UTC ``pd.Timestamp`` (the contract's time type), else as is."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if isinstance(value, date):
        return pd.Timestamp(value).tz_localize("UTC")
    return value


def plain_value(value: Any) -> Any:
    """numpy / pandas scalars and missing values as plain Python (None for missing)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class ProfileRowError(ValueError):
    """A stored or offered profile row that cannot be served; the message names the column, never a value."""


def _bounds(column: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    low, high = CUSTOMERS.column(column).time_range
    # "now" cannot be checked against stored rows: the state may have been written under a simulated
    # clock (replays, the demo on data dated after today). What a stored row must meet is a range the
    # engines can hold; the request edge checks "not in the future".
    if high == "now":
        high = DEFAULT_TIME_RANGE[1]
    return pd.Timestamp(low, tz="UTC"), pd.Timestamp(high, tz="UTC")


_TIME_BOUNDS = {c.name: _bounds(c.name) for c in CUSTOMERS.columns if c.time_range is not None}
_NUMBER_BOUNDS = {c.name: (c.min_value, c.max_value) for c in CUSTOMERS.columns if c.kind in ("float", "int")}


def check_profile(customer_id: str, profile: Any) -> dict[str, Any]:
    """A profile as the store keeps it in memory, or ``ProfileRowError`` naming what is wrong.

    Args:
        customer_id: the customer the row belongs to.
        profile: the decoded profile (a mapping of contract columns).

    Returns:
        The profile with every ``CUSTOMER_COLUMNS`` key, times as UTC ``pd.Timestamp`` within the
        contract's bounds, numbers finite and within theirs.

    Raises:
        ProfileRowError: not a mapping, another customer's id, an unknown column, or a value out of
            its type or range (the message names the column only).
    """
    if not isinstance(profile, Mapping):
        raise ProfileRowError("the profile is not a JSON object")
    unknown = sorted(set(profile) - set(CUSTOMER_COLUMNS))
    if unknown:
        raise ProfileRowError(f"the profile has columns outside the contract: {unknown}")
    if str(profile.get("customer_id")) != customer_id:
        raise ProfileRowError("the profile's customer_id is not the row's customer")
    out: dict[str, Any] = {}
    for column in CUSTOMER_COLUMNS:
        value = plain_value(profile.get(column))
        if value is not None and column in _TIME_BOUNDS:
            low, high = _TIME_BOUNDS[column]
            try:
                value = pd.Timestamp(value)
                value = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
            except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime):
                raise ProfileRowError(f"{column} is not a time pandas can represent") from None
            # pandas holds far dates in coarser units, but the engines take nanoseconds (``_us``): the
            # contract's bounds lie well inside that range
            if not low <= value < high:
                raise ProfileRowError(
                    f"{column} is outside the contract's range [{low.date()}, {high.date()})"
                )
        elif value is not None and column in _NUMBER_BOUNDS:
            low, high = _NUMBER_BOUNDS[column]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ProfileRowError(f"{column} is not a finite number")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ProfileRowError(f"{column} is outside the contract's range [{low}, {high}]")
        elif value is not None and column == "twofa_enabled":
            if not isinstance(value, bool):
                raise ProfileRowError("twofa_enabled is not a boolean")
        elif value is not None and not isinstance(value, str):
            raise ProfileRowError(f"{column} is not text")
        out[column] = value
    return out


def check_screening(screening: Any) -> dict[str, Any]:
    """A stored screening (``SCREEN_COLUMNS``), or ``ProfileRowError`` naming what is wrong."""
    if not isinstance(screening, Mapping):
        raise ProfileRowError("the screening is not a JSON object")
    unknown = sorted(set(screening) - set(SCREEN_COLUMNS))
    if unknown:
        raise ProfileRowError(f"the screening has columns outside {list(SCREEN_COLUMNS)}: {unknown}")
    out = {c: plain_value(screening.get(c)) for c in SCREEN_COLUMNS}
    score = out["screen_score"]
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        raise ProfileRowError("screen_score is not a finite number")
    return out


# --- Encryption -------------------------------------------------------------------------------


class StateKeyError(ValueError):
    """The state key does not open this state (another state's key, or a mistyped one)."""


class ProfileCipher:
    """AES-256-GCM of one JSON value bound to ``(kind, customer_id, version)`` (see the module docstring).

    Args:
        key: the 32-byte state key.
    """

    def __init__(self, key: bytes):
        if not isinstance(key, bytes) or len(key) != STATE_KEY_BYTES:
            raise StateKeyError(f"{STATE_KEY_ENV} must be {STATE_KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(kind: str, customer_id: str, version: int) -> bytes:
        # length-prefixed parts: no two (kind, id, version) triples share an encoding
        parts = [p.encode("utf-8") for p in ("kycrisk-profiles", kind, customer_id, str(int(version)))]
        return b"".join(len(p).to_bytes(4, "big") + p for p in parts)

    def seal(self, kind: str, customer_id: str, version: int, value: Any) -> bytes:
        """Encrypt ``value`` (JSON-like, as ``encode_json`` takes it) for one row."""
        nonce = os.urandom(_NONCE_BYTES)  # random 96-bit nonces: safe far beyond this store's row count
        plain = encode_json(value).encode("utf-8")
        return _FORMAT + nonce + self._aead.encrypt(nonce, plain, self._aad(kind, customer_id, version))

    def open(self, kind: str, customer_id: str, version: int, blob: Any) -> Any:
        """Decrypt and decode one stored value.

        Raises:
            ProfileRowError: not a value of this format, or it fails to authenticate (altered,
                moved to another customer or version, or sealed under another key).
        """
        if not isinstance(blob, bytes) or len(blob) < 1 + _NONCE_BYTES + _TAG_BYTES or blob[:1] != _FORMAT:
            raise ProfileRowError(f"the {kind} is not an encrypted value of this store's format")
        nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, body, self._aad(kind, customer_id, version))
        except InvalidTag:
            raise ProfileRowError(
                f"the {kind} fails to authenticate (altered, or moved from another customer or version)"
            ) from None
        try:
            return decode_json(plain.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ProfileRowError(f"the {kind} is not valid JSON") from None


# --- The state folder's lock ----------------------------------------------------------------


class StateLocked(RuntimeError):
    """The state folder is held by another process (a running service, or a privacy command)."""


class StateLock:
    """``flock`` on ``<state_dir>/state.lock``: shared for the service, exclusive for offline commands.

    Args:
        state_dir: the state folder.
        exclusive: take the lock alone (privacy export and erase) rather than shared (the Scorer).

    Raises:
        StateLocked: the lock is held in a conflicting mode (the message says by what).
    """

    def __init__(self, state_dir: str | Path, *, exclusive: bool):
        self.path = Path(state_dir) / LOCK_FILE
        self.exclusive = exclusive
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise StateLocked(
                f"state folder {Path(state_dir)} is in use by a running service (or another kycrisk "
                "command): stop the service first, then run the privacy command"
                if exclusive
                else f"state folder {Path(state_dir)} is locked by a running privacy command (kycrisk "
                "privacy export/erase): wait for it to finish, then start the service"
            ) from None

    def release(self) -> None:
        """Drop the lock (closing the file releases the ``flock``)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# --- The store --------------------------------------------------------------------------------

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS profiles (customer_id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
    "profile BLOB NOT NULL, screening BLOB NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quarantine (customer_id TEXT NOT NULL, version INTEGER, profile BLOB, "
    "screening BLOB, reason TEXT NOT NULL, quarantined_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS erasures (customer_id TEXT NOT NULL, erased_at TEXT NOT NULL, "
    "removed TEXT NOT NULL)",
)


class ProfileStore:
    """Customer profiles and their onboarding screening, encrypted in sqlite (WAL) and decrypted in memory.

    Args:
        path: the sqlite file (its folder is the state folder whose lock the store takes).
        key: the 32-byte state key.
        exclusive: take the state folder's lock exclusively (the privacy commands) rather than
            shared (the service).

    Raises:
        StateLocked: the state folder's lock is held in a conflicting mode.
        StateKeyError: ``key`` is not the key this store was written with.
    """

    def __init__(self, path: str | Path, key: bytes, *, exclusive: bool = False):
        self.path = str(path)
        self._cipher = ProfileCipher(key)
        self._state_lock = StateLock(Path(path).parent, exclusive=exclusive)
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[int, dict[str, Any], dict[str, Any]]] = {}
        try:
            self._conn = connect_wal(self.path)
            # replaced and deleted rows are overwritten with zeros, so no clear or erased value
            # stays behind in free pages
            self._conn.execute("PRAGMA secure_delete=ON")
            for statement in _SCHEMA:
                self._conn.execute(statement)
            self._check_key()
            self._load()
        except BaseException:
            self.close()
            raise

    def _check_key(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'key_check'").fetchone()
        if row is None:
            sealed = self._cipher.seal("key_check", "", 0, _KEY_CHECK)
            self._conn.execute("INSERT INTO meta VALUES ('key_check', ?)", (sealed,))
            return
        try:
            self._cipher.open("key_check", "", 0, row[0])
        except ProfileRowError:
            raise StateKeyError(
                f"the state key does not open {self.path}: {STATE_KEY_ENV} (or the secrets file's) is not the "
                "key this state was written with"
            ) from None

    def _load(self) -> None:
        """Decrypt every row into memory; encrypt rows written before encryption; quarantine bad ones."""
        legacy, bad = [], []
        # every value read as bytes with its sqlite type: a hand-edited value may be text that is not
        # UTF-8, which sqlite3 would refuse to decode (and the start would fail on one row)
        for rowid, cid, version, kinds, profile, screening in self._conn.execute(
            "SELECT rowid, CAST(customer_id AS BLOB), version, typeof(profile) || typeof(screening), "
            "CAST(profile AS BLOB), CAST(screening AS BLOB) FROM profiles"
        ):
            cid = bytes(cid).decode("utf-8", "backslashreplace")
            try:
                if not isinstance(version, int) or isinstance(version, bool):
                    raise ProfileRowError("the version is not an integer")
                if kinds == "texttext":
                    # written before encryption at rest: validate as usual, then encrypt in place
                    values = (
                        check_profile(cid, decode_json(bytes(profile).decode("utf-8"))),
                        check_screening(decode_json(bytes(screening).decode("utf-8"))),
                    )
                    legacy.append((cid, version, *values))
                else:
                    values = (
                        check_profile(cid, self._cipher.open("profile", cid, version, bytes(profile))),
                        check_screening(self._cipher.open("screening", cid, version, bytes(screening))),
                    )
            except ProfileRowError as exc:
                bad.append((rowid, cid, str(exc)))
                continue
            except ValueError:  # UnicodeDecodeError and JSONDecodeError of a row stored in clear
                bad.append((rowid, cid, "the stored clear JSON does not decode"))
                continue
            self._cache[cid] = (version, *values)
        if legacy:
            self._write(legacy)
            log.warning("encrypted %d profiles that were stored in clear in %s", len(legacy), self.path)
        for rowid, cid, reason in bad:
            self._quarantine_row(rowid, cid, reason)

    # -- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, customer_id: str) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
        """``(version, profile, screening)`` of a customer, or None."""
        return self._cache.get(customer_id)

    def items(self) -> list[tuple[str, int, dict[str, Any], dict[str, Any]]]:
        """Every stored customer as ``(customer_id, version, profile, screening)`` (a snapshot)."""
        with self._lock:
            return [(cid, v, p, s) for cid, (v, p, s) in self._cache.items()]

    def quarantined(self, customer_id: str | None = None) -> list[dict[str, Any]]:
        """The quarantined rows (all, or one customer's): customer id, version, reason and time, no values."""
        where, params = ("WHERE customer_id = ?", (customer_id,)) if customer_id is not None else ("", ())
        with self._lock:
            rows = self._conn.execute(
                f"SELECT customer_id, version, reason, quarantined_at FROM quarantine {where} ORDER BY rowid",
                params,
            ).fetchall()
        return [
            dict(zip(("customer_id", "version", "reason", "quarantined_at"), r, strict=True)) for r in rows
        ]

    def quarantined_values(self, customer_id: str) -> list[dict[str, Any]]:
        """One customer's quarantined rows with whatever of their values still decrypts (for an export)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT version, CAST(profile AS BLOB), CAST(screening AS BLOB), reason FROM quarantine "
                "WHERE customer_id = ? ORDER BY rowid",
                (customer_id,),
            ).fetchall()
        out = []
        for version, profile, screening, reason in rows:
            entry: dict[str, Any] = {"version": version, "reason": reason}
            for kind, blob in (("profile", profile), ("screening", screening)):
                try:
                    if not isinstance(version, int):
                        raise ProfileRowError("the version is not an integer")
                    entry[kind] = self._cipher.open(kind, customer_id, version, blob)
                except ProfileRowError as exc:
                    entry[kind] = None
                    entry[f"{kind}_unreadable"] = str(exc)
            out.append(entry)
        return out

    def erasures(self, customer_id: str | None = None) -> list[dict[str, Any]]:
        """The recorded erasures (all, or one customer's): customer id, time and what was removed."""
        where, params = ("WHERE customer_id = ?", (customer_id,)) if customer_id is not None else ("", ())
        with self._lock:
            rows = self._conn.execute(
                f"SELECT customer_id, erased_at, removed FROM erasures {where} ORDER BY rowid", params
            ).fetchall()
        return [{"customer_id": c, "erased_at": t, "removed": decode_json(r)} for c, t, r in rows]

    # -- writing -------------------------------------------------------------------------------

    def _write(
        self,
        staged: list[tuple[str, int, dict[str, Any], dict[str, Any]]],
        extra: Iterable[tuple[str, tuple]] = (),
    ) -> None:
        """Encrypt and write rows (and any ``(sql, params)`` statements) in one transaction."""
        now = datetime.now(UTC).isoformat()
        sealed = [
            (c, v, self._cipher.seal("profile", c, v, p), self._cipher.seal("screening", c, v, s), now)
            for c, v, p, s in staged
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO profiles VALUES (?, ?, ?, ?, ?)", sealed)
                for sql, params in extra:
                    self._conn.execute(sql, params)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def put_many(self, rows: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[int]:
        """Store ``(profile, screening)`` pairs (one transaction, all or none); returns the new versions.

        Raises:
            ValueError: a profile or screening the store could not load again (``check_profile``),
                naming the customer and the column; nothing is stored then.
        """
        with self._lock:
            staged, versions = [], []
            for profile, screening in rows:
                cid = str(profile["customer_id"])
                old = self._cache.get(cid)
                version = 1 if old is None else old[0] + 1
                try:
                    clean = check_profile(
                        cid, {c: as_timestamp(plain_value(profile.get(c))) for c in CUSTOMER_COLUMNS}
                    )
                    screen = check_screening({c: screening.get(c) for c in SCREEN_COLUMNS})
                except ProfileRowError as exc:
                    raise ValueError(f"customer {cid!r}: {exc}") from None
                staged.append((cid, version, clean, screen))
                versions.append(version)
            self._write(staged)
            for cid, version, profile, screening in staged:
                self._cache[cid] = (version, profile, screening)
        return versions

    def quarantine(self, customer_id: str, reason: str) -> None:
        """Move a customer's stored row to the ``quarantine`` table (unchanged) and stop serving it.

        Logged at WARNING with the customer id and ``reason`` (which must not hold values).
        """
        with self._lock:
            found = self._conn.execute(
                "SELECT rowid FROM profiles WHERE customer_id = ?", (customer_id,)
            ).fetchone()
            if found is not None:
                self._quarantine_row(found[0], customer_id, reason)
            self._cache.pop(customer_id, None)

    def _quarantine_row(self, rowid: int, customer_id: str, reason: str) -> None:
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO quarantine SELECT customer_id, version, profile, screening, ?, ? "
                    "FROM profiles WHERE rowid = ?",
                    (reason, now, rowid),
                )
                self._conn.execute("DELETE FROM profiles WHERE rowid = ?", (rowid,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._cache.pop(customer_id, None)
        log.warning("profile of customer %s quarantined: %s", customer_id, reason)

    def erase(self, customer_id: str, columns: Iterable[str], removed: Mapping[str, Any]) -> int | None:
        """Blank a customer's personal ``columns`` (a new version), drop its quarantined rows, record it.

        One transaction: the new profile version, the deletion of the customer's quarantined rows
        and the ``erasures`` record (``removed`` says what the erasure removed from every store).

        Returns:
            The new profile version, or None when the customer has no stored profile.
        """
        columns = set(columns)
        now = datetime.now(UTC).isoformat()
        with self._lock:
            found = self._cache.get(customer_id)
            staged = []
            if found is not None:
                version, profile, screening = found
                blanked = {c: (None if c in columns else v) for c, v in profile.items()}
                staged = [(customer_id, version + 1, blanked, screening)]
            self._write(
                staged,
                [
                    ("DELETE FROM quarantine WHERE customer_id = ?", (customer_id,)),
                    ("INSERT INTO erasures VALUES (?, ?, ?)", (customer_id, now, encode_json(dict(removed)))),
                ],
            )
            for cid, version, profile, screening in staged:
                self._cache[cid] = (version, profile, screening)
            # the replaced ciphertexts are zeroed in the file; leave none in the write-ahead log either
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return staged[0][1] if staged else None

    def close(self) -> None:
        """Close the sqlite file and release the state folder's lock."""
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
        self._state_lock.release()
