"""The policy's score and hard-rule reasons in the shape of model reasons (watchlist hits name the entry).

Kept apart from the TreeSHAP reasons (``training.explain.treeshap``): these come from the tier
policy's decision, not from the model, and need neither LightGBM nor the reason catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from features.assemble import screening_sentence
from training.explain.reasons import INCREASES, json_value
from training.policy import _RULES  # the rule table: code -> (flag, fires on, tier, action)

__all__ = ["rule_reasons"]


def rule_reasons(decision: Any, raw_inputs: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The policy's score and hard-rule reasons in the shape of model reasons.

    A watchlist reason names the matched entry when ``raw_inputs`` has the screening output
    (``screen_entry_id``, ``screen_list_type``, ``screen_score``, ``screen_dob_match``,
    ``screen_country_match``; prefixed ``buyer_`` / ``seller_`` for an order, bare for a
    customer): "The buyer's name matches sanctions list entry WL-00123 (score 93; birth date
    matches)." is appended to the policy's sentence.

    Args:
        decision: a ``training.policy.Decision``.
        raw_inputs: the screening output and the rule flags, optional.

    Returns:
        One reason dict per ``decision.reasons`` entry, in their order: ``source`` is ``score``
        for ``SCORE_*`` codes and ``rule`` otherwise; ``feature`` is the flag the rule reads
        (the matched entry's id key for watchlist rules with a known entry), ``value`` its value.
    """
    raw = raw_inputs if raw_inputs is not None else {}
    out = []
    for reason in decision.reasons:
        code, message = reason.code, reason.message
        if code.startswith("SCORE_"):
            out.append(
                {
                    "code": code,
                    "source": "score",
                    "feature": None,
                    "value": json_value(getattr(decision, "probability", None)),
                    "contribution": None,
                    "direction": None,
                    "message": message,
                    "features": [],
                    "decisive": bool(reason.decisive),
                }
            )
            continue
        flag = _RULES[code][0] if code in _RULES else None
        feature, value = flag, json_value(raw.get(flag)) if flag else None
        if code.startswith("WATCHLIST_"):
            hits = []
            for prefix in ("", "buyer_", "seller_"):
                sentence = screening_sentence(prefix, raw)
                if sentence is not None:
                    hits.append(sentence)
                    if feature == flag:
                        feature, value = (
                            prefix + "screen_entry_id",
                            json_value(raw[prefix + "screen_entry_id"]),
                        )
            if hits:
                message = f"{message.rstrip()} " + " ".join(h[0].upper() + h[1:] + "." for h in hits)
        out.append(
            {
                "code": code,
                "source": "rule",
                "feature": feature,
                "value": value,
                "contribution": None,
                "direction": INCREASES,
                "message": message,
                "features": [],
                "decisive": bool(reason.decisive),
            }
        )
    return out
