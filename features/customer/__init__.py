"""The customer risk-tier dataset: point-in-time customer snapshots, their behaviour and the model frame.

The second model scores customers, not orders: at onboarding and then as behaviour accumulates,
each customer gets a risk tier (low: approve; medium: manual review or ask for documents; high:
reject or report). One training row is a *snapshot* ``(customer_id, as_of)``:

1. ``snapshot_times``: each customer right after onboarding (``onboarded_at + 1 µs``, no
   behaviour yet) and then at regular dates while the account exists;
2. ``customer_behaviour``: the customer's behaviour before ``as_of`` as buyer and as seller
   (volumes, counterparties, countries, goods risk, known bad labels, account events, links to
   other customers), vectorised over all snapshots;
3. ``screen_snapshots`` and ``customer_frame``: KYC profile columns (prefixed ``customer_``, for
   ``features.profile.PartyProfileFeatures(party="customer", time_column="as_of")`` inside the
   model's Pipeline), role, behaviour and watchlist screening as of the snapshot;
4. the targets (bad customer, PEP or KYC refresh) and the generator's ground truth are training's
   concern: ``training.customer_targets``.

Point in time. A snapshot at ``as_of`` sees only events with ``occurred_at < as_of`` and labels
with ``known_at < as_of`` (strictly before, as in ``features.definitions``); a finite window
``w`` covers ``(as_of - w, as_of)``, open at both ends; ``all`` covers all earlier history in the
frames given. Changing the future never changes a snapshot. The profile itself (the
``customers`` table) is taken as recorded; the KYC transformer handles review dates after the
event.

One function for batch and serving. ``customer_behaviour`` is a pure function of the frames it
receives, computed with sorts and ``np.searchsorted`` over whole tables (no loop per snapshot or
customer). Called for one snapshot with the rows ``customer_rows`` selects (the customer's own
orders, account events and labels, plus the rows that define its links: other customers on the
same devices or sharing a phone, address or e-mail) it returns exactly the batch row: counts
are integers and USD sums are accumulated in integer units of 1/100 cent, so no rounding depends
on which other rows were in the batch. Without the link rows, only the link columns differ.

Modules: ``base`` (constants, the point-in-time index), ``behaviour`` (``BEHAVIOURS``: each
column with its meaning and reason; ``customer_behaviour``), ``snapshots`` (snapshot times, the
rows of one customer, screening, the model frame, the policy flags).
"""

from __future__ import annotations

from features.customer.base import BAD_CUSTOMER_LABELS, ID_COLUMNS, PARTY, TIME_COLUMN
from features.customer.behaviour import (
    BEHAVIOUR_COLUMNS,
    BEHAVIOURS,
    CUSTOMER_CODES,
    Behaviour,
    customer_behaviour,
)
from features.customer.snapshots import (
    customer_flags,
    customer_frame,
    customer_rows,
    profile_links,
    screen_snapshots,
    snapshot_times,
)

__all__ = [
    "BAD_CUSTOMER_LABELS",
    "BEHAVIOURS",
    "BEHAVIOUR_COLUMNS",
    "CUSTOMER_CODES",
    "ID_COLUMNS",
    "PARTY",
    "TIME_COLUMN",
    "Behaviour",
    "customer_behaviour",
    "customer_flags",
    "customer_frame",
    "customer_rows",
    "profile_links",
    "screen_snapshots",
    "snapshot_times",
]
