"""The service's secrets, read from configuration (environment or a secrets file), never from the state folder.

Three secrets protect the state and the decision log:

- ``KYCRISK_PII_SALT`` (required): the key of every pseudonym (the decision log's personal fields,
  the device ids of the customer history and the feature state). Text of at least 16 bytes, used
  as its UTF-8 bytes.
- ``KYCRISK_STATE_KEY`` (required): the AES-256-GCM key of personal data at rest (the profile
  store, ``serving.profiles``): 32 random bytes written as 64 hex digits or as base64.
- ``KYCRISK_DECISION_LOG_KEY`` (optional): the HMAC key of the decision log's chain (at least 16
  bytes, as the salt).

Each is read from its environment variable, else from the secrets file that
``KYCRISK_SECRETS_FILE`` names: a JSON object whose keys are those variable names (``kycrisk
secrets init FILE`` writes one with new random values). A secret kept next to the data it
protects protects nothing, so a secrets file inside the state folder is refused, and so is one
that its group or other users may read or write (it must be mode 0600 or stricter). Nothing here
ever prints or logs a secret's value (``Secrets`` hides them in its ``repr``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from serving.decision_log.keys import KEY_ENV, MIN_SECRET_BYTES, SALT_ENV

__all__ = [
    "KEY_ENV",
    "SALT_ENV",
    "SECRETS_FILE_ENV",
    "STATE_KEY_BYTES",
    "STATE_KEY_ENV",
    "Secrets",
    "SecretsError",
    "load_secrets",
    "parse_state_key",
    "read_secrets_file",
    "resolve_secrets",
    "write_secrets_file",
]

STATE_KEY_ENV = "KYCRISK_STATE_KEY"
SECRETS_FILE_ENV = "KYCRISK_SECRETS_FILE"
STATE_KEY_BYTES = 32  # AES-256
_NAMES = (SALT_ENV, STATE_KEY_ENV, KEY_ENV)
_INIT_HINT = f"create a secrets file with `kycrisk secrets init FILE` and set {SECRETS_FILE_ENV}=FILE"


class SecretsError(ValueError):
    """A secret is missing, malformed, or kept where it is not protected (the message says which and why)."""


@dataclasses.dataclass(frozen=True)
class Secrets:
    """The secrets of one state: pseudonym salt, state encryption key, optional decision-log key.

    Attributes:
        salt: the pseudonym salt (UTF-8 bytes of ``KYCRISK_PII_SALT``).
        state_key: the 32-byte AES-GCM key of personal data at rest.
        decision_log_key: the decision log's HMAC key, or ``None`` for an unkeyed log.
    """

    salt: bytes = dataclasses.field(repr=False)
    state_key: bytes = dataclasses.field(repr=False)
    decision_log_key: bytes | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_secret(self.salt, SALT_ENV)
        if len(self.state_key) != STATE_KEY_BYTES:
            raise SecretsError(f"{STATE_KEY_ENV} must be {STATE_KEY_BYTES} bytes, got {len(self.state_key)}")
        if self.decision_log_key is not None:
            _check_secret(self.decision_log_key, KEY_ENV)

    @classmethod
    def generate(cls, decision_log_key: bool = True) -> Secrets:
        """New random secrets (32 random bytes each; the salt and log key as 64 hex digits of text)."""
        return cls(
            salt=secrets.token_hex(32).encode(),
            state_key=secrets.token_bytes(STATE_KEY_BYTES),
            decision_log_key=secrets.token_hex(32).encode() if decision_log_key else None,
        )

    def as_config(self) -> dict[str, str]:
        """The secrets as the text values of their variables (what a secrets file holds)."""
        out = {SALT_ENV: self.salt.decode("utf-8"), STATE_KEY_ENV: self.state_key.hex()}
        if self.decision_log_key is not None:
            out[KEY_ENV] = self.decision_log_key.decode("utf-8")
        return out


def _check_secret(raw: bytes, name: str) -> None:
    if len(raw) < MIN_SECRET_BYTES:
        raise SecretsError(f"{name} must be at least {MIN_SECRET_BYTES} bytes (use 32 random bytes)")


def parse_state_key(text: str, where: str = STATE_KEY_ENV) -> bytes:
    """A state key written as 64 hex digits or as base64 (standard or URL-safe) of 32 bytes.

    Args:
        text: the written key.
        where: what to name in the error (the variable, or the file and key).

    Raises:
        SecretsError: the text is neither, or does not hold exactly 32 bytes.
    """
    text = text.strip()
    if len(text) == 2 * STATE_KEY_BYTES:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass  # 64 characters of base64 are not 32 bytes: reported below
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != STATE_KEY_BYTES:
        raise SecretsError(
            f"{where} must be {STATE_KEY_BYTES} random bytes written as 64 hex digits or as base64 "
            f"(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return raw


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def read_secrets_file(path: str | Path, state_dir: str | Path | None = None) -> dict[str, str]:
    """The values of a secrets file, after checking where it is and who may read it.

    Args:
        path: the JSON file (keys: ``KYCRISK_PII_SALT``, ``KYCRISK_STATE_KEY``,
            ``KYCRISK_DECISION_LOG_KEY``; values: text).
        state_dir: the state folder the secrets protect: a file inside it is refused.

    Returns:
        The values by variable name (only the names the file holds).

    Raises:
        SecretsError: missing file, inside the state folder, readable or writable by group or
            others, not a JSON object of text values, or an unknown key.
    """
    path = Path(path)
    if state_dir is not None and _inside(path, Path(state_dir)):
        raise SecretsError(
            f"secrets file {path} is inside the state folder {state_dir}: keep secrets apart from the data "
            "they protect (anyone with a copy of the state would hold its keys)"
        )
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SecretsError(f"secrets file {path} ({SECRETS_FILE_ENV}) does not exist: {_INIT_HINT}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretsError(f"secrets file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise SecretsError(
            f"secrets file {path} has mode {stat.S_IMODE(info.st_mode):04o}: its group or other users may "
            f"read or change it; make it private with `chmod 600 {path}`"
        )
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SecretsError(f"secrets file {path} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise SecretsError(f"secrets file {path} must hold a JSON object with the keys {list(_NAMES)}")
    unknown = sorted(set(values) - set(_NAMES))
    if unknown:
        raise SecretsError(f"secrets file {path} has unknown keys {unknown}: expected some of {list(_NAMES)}")
    wrong = sorted(k for k, v in values.items() if not isinstance(v, str))
    if wrong:
        raise SecretsError(f"secrets file {path}: the values of {wrong} must be JSON strings")
    return values


def write_secrets_file(
    path: str | Path, secrets_: Secrets | None = None, *, state_dir: str | Path | None = None
) -> Secrets:
    """Write a new secrets file (mode 0600), refusing to overwrite one.

    Args:
        path: the file to create (its folder is created when missing).
        secrets_: what to write; default ``Secrets.generate()`` (with a decision-log key).
        state_dir: a state folder the file must not be inside.

    Returns:
        The secrets written.

    Raises:
        SecretsError: the file exists, or lies inside ``state_dir``.
    """
    path = Path(path)
    if state_dir is not None and _inside(path, Path(state_dir)):
        raise SecretsError(f"refusing to write secrets file {path} inside the state folder {state_dir}")
    secrets_ = secrets_ or Secrets.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: never overwrite (the data a lost key encrypted is lost with it); 0600 from the start,
        # so the secrets are never readable by others, not even for a moment
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SecretsError(
            f"secrets file {path} already exists: refusing to overwrite it (the state encrypted with its key "
            "could not be read again); remove it yourself if you mean to"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(secrets_.as_config(), handle, indent=2)
        handle.write("\n")
    return secrets_


def _configured(
    state_dir: str | Path | None, environ: Mapping[str, str] | None
) -> dict[str, tuple[str, str]]:
    """The configured secrets' text by variable name, with where each came from (for error messages)."""
    env = os.environ if environ is None else environ
    file = env.get(SECRETS_FILE_ENV) or None
    from_file = read_secrets_file(file, state_dir) if file else {}
    values: dict[str, tuple[str, str]] = {}
    for name in _NAMES:
        if env.get(name):
            values[name] = (env[name], f"environment variable {name}")
        elif from_file.get(name):
            values[name] = (from_file[name], f"{name} in {file}")
    return values


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def resolve_secrets(
    state_dir: str | Path | None = None,
    *,
    salt: bytes | str | None = None,
    state_key: bytes | str | None = None,
    decision_log_key: bytes | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Secrets:
    """The secrets given explicitly, the others from configuration (``load_secrets``).

    Args:
        state_dir: the state folder the secrets protect (a secrets file inside it is refused).
        salt: the pseudonym salt (text or bytes), else ``KYCRISK_PII_SALT``.
        state_key: the state key (32 bytes, or its hex / base64 text), else ``KYCRISK_STATE_KEY``.
        decision_log_key: the decision log's HMAC key, else ``KYCRISK_DECISION_LOG_KEY`` (optional).
        environ: the environment to read (default ``os.environ``).

    Raises:
        SecretsError: as ``load_secrets``.
    """
    values = _configured(state_dir, environ)
    if salt is not None:
        values[SALT_ENV] = (_as_bytes(salt).decode("utf-8", "surrogateescape"), "the salt given")
    if state_key is not None:
        key = state_key if isinstance(state_key, bytes) else parse_state_key(state_key, "the state key given")
        values[STATE_KEY_ENV] = (key.hex(), "the state key given")
    if decision_log_key is not None:
        values[KEY_ENV] = (_as_bytes(decision_log_key).decode("utf-8", "surrogateescape"), "the key given")
    missing = [n for n in (SALT_ENV, STATE_KEY_ENV) if n not in values]
    if missing:
        raise SecretsError(
            f"{' and '.join(missing)} not set: the service needs a pseudonym salt and a state key from "
            f"the environment or a secrets file; {_INIT_HINT}"
        )
    texts = {}
    for name, (text, where) in values.items():
        raw = text.encode("utf-8", "surrogateescape")
        if name != STATE_KEY_ENV:
            _check_secret(raw, where)
        texts[name] = raw
    return Secrets(
        salt=texts[SALT_ENV],
        state_key=parse_state_key(values[STATE_KEY_ENV][0], values[STATE_KEY_ENV][1]),
        decision_log_key=texts.get(KEY_ENV),
    )


def load_secrets(state_dir: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Secrets:
    """The secrets from configuration: each variable from the environment, else from the secrets file.

    Args:
        state_dir: the state folder the secrets protect (a secrets file inside it is refused).
        environ: the environment to read (default ``os.environ``).

    Returns:
        The secrets.

    Raises:
        SecretsError: the salt or the state key is missing (naming the variables), a value is
            malformed, or the secrets file is refused (``read_secrets_file``).
    """
    return resolve_secrets(state_dir, environ=environ)
