"""Per-decision explanations: exact TreeSHAP contributions and plain-language reason codes.

Three modules, one job each:

- ``training.explain.reasons``: the reason catalogue (``REASON_CATALOGUE``) and the lookup from a
  feature name to the reason code and sentence declared next to the feature in ``features``
  (``describe_feature``, ``message_for``); codes are stable (they depend on the feature name,
  never on its value);
- ``training.explain.treeshap``: LightGBM's exact TreeSHAP contributions in log-odds
  (``contributions``), the top reasons of a row grouped by code (``reasons_for_row``) and the
  one-request fast path (``Explainer``);
- ``training.explain.rule_reasons``: the tier policy's score and hard-rule reasons in the same
  shape (``rule_reasons``).

Every reason is a dict of one shape, shared by model, hard-rule and score reasons:

- ``code``: reason code (``REASON_CATALOGUE`` for model reasons, the policy's codes otherwise);
- ``source``: ``model`` (a feature contribution), ``rule`` (a hard rule that fired) or
  ``score`` (the score-tier reason of the policy);
- ``feature``: the feature (model reasons: the group member shown) or flag (rules), or None;
- ``value``: its value as JSON-ready Python (None when missing);
- ``contribution``: the group's summed contribution in log-odds (None for rule and score reasons);
- ``direction``: ``increases risk`` or ``decreases risk`` (None for score reasons);
- ``message``: one plain-language sentence or phrase;
- ``features``: the features grouped into this reason (model reasons), else ``[]``;
- ``decisive``: for rule and score reasons, whether it produced the final tier and action (the
  policy's ``Reason.decisive``); None for model reasons, which explain the score reason.
"""

from __future__ import annotations

from features.assemble import screening_sentence
from training.explain.reasons import REASON_CATALOGUE, SNAPSHOT_CONTEXT, describe_feature, message_for
from training.explain.rule_reasons import rule_reasons
from training.explain.treeshap import (
    BIAS_COLUMN,
    DIRECTIONS,
    Explainer,
    booster_of,
    contributions,
    reasons_for_row,
)

__all__ = [
    "BIAS_COLUMN",
    "DIRECTIONS",
    "REASON_CATALOGUE",
    "SNAPSHOT_CONTEXT",
    "Explainer",
    "booster_of",
    "contributions",
    "describe_feature",
    "message_for",
    "reasons_for_row",
    "rule_reasons",
    "screening_sentence",
]
