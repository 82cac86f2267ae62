"""Account events and labels: applied to the feature state and the customer history, all or none, idempotently.

Split from ``serving.scorer``: an events request decides nothing (no model runs), it only checks,
claims and commits through the Scorer's ``RequestContext`` (``serving.context``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from features.online import LateEventError
from serving.commit import RequestCommit
from serving.context import RequestContext
from serving.errors import ScorerError
from serving.schemas import AccountEvent, Label

__all__ = ["apply_events"]


def apply_events(
    context: RequestContext, events: Iterable[AccountEvent | Label | Mapping[str, Any]]
) -> dict[str, int]:
    """Apply account events and labels to the feature state and the customer history: all or none.

    Every event is checked first (schema, the service clock, the state's allowed lateness for
    every account event, ids twice in the request, earlier requests with the same id), so a
    refused event refuses the request and nothing changes; then all of them are applied and
    committed in one journal write (``serving.commit``). Every accepted event is also kept in the
    customer history (the risk-tier model reads customer labels and account events that no
    order feature uses).

    Args:
        context: the Scorer's state, commit, clock and lock.
        events: the events, as models or JSON-ready mappings (``kind`` ``label`` for a label).

    Returns:
        ``{"applied": n, "ignored": m, "replayed": r}``: events that changed the feature state,
        the others (duplicates, events it does not use such as labels of customers), and among
        those the retries of events applied before with an identical body.

    Raises:
        pydantic.ValidationError: an invalid event (``events[i]...``).
        ScorerError: a refused event, its field named ``events[i].<field>``.
        IdempotencyConflict: an event id applied before with another body.
    """
    state, commit = context.state, context.commit
    parsed: list[AccountEvent | Label] = []
    seen: set[str] = set()
    for i, event in enumerate(events):
        if isinstance(event, Mapping):
            kind = event.get("kind", "account_event")
            event = (Label if kind == "label" else AccountEvent).model_validate(event)
        # a far-future event would make every later one "late": refuse the request up front
        id_field = "label_id" if isinstance(event, Label) else "event_id"
        time_field = "known_at" if isinstance(event, Label) else "occurred_at"
        context.clock.check(getattr(event, time_field), f"events[{i}].{time_field}")
        key = f"{event.kind}:{getattr(event, id_field)}"
        if key in seen:
            raise ScorerError(
                f"{id_field} {getattr(event, id_field)!r} appears twice", f"events[{i}].{id_field}"
            )
        seen.add(key)
        parsed.append(event)
    account = [(i, e) for i, e in enumerate(parsed) if isinstance(e, AccountEvent)]
    try:  # every account event, of a type the features read or not (the history keeps it)
        state.features.check_lateness((e.occurred_at for _, e in account), what="account event")
    except LateEventError as exc:
        raise ScorerError(str(exc), f"events[{account[exc.index][0]}].occurred_at") from exc
    entries = [
        commit.entry(
            f"{e.kind}:{e.label_id if isinstance(e, Label) else e.event_id}", e.model_dump(mode="json")
        )
        for e in parsed
    ]
    done = commit.claim(entries, [f"events[{i}]." for i in range(len(parsed))])
    new = [i for i in range(len(parsed)) if i not in done]
    if not new:
        return {"applied": 0, "ignored": len(done), "replayed": len(done)}
    claimed = [entries[i] for i in new]
    recs = {i: parsed[i].model_dump(exclude={"kind"}) for i in new}
    commit.enter()
    staged = []
    try:
        with context.lock:
            for i in new:
                try:
                    if isinstance(parsed[i], Label):
                        staged.append(state.features.stage_label(recs[i]))
                    else:
                        staged.append(state.features.stage_account_event(recs[i]))
                except ValueError as exc:
                    raise ScorerError(str(exc), f"events[{i}].occurred_at") from exc
        effects = RequestCommit.effects(
            account_events=[recs[i] for i in new if isinstance(parsed[i], AccountEvent)],
            labels=[recs[i] for i in new if isinstance(parsed[i], Label)],
        )
        box: list[int] = []
        state.decisions.append_many(
            [], journal=state.journal.writer([(e, None) for e in claimed], effects, box)
        )
    except BaseException:
        commit.release(claimed)
        if any(w is not None for w in staged):
            commit.failed()
        else:
            commit.leave()
        raise
    commit.release(claimed)
    context.finish(effects, staged, box[0])
    applied = sum(w is not None for w in staged)
    return {"applied": applied, "ignored": len(parsed) - applied, "replayed": len(done)}
