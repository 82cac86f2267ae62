"""Personal data in the decision log: pseudonyms, masks, request minimisation and leak checks.

Its own module rather than part of ``serving.privacy``: that module works on a stopped service's
state (pandas, the profile store, the feature state) and its ``Pseudonymiser`` pseudonymises exact
identifiers under a purpose key, while these pseudonyms normalise the value first; the log (and its
verifier) must not load the state layer.

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

import hmac
import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Literal

from features.contracts import ACCOUNT_EVENTS, CUSTOMERS, TRANSACTIONS
from serving.decision_log.canonical import _dumps, _jsonable
from serving.decision_log.keys import _secret

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
