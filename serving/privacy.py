"""Personal data rights over a stopped service's state: the state pseudonymiser, export and erasure.

``Pseudonymiser`` is the keyed pseudonym of identifiers the state keeps only for their equality
(device ids in the customer history, and device ids and IPs in the feature state): HMAC-SHA256
under a key derived from the pseudonym salt (``KYCRISK_PII_SALT``), truncated to 128 bits, of the
exact text (no normalisation, so two ids are equal as pseudonyms exactly when they are equal as
given, and the features computed on them are bit-identical).

``export_customer`` (``kycrisk privacy export CUSTOMER --state DIR``) gathers what the state holds
about one person: the decrypted profile and screening (and any quarantined rows), the customer
history rows where the person is buyer, seller or account holder, the labels about the person or
those orders, the ids of the decisions whose request names the person (``buyer_id``, ``seller_id``,
``customer_id``; the log itself holds only pseudonyms and masks of personal values) and earlier
erasures.

``erase_customer`` (``kycrisk privacy erase CUSTOMER --state DIR``) removes the personal data:

- profile store: a new profile version with the contract's personal columns (``pii``:
  ``full_name``, ``birth_date``, ``email``, ``phone``, ``address``, ``document_number``; the
  business registration number is never stored there) blanked; kept: the customer id, type and
  role, countries, document type and expiry, industry, dates of onboarding and review, declared
  volume and the screening outcome (what an AML record must keep, none of it identifying by
  itself); the customer's quarantined rows are deleted;
- customer history: the device pseudonyms of the customer's own rows (orders as buyer, account
  events) replaced by random values (``CustomerHistory.erase_devices``), so they no longer link the
  person to a device or to other customers. The rows stay, under the customer id: they are the
  counterparties' history too (an order is its seller's behaviour) and labels refer to them; the
  customer id is the platform's pseudonymous key, not a personal value of the contract;
- decision log: not rewritten. It holds only keyed pseudonyms and masks of the personal values
  (``serving.decision_log``), and its hash chain must still verify (``kycrisk audit verify``);
- the erasure itself is recorded in the profile store's ``erasures`` table (customer id, time,
  what was removed from each store), in the same transaction as the blanked profile.

The feature state (``features.sqlite``) keeps running aggregates per entity; its device and IP
keys are pseudonymised by the same ``Pseudonymiser`` and age out of its windows; it is not edited
here.

Both commands need the state's secrets (``serving.secrets_config.load_secrets``) and take the
state folder's lock exclusively (``serving.profiles.StateLock``): they refuse a folder that a
running service holds. An erasure interrupted by a crash is finished by running it again (each
step is idempotent; the ``erasures`` record is written last).
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.contracts import CUSTOMERS
from features.online.erasure import rekey_personal_values
from serving.history import CustomerHistory
from serving.profiles import CUSTOMER_COLUMNS, ProfileStore
from serving.secrets_config import Secrets

__all__ = ["ERASED_COLUMNS", "Pseudonymiser", "decisions_naming", "erase_customer", "export_customer"]

# The personal columns an erasure blanks: the contract's pii columns the profile store keeps.
ERASED_COLUMNS = tuple(c.name for c in CUSTOMERS.columns if c.pii and c.name in CUSTOMER_COLUMNS)
PSEUDONYM_BYTES = 16  # 128 bits: collisions are out of reach at any realistic number of devices


class Pseudonymiser:
    """Keyed pseudonyms of identifiers kept in the state only for their equality (see the module docstring).

    Args:
        salt: the pseudonym salt (``Secrets.salt``).
        purpose: separates the pseudonyms of one use from another's under the same salt (the
            decision log's pseudonyms of the same value differ from these).
    """

    def __init__(self, salt: bytes, purpose: str = "state identifiers"):
        self._key = hmac.digest(salt, b"kycrisk pseudonym key: " + purpose.encode("utf-8"), "sha256")

    def __call__(self, value: Any) -> str | None:
        """The pseudonym (32 hex digits) of ``value`` as text; None (and NaN, NA) stay None."""
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            return None
        digest = hmac.new(self._key, str(value).encode("utf-8"), hashlib.sha256).digest()
        return digest[:PSEUDONYM_BYTES].hex()


def decisions_naming(log_path: str | Path, customer_id: str) -> list[dict[str, Any]]:
    """The decisions whose request names a customer (as buyer, seller or onboarded customer).

    Args:
        log_path: the decision log (read-only; a missing file means no decisions).
        customer_id: the customer.

    Returns:
        ``{"decision_id", "seq", "kind", "created_at", "role"}`` per decision, in log order.
    """
    path = Path(log_path)
    if not path.is_file():
        return []
    roles = ("buyer_id", "seller_id", "customer_id")
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT decision_id, seq, kind, created_at, "
            + ", ".join(f"json_extract(request, '$.{r}')" for r in roles)
            + " FROM decisions WHERE "
            + " OR ".join(f"json_extract(request, '$.{r}') = ?" for r in roles)
            + " ORDER BY seq",
            (customer_id,) * len(roles),
        ).fetchall()
    return [
        {
            "decision_id": d,
            "seq": s,
            "kind": k,
            "created_at": c,
            "role": [r.removesuffix("_id") for r, v in zip(roles, named, strict=True) if v == customer_id],
        }
        for d, s, k, c, *named in rows
    ]


def _jsonable(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: (v.isoformat() if isinstance(v, pd.Timestamp | datetime) else v) for k, v in values.items()}


@contextmanager
def _opened(state_dir: Path, secrets: Secrets) -> Iterator[tuple[ProfileStore, CustomerHistory]]:
    """The profile store (holding the state folder's lock exclusively) and the customer history."""
    if not (state_dir / "profiles.sqlite").is_file():
        raise FileNotFoundError(f"{state_dir} is not a kycrisk state folder (no profiles.sqlite)")
    with closing(ProfileStore(state_dir / "profiles.sqlite", secrets.state_key, exclusive=True)) as profiles:
        with CustomerHistory(state_dir / "history.sqlite", Pseudonymiser(secrets.salt)) as history:
            yield profiles, history


def export_customer(state_dir: str | Path, customer_id: str, secrets: Secrets) -> dict[str, Any]:
    """What the state holds about one customer (``kycrisk privacy export``), as JSON-ready data.

    Args:
        state_dir: a stopped service's state folder.
        customer_id: the customer.
        secrets: the state's secrets.

    Returns:
        ``customer_id``; ``profile`` (decrypted, times as ISO 8601) and its ``profile_version``,
        ``screening`` (None when no profile is stored); ``quarantined`` rows; ``history``
        (``CustomerHistory.customer_rows``: device ids are pseudonyms, the raw ids are never
        stored); ``decisions`` naming the customer (``decisions_naming``); earlier ``erasures``.

    Raises:
        FileNotFoundError: not a state folder.
        serving.profiles.StateLocked: a running service holds the state.
        serving.profiles.StateKeyError: the secrets are not this state's.
    """
    state_dir = Path(state_dir)
    with _opened(state_dir, secrets) as (profiles, history):
        found = profiles.get(customer_id)
        version, profile, screening = found if found is not None else (None, None, None)
        return {
            "customer_id": customer_id,
            "exported_at": datetime.now(UTC).isoformat(),
            "profile_version": version,
            "profile": _jsonable(profile),
            "screening": screening,
            "quarantined": [
                {**q, "profile": _jsonable(q.get("profile"))}
                for q in profiles.quarantined_values(customer_id)
            ],
            "history": history.customer_rows(customer_id),
            "decisions": decisions_naming(state_dir / "decisions.sqlite", customer_id),
            "erasures": profiles.erasures(customer_id),
        }


def erase_customer(state_dir: str | Path, customer_id: str, secrets: Secrets) -> dict[str, Any]:
    """Remove a customer's personal data from every store (``kycrisk privacy erase``; module docstring).

    Args:
        state_dir: a stopped service's state folder.
        customer_id: the customer.
        secrets: the state's secrets.

    Returns:
        The erasure record: ``customer_id``, ``profile`` (the blanked columns that held a value,
        and the new ``profile_version``, None when no profile was stored), ``quarantined_rows``
        deleted, ``history`` (rows whose device pseudonym was replaced, per table) and
        ``decision_log`` (why it is unchanged).

    Raises:
        FileNotFoundError, StateLocked, StateKeyError: as ``export_customer``.
        KeyError: the state holds nothing about the customer (nothing is recorded then).
    """
    state_dir = Path(state_dir)
    with _opened(state_dir, secrets) as (profiles, history):
        found = profiles.get(customer_id)
        quarantined = profiles.quarantined(customer_id)
        held = history.customer_rows(customer_id)
        if found is None and not quarantined and not any(held.values()):
            raise KeyError(f"the state in {state_dir} holds nothing about customer {customer_id!r}")
        # history first, the profile and the erasure record last: a crash in between leaves no
        # record, and running the erasure again finishes it
        devices = history.erase_devices(customer_id)
        features = state_dir / "features.sqlite"
        rekeyed = rekey_personal_values(features, customer_id) if features.is_file() else 0
        blanked = sorted(c for c in ERASED_COLUMNS if found is not None and found[1].get(c) is not None)
        removed = {
            "customer_id": customer_id,
            "profile": {"columns": blanked},
            "quarantined_rows": len(quarantined),
            "history": {"device_pseudonyms_replaced": devices},
            "features": {"values_rekeyed": rekeyed},
            "decision_log": "unchanged: it holds only keyed pseudonyms and masks of personal values",
        }
        version = profiles.erase(customer_id, ERASED_COLUMNS, removed)
        removed["profile"]["profile_version"] = version
        return removed
