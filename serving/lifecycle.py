"""The customer lifecycle: statuses, who may move a customer between them, and what a status does to orders.

A pure module (no store, no clock, no I/O): ``transition`` checks one move against the table
below and returns the ``Transition`` to record; the service (later) persists it through the
request's commit and appends ``Transition.to_record()`` to the decision log.

Statuses (``Status``): ``pending`` (onboarding under manual review), ``info_requested`` (asked to
correct a document number or to send documents), ``active``, ``restricted`` (orders go to
review), ``frozen`` (confirmed sanctions match or report filed: no orders), ``rejected``
(onboarding refused), ``closed`` (relationship ended; terminal).

Actors (``ActorKind``): ``service`` (onboarding and re-submitted profiles, deciding by the tier
policy), ``job`` (continuous screening and other scheduled work), ``analyst`` (a person, by id).

The allowed moves (``TRANSITIONS``; S = service, J = job, A = analyst; "—" = a new customer)::

    from \\ to      pending  info_req  active  restricted  frozen  rejected  closed
    —               S        S         S       .           S       S         .
    pending         .        A         A       A           S J A   S A       A
    info_requested  S A      .         S A     A           S J A   S A       A
    active          S        S A       .       S J A       S J A   S         A
    restricted      .        A         A       .           S J A   S         A
    frozen          .        .         A       A           .       .         A
    rejected        S        .         .       .           S J A   .         A
    closed          .        .         .       .           .       .         .

    (new) ─S─> pending | info_requested | active | rejected | frozen
    pending, info_requested ──A──> active ──S J A──> restricted ──A──> active
    any but closed ──S J A──> frozen ──A only──> active | restricted | closed
    rejected ──S (re-submitted profile)──> pending ──A──> active
    closed: terminal (a returning customer is a new customer id)

The rules behind the table, as a compliance team would hold them:

- Automated actors (service, job) only ever tighten, with exactly two exceptions that loosen:
  ``info_requested → active`` by the service (the corrected profile came back and the tier policy
  approves it: no person had asked for a review, only for a correct number) and
  ``rejected → pending`` by the service (a re-submitted profile is reviewed by a person, never
  approved automatically). Every other loosening is an analyst's decision.
- Leaving ``pending`` or ``restricted`` for ``active`` needs an analyst: a review was ordered, and
  a re-submitted profile (a name spelt differently, say) must not clear a watchlist question by
  itself. For the same reason the service never moves ``restricted`` to ``info_requested``, from
  where the next submission could reach ``active`` without a person.
- ``frozen`` is left only by an analyst and only to ``active``, ``restricted`` or ``closed``: a
  sanctions freeze is lifted by a person who cleared the match, never by a job (an entry removed
  from a list raises an alert instead) and never by a re-submitted profile.
- ``closed`` is terminal and is reached only by an analyst: ending a relationship has obligations
  (notice, record keeping) that a model decision does not meet. The service stops orders with
  ``rejected`` instead and leaves the closing to a person.
- A new customer starts from onboarding's decision only (``status_for_onboarding``); nobody
  creates a customer as ``restricted`` or ``closed``.

A move to the status the customer already has is a no-op: ``transition`` returns None (nothing to
record; a re-submission with the same decision or a second confirmed hit on a frozen customer is
routine, its evidence is in that request's own decision record), after the same checks of the
reason code, actor, time and customer id as any move, so a caller's mistake shows whatever the
current status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from features.assemble import PARTIES
from features.contracts import ID_PATTERN, MAX_ID_LENGTH
from serving.errors import ScorerError
from training.explain.reasons import INCREASES
from training.policy import ACTIONS

__all__ = [
    "ORDER_GATES",
    "REASON_CODE_PATTERN",
    "STATUS_REASON_CODE",
    "TRANSITIONS",
    "Actor",
    "ActorKind",
    "LifecycleError",
    "Status",
    "Transition",
    "TransitionRefused",
    "is_allowed",
    "order_gate",
    "status_for_onboarding",
    "status_reason",
    "transition",
]


class Status(StrEnum):
    """A customer's status (see the module docstring for what each one means)."""

    PENDING = "pending"
    INFO_REQUESTED = "info_requested"
    ACTIVE = "active"
    RESTRICTED = "restricted"
    FROZEN = "frozen"
    REJECTED = "rejected"
    CLOSED = "closed"


class ActorKind(StrEnum):
    """Who moves a customer: the service, a scheduled job, or an analyst (a person, by id)."""

    SERVICE = "service"
    JOB = "job"
    ANALYST = "analyst"


class LifecycleError(ScorerError):
    """A status change the service cannot make: bad reason code, actor, time, customer id or status (HTTP 422)."""


class TransitionRefused(LifecycleError):
    """A move the lifecycle does not allow from the current status, or not to this actor (HTTP 409)."""

    status = 409


_S, _J, _A = ActorKind.SERVICE, ActorKind.JOB, ActorKind.ANALYST
_TIGHTEN = frozenset({_S, _J, _A})  # any actor may freeze: a confirmed hit must stop orders at once


def _table(rows: Mapping[Status | None, Mapping[Status, frozenset[ActorKind]]]) -> Mapping:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in rows.items()})


# The one table of allowed moves: from status (None: a new customer) -> to status -> the actor
# kinds that may make the move. The module docstring draws it and gives the reasons.
TRANSITIONS: Mapping[Status | None, Mapping[Status, frozenset[ActorKind]]] = _table(
    {
        # onboarding's decision (status_for_onboarding); restricted and closed are never a start
        None: {
            Status.PENDING: frozenset({_S}),
            Status.INFO_REQUESTED: frozenset({_S}),
            Status.ACTIVE: frozenset({_S}),
            Status.REJECTED: frozenset({_S}),
            Status.FROZEN: frozenset({_S}),
        },
        # under review: only the reviewer clears it; the service may only decide something stronger
        Status.PENDING: {
            Status.INFO_REQUESTED: frozenset({_A}),
            Status.ACTIVE: frozenset({_A}),
            Status.RESTRICTED: frozenset({_A}),
            Status.FROZEN: _TIGHTEN,
            Status.REJECTED: frozenset({_S, _A}),
            Status.CLOSED: frozenset({_A}),
        },
        # waiting for a corrected number: the corrected profile's new decision is followed
        Status.INFO_REQUESTED: {
            Status.PENDING: frozenset({_S, _A}),
            Status.ACTIVE: frozenset({_S, _A}),
            Status.RESTRICTED: frozenset({_A}),
            Status.FROZEN: _TIGHTEN,
            Status.REJECTED: frozenset({_S, _A}),
            Status.CLOSED: frozenset({_A}),
        },
        # a changed profile is decided again (review, typo, refusal); re-screening may restrict
        Status.ACTIVE: {
            Status.PENDING: frozenset({_S}),
            Status.INFO_REQUESTED: frozenset({_S, _A}),
            Status.RESTRICTED: _TIGHTEN,
            Status.FROZEN: _TIGHTEN,
            Status.REJECTED: frozenset({_S}),
            Status.CLOSED: frozenset({_A}),
        },
        # a restriction is lifted by a person; the service only tightens it further
        Status.RESTRICTED: {
            Status.INFO_REQUESTED: frozenset({_A}),
            Status.ACTIVE: frozenset({_A}),
            Status.FROZEN: _TIGHTEN,
            Status.REJECTED: frozenset({_S}),
            Status.CLOSED: frozenset({_A}),
        },
        # a freeze is lifted by an analyst only, never by a job or a re-submitted profile
        Status.FROZEN: {
            Status.ACTIVE: frozenset({_A}),
            Status.RESTRICTED: frozenset({_A}),
            Status.CLOSED: frozenset({_A}),
        },
        # a re-submitted profile goes to a person's review, never straight to active
        Status.REJECTED: {
            Status.PENDING: frozenset({_S}),
            Status.FROZEN: _TIGHTEN,
            Status.CLOSED: frozenset({_A}),
        },
        Status.CLOSED: {},
    }
)

# What an order involving a party in each status gets: rejected, sent to review, or nothing.
ORDER_GATES: Mapping[Status, str] = MappingProxyType(
    {
        Status.PENDING: "review",
        Status.INFO_REQUESTED: "review",
        Status.ACTIVE: "none",
        Status.RESTRICTED: "review",
        Status.FROZEN: "reject",
        Status.REJECTED: "reject",
        Status.CLOSED: "reject",
    }
)
# The status in a reason sentence: "the buyer's customer status is frozen (...)".
_MEANINGS = {
    Status.PENDING: "onboarding under review",
    Status.INFO_REQUESTED: "asked to correct a document number or to send documents",
    Status.ACTIVE: "active",
    Status.RESTRICTED: "restricted: orders go to review",
    Status.FROZEN: "confirmed sanctions match or report filed",
    Status.REJECTED: "onboarding refused",
    Status.CLOSED: "relationship closed",
}
_CONSEQUENCES = {"reject": "the order is rejected", "review": "the order goes to manual review"}
# Onboarding's action (training.policy.ACTIONS) -> the status it gives.
_ONBOARDING = {
    "approve": Status.ACTIVE,
    "ask_to_correct": Status.INFO_REQUESTED,
    "review": Status.PENDING,
    "reject": Status.REJECTED,
    "report": Status.FROZEN,
}
if set(_ONBOARDING) != set(ACTIONS):  # the policy's actions are the one list; fail at import on drift
    raise RuntimeError(
        f"serving.lifecycle maps actions {sorted(_ONBOARDING)}, the policy has {sorted(ACTIONS)}"
    )

STATUS_REASON_CODE = "CUSTOMER_STATUS"
# Reason codes of transitions: the policy's style (WATCHLIST_CONFIRMED, DOC_TYPO_LIKELY, ...).
REASON_CODE_PATTERN = r"[A-Z][A-Z0-9_]{0,63}"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the decision log's time format


def _check_id(value: Any, field: str, what: str) -> None:
    if not isinstance(value, str) or re.fullmatch(ID_PATTERN, value) is None:
        raise LifecycleError(
            f"{what} must be an identifier: 1-{MAX_ID_LENGTH} letters, digits or _ . : @ # / + = -, starting with a "
            "letter or digit",
            field,
        )


def _status(value: Any, field: str) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise LifecycleError(f"unknown customer status; one of {', '.join(Status)}", field) from None


def _name(status: Status | None) -> str:
    return "no status (a new customer)" if status is None else str(status)


@dataclass(frozen=True)
class Actor:
    """Who makes a move: ``kind`` (service, job, analyst) and ``id`` (required for an analyst).

    A job may carry its name as ``id`` (e.g. ``rescreen``); every id given matches
    ``features.contracts.ID_PATTERN``, so it can be logged and compared byte for byte.
    """

    kind: ActorKind
    id: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", ActorKind(self.kind))
        except ValueError:
            raise LifecycleError(f"unknown actor kind; one of {', '.join(ActorKind)}", "actor.kind") from None
        if self.kind is ActorKind.ANALYST and self.id is None:
            raise LifecycleError("an analyst's move needs the analyst's id", "actor.id")
        if self.id is not None:
            _check_id(self.id, "actor.id", "the actor id")

    def to_record(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "id": self.id}


@dataclass(frozen=True)
class Transition:
    """One status change: who moved which customer from what to what, why and when (UTC).

    ``from_status`` is None for a new customer's first status. Built by ``transition``, which
    checks the move against ``TRANSITIONS``; the fields are checked here too, so a record read
    back (``from_record``) is as well-formed as one just made.
    """

    customer_id: str
    from_status: Status | None
    to_status: Status
    reason_code: str
    actor: Actor
    at: datetime

    def __post_init__(self) -> None:
        _check_id(self.customer_id, "customer_id", "the customer id")
        if self.from_status is not None:
            object.__setattr__(self, "from_status", _status(self.from_status, "from_status"))
        object.__setattr__(self, "to_status", _status(self.to_status, "to_status"))
        if (
            not isinstance(self.reason_code, str)
            or re.fullmatch(REASON_CODE_PATTERN, self.reason_code) is None
        ):
            raise LifecycleError(
                "the reason code must be 1-64 upper-case letters, digits or underscores, starting with a letter",
                "reason_code",
            )
        if not isinstance(self.actor, Actor):
            raise LifecycleError("the actor must be an Actor (kind and id)", "actor")
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            # a naive time is ambiguous in an audit record: refuse rather than guess its zone
            raise LifecycleError("the time of a transition must be a timezone-aware datetime", "at")
        object.__setattr__(self, "at", self.at.astimezone(UTC))

    def to_record(self) -> dict[str, Any]:
        """The transition as JSON-ready values (statuses as strings, time in the decision log's format)."""
        return {
            "customer_id": self.customer_id,
            "from_status": None if self.from_status is None else str(self.from_status),
            "to_status": str(self.to_status),
            "reason_code": self.reason_code,
            "actor": self.actor.to_record(),
            "at": self.at.strftime(_TIME_FORMAT),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Transition:
        """The transition ``to_record`` gave (its fields checked again, not the move)."""
        try:
            at = datetime.fromisoformat(record["at"])
        except (TypeError, ValueError):
            raise LifecycleError("the time of a transition must be an ISO 8601 time", "at") from None
        actor = record["actor"]
        return cls(
            customer_id=record["customer_id"],
            from_status=record["from_status"],
            to_status=record["to_status"],
            reason_code=record["reason_code"],
            actor=Actor(actor["kind"], actor["id"]),
            at=at,
        )


def is_allowed(current: Status | None, to: Status, kind: ActorKind) -> bool:
    """Whether ``TRANSITIONS`` lets an actor of ``kind`` move a customer from ``current`` to ``to``."""
    return kind in TRANSITIONS.get(current, {}).get(to, frozenset())


def transition(
    current: Status | str | None,
    to: Status | str,
    *,
    reason_code: str,
    actor: Actor,
    at: datetime,
    customer_id: str,
) -> Transition | None:
    """Check one move and return the ``Transition`` to record, or None when ``to`` is ``current``.

    Args:
        current: the customer's status, None for a new customer.
        to: the status to move to.
        reason_code: why (e.g. ``WATCHLIST_CONFIRMED``, ``DOC_TYPO_LIKELY``): ``REASON_CODE_PATTERN``.
        actor: who moves it.
        at: when, timezone-aware (stored in UTC).
        customer_id: the customer.

    Raises:
        LifecycleError: a malformed reason code, actor, time, customer id or status (checked on a
            no-op too).
        TransitionRefused: the table has no such move, or not for this actor; the message names
            both statuses and the reason.
    """
    record = Transition(customer_id, current, to, reason_code, actor, at)
    frm, dest, kind = record.from_status, record.to_status, record.actor.kind
    if frm == dest:
        return None
    allowed = TRANSITIONS[frm]
    if dest not in allowed:
        why = (
            "closed is terminal"
            if frm is Status.CLOSED
            else f"from {_name(frm)} a customer may move only to {', '.join(allowed)}"
        )
        raise TransitionRefused(
            f"refused: a customer cannot move from {_name(frm)} to {dest}: {why}", "status"
        )
    if kind not in allowed[dest]:
        who = ", ".join(k for k in ActorKind if k in allowed[dest])
        raise TransitionRefused(
            f"refused: a move from {_name(frm)} to {dest} is not permitted to the {kind}: only {who} may make it",
            "status",
        )
    return record


def order_gate(status: Status | str) -> str:
    """What an order with a party in ``status`` gets: ``reject``, ``review`` or ``none``."""
    return ORDER_GATES[_status(status, "status")]


def status_reason(party: str, status: Status | str, *, decisive: bool = True) -> dict[str, Any]:
    """The ``CUSTOMER_STATUS`` reason of an order whose ``party`` (buyer, seller) is in ``status``.

    In the shape of ``training.explain.rule_reasons``: source ``rule``, feature
    ``<party>_status``, the status as value, e.g. "The seller's customer status is frozen
    (confirmed sanctions match or report filed): the order is rejected." ``decisive`` says
    whether the status produced the order's action (a review status is not decisive when the
    model already rejects the order).

    Raises:
        ValueError: an unknown party, or ``active`` (it gates nothing, so it gives no reason).
    """
    if party not in PARTIES:
        raise ValueError(f"party must be one of {PARTIES}, got {party!r}")
    status = _status(status, "status")
    gate = ORDER_GATES[status]
    if gate == "none":
        raise ValueError(f"a party in status {status} gates no order: no {STATUS_REASON_CODE} reason")
    return {
        "code": STATUS_REASON_CODE,
        "source": "rule",
        "feature": f"{party}_status",
        "value": str(status),
        "contribution": None,
        "direction": INCREASES,
        "message": f"The {party}'s customer status is {status} ({_MEANINGS[status]}): {_CONSEQUENCES[gate]}.",
        "features": [],
        "decisive": bool(decisive),
    }


def status_for_onboarding(action: str, *, typo_likely: bool) -> Status:
    """The status onboarding's decision gives: approve → active, review → pending, ask_to_correct →
    info_requested, reject → rejected, report → frozen.

    The action decides. The tier policy asks to correct only on a likely typo that nothing
    stronger overrides (``DOC_TYPO_LIKELY``), so ``ask_to_correct`` with ``typo_likely`` false is a
    contradiction in the caller and is refused; a likely typo beside a stronger action (review for
    a medium score or a possible watchlist match, reject, report) does not soften the status: the
    decisive reason was something else, and the typo stays in the decision's reasons.

    Raises:
        ValueError: an action the policy does not have, or ``ask_to_correct`` without a likely typo.
    """
    if action not in _ONBOARDING:
        raise ValueError(f"unknown onboarding action {action!r}; one of {', '.join(ACTIONS)}")
    if action == "ask_to_correct" and not typo_likely:
        raise ValueError("ask_to_correct without a likely document typo: the tier policy never decides that")
    return _ONBOARDING[action]
