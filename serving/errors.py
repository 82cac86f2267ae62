"""Errors the Scorer raises for requests it cannot serve; the service turns them into HTTP answers."""

from __future__ import annotations

__all__ = ["IdempotencyConflict", "ModelUnavailable", "ScorerError", "UnknownCustomer"]


class ScorerError(Exception):
    """A request the Scorer cannot serve; ``field`` names the request field at fault (if any).

    ``status`` is the HTTP status the service answers with; ``problems`` lists every
    ``(field, reason)`` when there are several (e.g. the fields a retry changed).
    """

    status = 422

    def __init__(self, message: str, field: str | None = None, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.field = field
        self.problems = problems if problems is not None else ([(field, message)] if field else [])


class IdempotencyConflict(ScorerError):
    """A request reuses an id (``transaction_id``, ``event_id``, ...) with a different body (HTTP 409)."""

    status = 409


class UnknownCustomer(ScorerError):
    """An order names a buyer or seller the profile store does not know."""


class ModelUnavailable(RuntimeError):
    """No champion to serve, or its artifact failed the trusted-type review."""
