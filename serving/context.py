"""What the Scorer's kinds of request share: the open state, the request commit, the clock, the lock, the reasons.

Orders (``serving.scorer``), onboarding (``serving.onboarding``) and account events
(``serving.events``) each change the same stores through one commit point per request
(``serving.commit``), check their times against one clock, and take one lock around the
in-memory state. ``RequestContext`` bundles those so that onboarding and account events are
collaborators of the Scorer rather than parts of it; ``answer_reasons`` turns logged reason
records into the answers' ``Reason`` objects for orders and onboarding alike.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Mapping
from typing import Any

from serving.clock import Clock
from serving.commit import RequestCommit
from serving.schemas import Reason
from serving.state import ServiceState

__all__ = ["TOP_REASONS", "RequestContext", "answer_reasons"]

log = logging.getLogger(__name__)

TOP_REASONS = 5  # model (TreeSHAP) reasons per answer, after the rule and score reasons
_REASON_FIELDS = frozenset(Reason.model_fields)  # read once: pydantic's model_fields is a slow property


def answer_reasons(reasons: list[dict[str, Any]]) -> list[Reason]:
    """Reason records (as the decision log stores them) as the answer's ``Reason`` objects."""
    return [Reason.model_validate({k: v for k, v in r.items() if k in _REASON_FIELDS}) for r in reasons]


@dataclasses.dataclass(frozen=True)
class RequestContext:
    """The state, commit, clock and lock every request handler of one Scorer works with.

    Attributes:
        state: the open stores.
        commit: claims, finishes and recovers requests across the stores.
        clock: bounds the times of requests.
        lock: held while the in-memory feature state, a profile version or the customers table
            changes (never while a model runs).
    """

    state: ServiceState
    commit: RequestCommit
    clock: Clock
    lock: threading.Lock

    def finish(self, effects: Mapping[str, Any], staged: list, outbox_id: int) -> None:
        """After the commit: the effects to the stores. A failure here loses nothing (the outbox has
        them); memory, ahead of disk, is rebuilt and the outbox re-applied."""
        try:
            self.commit.finish(effects, staged, outbox_id)
        except Exception:
            log.exception("writing a committed request to the stores failed: rebuilding from the outbox")
            self.commit.failed()
        else:
            self.commit.leave()
