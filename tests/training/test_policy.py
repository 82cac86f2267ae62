"""Tests of training.policy: tiers, every hard rule, thresholds from expected cost, JSON round trip."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from training.policy import FLAGS, HardRules, TierPolicy, choose_thresholds


@pytest.fixture
def policy() -> TierPolicy:
    return TierPolicy(medium_threshold=0.3, high_threshold=0.7, version="test-1")


def codes(decision) -> list[str]:
    return [r.code for r in decision.reasons]


def decisive(decision) -> list[str]:
    return [r.code for r in decision.reasons if r.decisive]


# --- score tiers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "tier", "action", "code"),
    [
        (0.1, "low", "approve", "SCORE_LOW"),
        (0.3, "medium", "review", "SCORE_MEDIUM"),  # thresholds are inclusive
        (0.5, "medium", "review", "SCORE_MEDIUM"),
        (0.7, "high", "reject", "SCORE_HIGH"),
        (0.99, "high", "reject", "SCORE_HIGH"),
    ],
)
def test_score_alone_sets_tier_and_action(policy, p, tier, action, code):
    d = policy.decide(p)
    assert (d.tier, d.action, codes(d), decisive(d)) == (tier, action, [code], [code])
    assert d.policy_version == "test-1"


def test_high_action_review(policy):
    cautious = TierPolicy(0.3, 0.7, high_action="review")
    assert (cautious.decide(0.9).tier, cautious.decide(0.9).action) == ("high", "review")


# --- hard rules -------------------------------------------------------------------------------


def test_confirmed_watchlist_match_is_high_and_reported(policy):
    for p in (0.01, 0.5, 0.95):
        d = policy.decide(p, {"screen_confirmed": True})
        assert (d.tier, d.action) == ("high", "report")
        assert "WATCHLIST_CONFIRMED" in decisive(d)


def test_possible_watchlist_match_is_at_least_medium(policy):
    d = policy.decide(0.01, {"screen_possible": True})
    assert (d.tier, d.action, decisive(d)) == ("medium", "review", ["WATCHLIST_POSSIBLE"])
    d = policy.decide(0.9, {"screen_possible": True})
    assert (d.tier, d.action) == ("high", "reject")
    assert "WATCHLIST_POSSIBLE" in codes(d) and "WATCHLIST_POSSIBLE" not in decisive(d)


def test_expired_document_is_at_least_medium(policy):
    d = policy.decide(0.01, {"doc_expired": True})
    assert (d.tier, d.action, decisive(d)) == ("medium", "review", ["DOC_EXPIRED"])


def test_invalid_document_is_at_least_medium(policy):
    d = policy.decide(0.01, {"doc_check_digit_valid": False})
    assert (d.tier, d.action, decisive(d)) == ("medium", "review", ["DOC_INVALID"])
    for not_fired in (True, None, float("nan")):
        assert policy.decide(0.01, {"doc_check_digit_valid": not_fired}).action == "approve"


def test_likely_typo_asks_to_correct_and_never_rejects(policy):
    flags = {"doc_check_digit_valid": False, "doc_typo_likely": True}
    d = policy.decide(0.01, flags)
    assert (d.tier, d.action) == ("medium", "ask_to_correct")
    assert codes(d) == ["SCORE_LOW", "DOC_TYPO_LIKELY"]  # the typo explains the failed check digit
    assert decisive(d) == ["DOC_TYPO_LIKELY"]
    for p in np.linspace(0.0, 0.69, 30):
        assert policy.decide(p, flags).tier != "high"
        assert policy.decide(p, flags).action not in ("reject", "report")


def test_typo_with_a_high_score_is_rejected_by_the_score_not_the_typo(policy):
    d = policy.decide(0.9, {"doc_check_digit_valid": False, "doc_typo_likely": True})
    assert (d.tier, d.action) == ("high", "reject")
    assert decisive(d) == ["SCORE_HIGH"]
    typo = next(r for r in d.reasons if r.code == "DOC_TYPO_LIKELY")
    assert not typo.decisive
    assert "did not cause" in typo.message


def test_typo_with_a_medium_score_goes_to_review(policy):
    d = policy.decide(0.5, {"doc_typo_likely": True})
    assert (d.tier, d.action, decisive(d)) == ("medium", "review", ["SCORE_MEDIUM"])
    assert "DOC_TYPO_LIKELY" in codes(d)


def test_every_fired_rule_is_listed_with_a_sentence(policy):
    d = policy.decide(
        0.5,
        {
            "screen_possible": True,
            "doc_expired": True,
            "doc_check_digit_valid": False,
            "screen_confirmed": False,
        },
    )
    assert codes(d) == ["SCORE_MEDIUM", "WATCHLIST_POSSIBLE", "DOC_EXPIRED", "DOC_INVALID"]
    assert all(r.message.endswith(".") and len(r.message) > 20 for r in d.reasons)
    assert json.loads(json.dumps(d.to_dict()))["reasons"][1]["code"] == "WATCHLIST_POSSIBLE"


def test_disabled_rules_are_ignored():
    off = TierPolicy(0.3, 0.7, rules=HardRules(doc_expired=False, watchlist_possible=False))
    d = off.decide(0.01, {"doc_expired": True, "screen_possible": True})
    assert (d.tier, d.action, codes(d)) == ("low", "approve", ["SCORE_LOW"])


def test_bad_inputs_raise(policy):
    with pytest.raises(ValueError, match="unknown flag"):
        policy.decide(0.1, {"screen_confirmd": True})
    with pytest.raises(ValueError, match="NaN"):
        policy.decide(float("nan"))
    with pytest.raises(ValueError, match="above high_threshold"):
        TierPolicy(0.8, 0.7)
    with pytest.raises(ValueError, match="high_action"):
        TierPolicy(0.3, 0.7, high_action="report")


def test_decide_frame_agrees_with_decide_row_by_row(policy):
    values = {
        "screen_confirmed": [False, True],
        "screen_possible": [False, True, None],
        "doc_expired": [False, True],
        "doc_check_digit_valid": [True, False, None],
        "doc_typo_likely": [False, True, np.nan],
    }
    combos = list(itertools.product(*values.values()))
    rows = [dict(zip(values, combo, strict=True)) for combo in combos for _ in range(4)]
    probs = np.tile([0.05, 0.3, 0.5, 0.8], len(combos))
    flags = pd.DataFrame(rows, index=pd.RangeIndex(100, 100 + len(rows)))
    out = policy.decide_frame(probs, flags)
    assert out.index.equals(flags.index)
    for (i, row), p in zip(flags.iterrows(), probs, strict=True):
        d = policy.decide(p, row.to_dict())
        got = out.loc[i]
        assert (got["tier"], got["action"]) == (d.tier, d.action)
        assert got["reason_codes"] == "|".join(codes(d))
        assert got["decisive_codes"] == "|".join(decisive(d))


def test_decide_frame_missing_columns_mean_not_checked(policy):
    out = policy.decide_frame([0.1, 0.5], pd.DataFrame({"doc_expired": [True, False], "other": [1, 2]}))
    assert out["tier"].tolist() == ["medium", "medium"]
    assert out["reason_codes"].tolist() == ["SCORE_LOW|DOC_EXPIRED", "SCORE_MEDIUM"]
    assert set(FLAGS) >= {"doc_expired"}


# --- persistence ------------------------------------------------------------------------------


def test_policy_json_round_trip(policy):
    custom = TierPolicy(
        0.123456789,
        float(np.nextafter(1.0, 2.0)),
        review_cost=12.5,
        review_capacity=0.03,
        rules=HardRules(doc_invalid=False),
        version="2026-05-01.1",
        summary={"n": 10, "expected_cost": 12.0},
    )
    for p in (policy, custom):
        back = TierPolicy.from_json(p.to_json())
        assert back == p
        assert back.digest() == p.digest()
        for prob in (0.0, 0.2, 0.3, 0.6, 0.7, 1.0):
            assert back.decide(prob, {"doc_check_digit_valid": False}) == p.decide(
                prob, {"doc_check_digit_valid": False}
            )
    data = policy.to_dict()
    assert data["kind"] == "kycrisk.tier_policy" and data["version"] == "test-1"
    with pytest.raises(ValueError, match="unknown tier-policy field"):
        TierPolicy.from_dict(data | {"colour": "red"})
    with pytest.raises(ValueError, match="schema"):
        TierPolicy.from_dict(data | {"schema": 99})


# --- choosing thresholds ----------------------------------------------------------------------


@pytest.fixture
def obvious():
    """100 entities: 10 sure frauds, 10 coin flips, 80 clearly good; all orders of 100 but the frauds."""
    scores = np.r_[np.full(10, 0.9), np.full(10, 0.5), np.full(80, 0.1)]
    y = np.r_[np.ones(10), np.tile([1, 0], 5), np.zeros(80)]
    amounts = np.r_[np.full(10, 1000.0), np.full(90, 100.0)]
    return scores, y, amounts


def test_obvious_optimum(obvious):
    scores, y, amounts = obvious
    # Coin flips: reviewing costs 10 x 10 = 100, approving 5 x 100 = 500, rejecting 5 x (25 + 10) = 175.
    policy = choose_thresholds(scores, y, amounts, review_cost=10.0, review_capacity=0.2, version="v-test")
    assert (policy.medium_threshold, policy.high_threshold) == (0.5, 0.9)
    assert policy.summary["expected_cost"] == pytest.approx(100.0)
    assert policy.summary["approve_all_cost"] == pytest.approx(10 * 1000 + 5 * 100)
    assert policy.summary["medium_share"] == pytest.approx(0.1)
    assert policy.version == "v-test"
    tiers = policy.decide_frame(scores)["tier"]
    assert tiers.value_counts().to_dict() == {"low": 80, "medium": 10, "high": 10}


def test_capacity_constraint_binds(obvious):
    scores, y, amounts = obvious
    # Only 5 reviews: the 10 tied coin flips cannot be split, so rejecting them (175) beats approving (500).
    policy = choose_thresholds(scores, y, amounts, review_cost=10.0, review_capacity=0.05)
    assert policy.summary["medium_share"] <= 0.05
    assert policy.high_threshold == 0.5 and policy.medium_threshold == 0.5
    assert policy.summary["expected_cost"] == pytest.approx(175.0)


def test_forced_reviews_use_capacity_and_can_exceed_it(obvious):
    scores, y, amounts = obvious
    forced = np.zeros(100, dtype=bool)
    forced[-1] = True  # a possible watchlist match among the good ones
    policy = choose_thresholds(scores, y, amounts, 10.0, review_capacity=0.1, forced_review=forced)
    assert policy.high_threshold == 0.5  # 10 coin-flip reviews + 1 forced would exceed 10
    assert policy.summary["medium_share"] == pytest.approx(0.01)
    assert policy.summary["expected_cost"] == pytest.approx(175.0 + 10.0)
    with pytest.raises(ValueError, match="above the capacity"):
        choose_thresholds(scores, y, amounts, 10.0, review_capacity=0.005, forced_review=forced)


def test_no_fraud_means_approve_everything():
    scores = np.linspace(0, 1, 50)
    policy = choose_thresholds(scores, np.zeros(50), np.full(50, 100.0), 10.0, 0.1)
    assert policy.medium_threshold > 1.0 and policy.high_threshold > 1.0
    assert (policy.decide_frame(scores)["action"] == "approve").all()
    assert json.loads(policy.to_json())["medium_threshold"] == policy.medium_threshold


def test_choice_matches_brute_force_on_random_data():
    rng = np.random.default_rng(7)
    n = 120
    y = (rng.random(n) < 0.15).astype(float)
    scores = np.round(np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1), 2)  # rounded: ties on purpose
    amounts = rng.gamma(2.0, 60.0, n)
    policy = choose_thresholds(
        scores, y, amounts, review_cost=15.0, review_capacity=0.1, reject_cost=20.0, reject_margin=0.1
    )

    def cost(t_m, t_h):
        high, medium = scores >= t_h, (scores >= t_m) & (scores < t_h)
        low = ~high & ~medium
        total = (
            (((1 - y) * (20.0 + 0.1 * amounts))[high]).sum() + 15.0 * medium.sum() + (y * amounts)[low].sum()
        )
        return total, medium.mean()

    grid = np.r_[np.unique(scores), 2.0]
    best = min(
        c for t_m in grid for t_h in grid if t_m <= t_h for c, share in [cost(t_m, t_h)] if share <= 0.1
    )
    got, share = cost(policy.medium_threshold, policy.high_threshold)
    assert got == pytest.approx(best)
    assert share <= 0.1
    assert policy.summary["expected_cost"] == pytest.approx(best, abs=1e-5)
