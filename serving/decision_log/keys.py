"""The decision log's two secrets: the HMAC key of a keyed chain and the pseudonym salt.

Their environment variables, their minimum length and how they are read and checked; apart from
the records and the personal-data code because both use them (the key the chain, the salt the
pseudonyms) and ``serving.secrets_config`` names them without needing either.
"""

from __future__ import annotations

import os

KEY_ENV = "KYCRISK_DECISION_LOG_KEY"
SALT_ENV = "KYCRISK_PII_SALT"
MIN_SECRET_BYTES = 16


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
