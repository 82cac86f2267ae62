"""Online engine: the same feature definitions for one new event, from state kept in sqlite.

The package holds one job per module, split where the code is read and changed apart:

- ``events``: what an event must be to enter the state (timestamps, the contract's bounds) and the
  event log merged from tables;
- ``state``: the in-memory windows (per-entity logs with exact prefix sums) and the kernels that
  evaluate each aggregation on them;
- ``store``: ``OnlineFeatureStore``: the API, write-through to sqlite, staged writes, pruning;
- ``schema``: the sqlite tables and how records are stored in them;
- ``recovery``: rebuilding memory from sqlite, quarantining rows that cannot be applied;
- ``seeding``: ``bulk_apply``'s build of a whole history at once, row for row the one-by-one state;
- ``erasure``: re-keying a customer's personal values in a closed state file.

Each module's docstring says how its part works. Names with a leading underscore are private to
the package: its modules share them, nothing outside imports them. This module exposes the public
API the service, the benchmarks and the tests use.
"""

from features.online.events import event_log, timestamp_us
from features.online.store import LateEventError, OnlineFeatureStore, StagedWrite

__all__ = ["LateEventError", "OnlineFeatureStore", "StagedWrite", "event_log", "timestamp_us"]
