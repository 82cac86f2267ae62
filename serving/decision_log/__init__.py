"""The tamper-evident decision log: every scoring decision, append-only and hash-chained, in sqlite.

The package holds one job per module, split along the seams of what people change and read apart:

- ``records``: what a decision record is, the canonical bytes its hash covers, the chain (SHA-256 or
  HMAC-SHA256) and the header's genesis hash; the file format an independent auditor re-implements.
- ``canonical``: the exact JSON (NaN, infinities, datetimes as tags) the records and other state use.
- ``personal``: pseudonyms, masks and request minimisation, so that no raw personal data is logged.
- ``keys``: the HMAC key and pseudonym salt (their environment variables and checks).
- ``schema``: the sqlite tables and triggers, opening the file and reading its header.
- ``anchors``: the log's head anchored outside it (the anchor type and the anchors file).
- ``store``: ``DecisionLog``: appending (group commit, batches, journal writes), anchoring, reading.
- ``verify``: ``verify_path`` and its verdicts (``VerifyReport``, ``Problem``).

Each module's docstring documents its part of the format. Names with a leading underscore are
private to the package: its modules share them, nothing outside imports them. This module exposes
the public API that the service, the command line and auditors' scripts use.

What is stored
    One row per decision (table ``decisions``): ``seq`` (1, 2, 3, ... without gaps),
    ``decision_id``, ``kind``, ``created_at``, the minimised ``request``, the exact model input
    ``features``, ``models`` (``{name: version}``), ``feature_set``, ``policy_version``, ``score``,
    ``tier``, ``action``, ``reasons``, ``prev_hash`` and ``hash`` (see ``records``). Together with the
    model registry that is enough to verify a decision and to replay it months later.
"""

from serving.decision_log.anchors import ANCHORS_ENV, DEFAULT_ANCHOR_EVERY, Anchor, read_anchors
from serving.decision_log.keys import KEY_ENV, SALT_ENV, secret_from_env
from serving.decision_log.personal import DEFAULT_PII_FIELDS
from serving.decision_log.records import DecisionInput, DecisionRecord, genesis_hash, new_decision_id
from serving.decision_log.store import DecisionLog, DuplicateDecisionError, Receipt
from serving.decision_log.verify import Problem, VerifyReport, verify_path

__all__ = [
    "ANCHORS_ENV",
    "DEFAULT_ANCHOR_EVERY",
    "DEFAULT_PII_FIELDS",
    "KEY_ENV",
    "SALT_ENV",
    "Anchor",
    "DecisionInput",
    "DecisionLog",
    "DecisionRecord",
    "DuplicateDecisionError",
    "Problem",
    "Receipt",
    "VerifyReport",
    "genesis_hash",
    "new_decision_id",
    "read_anchors",
    "secret_from_env",
    "verify_path",
]
