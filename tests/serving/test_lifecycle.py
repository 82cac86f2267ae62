"""The customer lifecycle state machine: every move allowed or refused, order gates, onboarding, records."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from serving import lifecycle
from serving.errors import ScorerError
from serving.lifecycle import (
    ORDER_GATES,
    TRANSITIONS,
    Actor,
    ActorKind,
    LifecycleError,
    Status,
    Transition,
    TransitionRefused,
    is_allowed,
    order_gate,
    status_for_onboarding,
    status_reason,
    transition,
)
from serving.schemas import Reason
from training.policy import ACTIONS

AT = datetime(2026, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
ACTORS = {
    ActorKind.SERVICE: Actor("service"),
    ActorKind.JOB: Actor("job", "rescreen"),
    ActorKind.ANALYST: Actor("analyst", "an-17"),
}
FROM = (None, *Status)
S, J, A = ActorKind.SERVICE, ActorKind.JOB, ActorKind.ANALYST


def _move(current, to, actor=ACTORS[S], **kw):
    args = {"reason_code": "TEST_MOVE", "actor": actor, "at": AT, "customer_id": "C-0001"} | kw
    return transition(current, to, **args)


def _name(status):
    return "no status (a new customer)" if status is None else str(status)


@pytest.mark.parametrize(("current", "to", "kind"), list(itertools.product(FROM, Status, ActorKind)))
def test_every_move_by_every_actor_is_allowed_or_refused_by_the_table(current, to, kind):
    if current == to:
        assert _move(current, to, ACTORS[kind]) is None
    elif is_allowed(current, to, kind):
        t = _move(current, to, ACTORS[kind])
        assert (t.from_status, t.to_status, t.actor, t.reason_code, t.at) == (
            current,
            to,
            ACTORS[kind],
            "TEST_MOVE",
            AT,
        )
    else:
        with pytest.raises(TransitionRefused) as err:
            _move(current, to, ACTORS[kind])
        assert f"from {_name(current)} to {to}" in str(err.value)
        assert err.value.status == 409 and err.value.field == "status"
        assert isinstance(err.value, LifecycleError) and isinstance(err.value, ScorerError)
        if to in TRANSITIONS[current]:  # the move exists, not for this actor
            assert f"not permitted to the {kind}" in str(err.value)


def _docstring_table():
    """The module docstring's drawing of the table, read back as {from: {to: {kinds}}}."""
    lines = lifecycle.__doc__.splitlines()
    head = next(i for i, line in enumerate(lines) if line.strip().startswith("from \\ to"))
    header = lines[head]
    starts = [header.index(word) for word in header.split()[3:]]  # after "from \ to"
    drawn = {}
    for line in lines[head + 1 : head + 1 + len(FROM)]:
        name = line.split()[0]
        frm = None if name == "—" else Status(name)
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        drawn[frm] = {
            to: {ActorKind({"S": "service", "J": "job", "A": "analyst"}[c]) for c in cell.split()}
            for to, cell in zip(Status, cells, strict=True)
            if cell != "."
        }
    return drawn


def test_the_module_docstring_draws_the_table_that_is_enforced():
    assert _docstring_table() == {
        frm: {to: set(kinds) for to, kinds in moves.items()} for frm, moves in TRANSITIONS.items()
    }


def test_the_table_covers_every_status_and_every_status_is_reachable():
    assert set(TRANSITIONS) == set(FROM)
    reached, frontier = set(), {None}
    while frontier:
        frontier = {to for frm in frontier for to in TRANSITIONS[frm]} - reached
        reached |= frontier
    assert reached == set(Status)
    for status in Status:  # every status but closed can be closed by an analyst
        assert (status is Status.CLOSED) == (not is_allowed(status, Status.CLOSED, A))


def test_frozen_is_left_only_by_an_analyst_and_closed_is_terminal():
    assert {to for to in Status if is_allowed(Status.FROZEN, to, A)} == {
        Status.ACTIVE,
        Status.RESTRICTED,
        Status.CLOSED,
    }
    assert not any(is_allowed(Status.FROZEN, to, kind) for to in Status for kind in (S, J))
    assert not any(is_allowed(Status.CLOSED, to, kind) for to in Status for kind in ActorKind)
    # any actor can freeze any customer who is not closed: a confirmed hit stops orders at once
    assert all(
        is_allowed(s, Status.FROZEN, kind)
        for s in Status
        if s not in (Status.FROZEN, Status.CLOSED)
        for kind in ActorKind
    )


_RANK = {"none": 0, "review": 1, "reject": 2}


def test_automated_actors_loosen_only_on_a_resubmitted_profile():
    loosening = {
        (frm, to, kind)
        for frm in Status
        for to in TRANSITIONS[frm]
        for kind in TRANSITIONS[frm][to]
        if kind != A and _RANK[order_gate(to)] < _RANK[order_gate(frm)]
    }
    assert loosening == {(Status.INFO_REQUESTED, Status.ACTIVE, S), (Status.REJECTED, Status.PENDING, S)}
    # a review ordered (pending, restricted) is cleared by a person only
    for frm in (Status.PENDING, Status.RESTRICTED):
        assert [kind for kind in ActorKind if is_allowed(frm, Status.ACTIVE, kind)] == [A]
    # a rejected customer comes back only through a re-submitted profile, to review
    assert {
        (to, kind)
        for to in Status
        for kind in ActorKind
        if is_allowed(Status.REJECTED, to, kind) and to in ("pending", "active")
    } == {(Status.PENDING, S)}


def test_a_new_customer_starts_only_from_onboardings_decision():
    starts = {to for to in TRANSITIONS[None]}
    assert starts == {status_for_onboarding(a, typo_likely=a == "ask_to_correct") for a in ACTIONS}
    assert all(kinds == {S} for kinds in TRANSITIONS[None].values())


def test_a_refusal_names_what_is_allowed():
    with pytest.raises(TransitionRefused, match="from closed to active: closed is terminal"):
        _move("closed", "active", ACTORS[A])
    with pytest.raises(
        TransitionRefused, match="from frozen to active is not permitted to the job: only analyst may make it"
    ):
        _move("frozen", "active", ACTORS[J])
    with pytest.raises(TransitionRefused, match="from no status .a new customer. to restricted"):
        _move(None, "restricted")


def test_the_typo_route_follows_the_corrected_profile():
    first = _move(
        None, status_for_onboarding("ask_to_correct", typo_likely=True), reason_code="DOC_TYPO_LIKELY"
    )
    assert first.to_status is Status.INFO_REQUESTED and first.from_status is None
    back = _move(
        first.to_status, status_for_onboarding("approve", typo_likely=False), reason_code="ONBOARD_APPROVE"
    )
    assert (back.from_status, back.to_status) == (Status.INFO_REQUESTED, Status.ACTIVE)


def test_a_noop_returns_none_but_still_checks_its_inputs():
    assert _move("frozen", "frozen", ACTORS[J]) is None
    assert _move("closed", "closed", ACTORS[S]) is None
    with pytest.raises(LifecycleError, match="reason code"):
        _move("frozen", "frozen", ACTORS[J], reason_code="")


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"reason_code": ""}, "reason_code"),
        ({"reason_code": "doc_typo"}, "reason_code"),
        ({"reason_code": "A" * 65}, "reason_code"),
        ({"reason_code": "DOC TYPO"}, "reason_code"),
        ({"reason_code": None}, "reason_code"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "C 1"}, "customer_id"),
        ({"customer_id": "C1\n"}, "customer_id"),
        ({"at": datetime(2026, 3, 1, 12, 0)}, "at"),
        ({"at": "2026-03-01T12:00:00Z"}, "at"),
        ({"actor": "service"}, "actor"),
    ],
)
def test_malformed_inputs_are_refused_naming_the_field_and_not_echoing_the_value(kw, field):
    with pytest.raises(LifecycleError) as err:
        _move("pending", "frozen", **kw)
    assert not isinstance(err.value, TransitionRefused)
    assert (
        err.value.field == field
        and err.value.status == 422
        and err.value.problems == [(field, str(err.value))]
    )
    value = next(iter(kw.values()))
    if isinstance(value, str) and value:
        assert value.strip() not in str(err.value)


def test_unknown_statuses_are_refused_naming_the_field():
    with pytest.raises(LifecycleError) as err:
        _move("dormant", "active")
    assert err.value.field == "from_status"
    with pytest.raises(LifecycleError) as err:
        _move("active", "dormant")
    assert err.value.field == "to_status"
    with pytest.raises(LifecycleError):
        order_gate("dormant")


@pytest.mark.parametrize(
    ("kind", "id_", "field"),
    [
        ("analyst", None, "actor.id"),
        ("analyst", "", "actor.id"),
        ("analyst", "jane doe", "actor.id"),
        ("job", "-x", "actor.id"),
        ("robot", None, "actor.kind"),
    ],
)
def test_actors_are_checked(kind, id_, field):
    with pytest.raises(LifecycleError) as err:
        Actor(kind, id_)
    assert err.value.field == field


def test_actors_take_their_kind_as_a_string_and_are_hashable():
    assert Actor("analyst", "an-17") == Actor(ActorKind.ANALYST, "an-17")
    assert Actor("job").kind is ActorKind.JOB and Actor("service").id is None
    assert len({Actor("service"), Actor(ActorKind.SERVICE)}) == 1


def test_a_transition_time_is_stored_in_utc():
    paris = timezone(timedelta(hours=1))
    t = _move("pending", "active", ACTORS[A], at=datetime(2026, 3, 1, 13, 30, 15, 250_000, tzinfo=paris))
    assert t.at == AT and t.at.tzinfo is UTC
    assert t.to_record()["at"] == "2026-03-01T12:30:15.250000Z"


@pytest.mark.parametrize("current", [None, Status.ACTIVE])
def test_a_transition_record_round_trips_through_json(current):
    t = _move(current, Status.FROZEN, ACTORS[S if current is None else J], reason_code="WATCHLIST_CONFIRMED")
    record = t.to_record()
    assert json.loads(json.dumps(record)) == record
    assert record == {
        "customer_id": "C-0001",
        "from_status": None if current is None else "active",
        "to_status": "frozen",
        "reason_code": "WATCHLIST_CONFIRMED",
        "actor": {"kind": "service", "id": None} if current is None else {"kind": "job", "id": "rescreen"},
        "at": "2026-03-01T12:30:15.250000Z",
    }
    assert Transition.from_record(json.loads(json.dumps(record))) == t


def test_a_record_read_back_is_checked_again():
    record = _move(None, "active").to_record()
    with pytest.raises(LifecycleError) as err:
        Transition.from_record(record | {"at": "yesterday"})
    assert err.value.field == "at"
    with pytest.raises(LifecycleError) as err:
        Transition.from_record(record | {"to_status": "dormant"})
    assert err.value.field == "to_status"


def test_order_gate_for_every_status():
    expected = {
        "pending": "review",
        "info_requested": "review",
        "active": "none",
        "restricted": "review",
        "frozen": "reject",
        "rejected": "reject",
        "closed": "reject",
    }
    assert {str(s): order_gate(s) for s in Status} == expected
    assert set(ORDER_GATES) == set(Status)


@pytest.mark.parametrize(
    ("action", "typo", "status"),
    [
        ("approve", False, Status.ACTIVE),
        ("review", False, Status.PENDING),
        ("review", True, Status.PENDING),  # the review was decided by something stronger than the typo
        ("ask_to_correct", True, Status.INFO_REQUESTED),
        ("reject", False, Status.REJECTED),
        ("reject", True, Status.REJECTED),
        ("report", False, Status.FROZEN),
    ],
)
def test_onboarding_actions_give_the_initial_status(action, typo, status):
    assert status_for_onboarding(action, typo_likely=typo) is status


def test_every_policy_action_has_an_initial_status_and_contradictions_are_refused():
    assert {a for a in ACTIONS if status_for_onboarding(a, typo_likely=True)} == set(ACTIONS)
    with pytest.raises(ValueError, match="ask_to_correct without a likely document typo"):
        status_for_onboarding("ask_to_correct", typo_likely=False)
    with pytest.raises(ValueError, match="unknown onboarding action"):
        status_for_onboarding("approve_with_conditions", typo_likely=False)


@pytest.mark.parametrize(
    ("party", "status"), [(p, s) for p in ("buyer", "seller") for s in Status if s is not Status.ACTIVE]
)
def test_the_customer_status_reason_names_party_and_status(party, status):
    reason = status_reason(party, str(status))
    gate = order_gate(status)
    assert reason["code"] == "CUSTOMER_STATUS" and reason["source"] == "rule" and reason["decisive"] is True
    assert reason["feature"] == f"{party}_status" and reason["value"] == str(status)
    assert reason["message"].startswith(f"The {party}'s customer status is {status} (")
    assert reason["message"].endswith(
        "the order is rejected." if gate == "reject" else "the order goes to manual review."
    )
    assert json.loads(json.dumps(reason)) == reason
    Reason.model_validate(reason)  # the response's reason model accepts it as it is


def test_the_customer_status_reason_shape_is_the_rule_reasons_shape():
    from training.explain import rule_reasons
    from training.policy import TierPolicy

    decision = TierPolicy(medium_threshold=0.5, high_threshold=0.9).decide(0.95, {"screen_confirmed": True})
    (rule,) = [r for r in rule_reasons(decision) if r["source"] == "rule"]
    assert set(status_reason("seller", "frozen")) == set(rule)
    assert status_reason("buyer", "restricted", decisive=False)["decisive"] is False


def test_no_status_reason_for_an_active_party_or_an_unknown_party():
    with pytest.raises(ValueError, match="gates no order"):
        status_reason("buyer", "active")
    with pytest.raises(ValueError, match="party must be one of"):
        status_reason("courier", "frozen")
