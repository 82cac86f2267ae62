"""Onboarding: screen a KYC profile, decide its risk tier and action, store the profile version, log the decision.

Split from ``serving.scorer``: onboarding reads the risk-tier model, the watchlist and the customer
history, never the fraud model, and is rare next to orders. ``Onboarding`` is the Scorer's
collaborator for it; it works on the Scorer's ``RequestContext`` (``serving.context``).

With the risk-tier champion, onboarding follows the offline snapshot path exactly
(``Onboarding.onboard_risk``): the snapshot ``as_of`` is the later of ``last_kyc_review_at`` and
``onboarded_at`` plus 1 µs; ``CustomerHistory.rows_for`` hands ``features.customer.customer_behaviour``
the rows ``customer_rows`` selects (so the behaviour equals the batch row), the watchlist is
screened as listed at ``as_of``, ``customer_frame`` builds the row, the logged Pipeline gives the
model features and P(bad), ``training.risk.decide_customers`` the tier and action, and the reasons
are the policy's score and rule reasons (watchlist and PEP reasons name the list entry), the review
rules (``PEP_EDD``, ``KYC_OUTGROWN``) and the top TreeSHAP contributions (log-odds).
``tests/serving/test_onboarding.py`` proves the same P(bad) (bit-identical), tier and action as
the batch path. Measured on the demo data (5,000 customers, 940,920 history rows; 2 shared cores
under load from other jobs): p50 80-120 ms, p99 230-280 ms per onboarding, of which history reads
~10-17 ms, ``customer_behaviour`` ~17-30 ms, screening ~3-8 ms, the frame ~5-10 ms, the Pipeline,
policy and reasons ~40 ms, and the decision-log append with its fsync. The pandas Pipeline part is
below the ~50 ms at which a dict fast path (as for orders) would pay: onboarding is rare next to
orders, and each onboarding is a new profile version, so the profile step cannot be cached.

Without the risk-tier model (none registered, or ``risk_tier="optional"`` and it failed to load)
the tier comes from the hard rules (watchlist, documents) and a simple score, the highest of the
country and industry risks, and the reasons say so (``RULES_ONLY``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.assemble import SCREEN_COLUMNS, screen_customers
from features.contracts import CUSTOMERS
from features.customer import customer_behaviour, customer_flags, customer_frame
from features.profile import PartyProfileFeatures
from features.screening import WatchlistScreener
from serving.commit import RequestCommit
from serving.context import TOP_REASONS, RequestContext, answer_reasons
from serving.decision_log import new_decision_id
from serving.errors import ModelUnavailable, ScorerError
from serving.profiles import (
    CUSTOMER_COLUMNS,
    ProfileRowError,
    ProfileStore,
    check_profile,
    check_screening,
)
from serving.profiles import as_timestamp as _timestamp
from serving.profiles import plain_value as _plain
from serving.schemas import OnboardResponse, Profile, Screening
from training import risk, tracking
from training.explain import SNAPSHOT_CONTEXT, Explainer, reasons_for_row, rule_reasons, screening_sentence
from training.names import RISK_MODEL
from training.policy import TierPolicy

__all__ = ["ONBOARD_RULES_POLICY", "CustomerTable", "Onboarding", "RiskTier", "profiles_frame"]

log = logging.getLogger(__name__)

# Onboarding without the risk-tier model: hard rules plus the highest country / industry risk.
ONBOARD_RULES_POLICY = TierPolicy(medium_threshold=0.5, high_threshold=0.9, version="onboard-rules-1")
# The profile's date and time columns, as the customers contract types them.
_PROFILE_TIMES = frozenset(c.name for c in CUSTOMERS.columns if c.kind in ("date", "timestamp"))
# Frame columns (no personal data) that make onboarding reason sentences specific.
_RAW_SNAPSHOT_COLUMNS = ("customer_nationality", "customer_residence_country", "customer_industry")


@dataclasses.dataclass(frozen=True)
class RiskTier:
    """What onboarding needs of the risk-tier champion, read once from its metadata."""

    model: tracking.LoadedModel
    policy: TierPolicy
    n_prepare: int
    feature_set: str
    review_rules: dict[str, float]
    explainer: Explainer
    columns: list[str]

    @classmethod
    def load(cls, model: tracking.LoadedModel) -> RiskTier | None:
        """The parts of a loaded risk-tier model, or None (logged) when it cannot serve onboarding."""
        try:
            meta = model.metadata
            rules = meta.get("review_rules") or {}
            return cls(
                model=model,
                policy=TierPolicy.from_dict(meta["tier_policy"]),
                n_prepare=int(meta.get("n_prepare_steps", risk.N_PREPARE_STEPS)),
                feature_set=str(meta.get("feature_set_id") or meta["feature_set"]),
                review_rules={
                    "outgrown_volume_ratio": float(
                        rules.get("outgrown_volume_ratio", risk.OUTGROWN_VOLUME_RATIO)
                    ),
                    "outgrown_min_review_age_days": float(rules.get("outgrown_min_review_age_days", 0.0)),
                },
                explainer=Explainer(risk.lgbm_of(model.pipeline)),
                columns=list(getattr(model.pipeline, "feature_names_in_", [])),
            )
        except Exception as exc:  # a broken risk-tier model must not stop order scoring
            log.warning("not onboarding with %s version %s: %s", model.name, model.version, exc)
            return None


def profiles_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Stored profiles as a ``customers`` table (contract column types) for ``features.customer``."""
    frame = pd.DataFrame(list(records), columns=list(CUSTOMER_COLUMNS))
    for column in frame.columns:
        if column in _PROFILE_TIMES:
            frame[column] = pd.to_datetime(frame[column], utc=True)
        elif column == "declared_monthly_volume_usd":
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        elif column == "twofa_enabled":
            frame[column] = frame[column].astype("boolean")
        else:
            frame[column] = frame[column].astype("str")
    return frame


class CustomerTable:
    """Every stored profile as one ``customers`` table: the universe of onboarding's profile links.

    Built from the profile store on first use and kept current as profile versions are stored
    (``put``, the request commit's way to store profiles); ``reset`` drops it after a bulk load.

    Args:
        profiles: the profile store.
        lock: the Scorer's lock (held while the table is built).
    """

    def __init__(self, profiles: ProfileStore, lock: threading.Lock):
        self.profiles = profiles
        self.lock = lock
        self._table: pd.DataFrame | None = None

    def reset(self) -> None:
        """Forget the table (rebuilt from the profile store on the next onboarding); call under the lock."""
        self._table = None

    def put(self, rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Store profile versions, skipping any that is already its customer's current profile."""
        fresh = []
        for rec, screen in rows:
            current = self.profiles.get(str(rec["customer_id"]))
            normal = {c: _timestamp(_plain(rec.get(c))) for c in CUSTOMER_COLUMNS}
            if current is None or current[1] != normal:
                fresh.append((rec, screen))
        if not fresh:
            return
        self.profiles.put_many(fresh)
        if self._table is not None:  # the profile links' universe, for onboarding
            table = self._table
            ids = {str(rec["customer_id"]) for rec, _ in fresh}
            mine = profiles_frame([dict(rec) for rec, _ in fresh])
            self._table = pd.concat(
                [table[~table["customer_id"].isin(ids).to_numpy()], mine], ignore_index=True
            )

    def with_profile(self, rec: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Every stored profile with ``rec`` as its customer's current one (the profile links' universe).

        Returns:
            ``(customers, mine)``: that table and ``rec``'s own one-row table.
        """
        with self.lock:
            if self._table is None:
                self._table = profiles_frame(p for _, p, _ in list(self.profiles._cache.values()))
            table = self._table
        mine = profiles_frame([rec])
        others = table[(table["customer_id"] != rec["customer_id"]).to_numpy()]
        return pd.concat([others, mine], ignore_index=True), mine


class Onboarding:
    """Onboards (or re-reviews) customers for one Scorer (see the module docstring).

    Args:
        context: the Scorer's state, commit, clock and lock.
        customers: the table of stored profiles (profile links).
        screener: the watchlist screener, or None (no screening); seeding may replace it.
        risk_tier_model: the loaded risk-tier champion, or None (onboarding by rules).
    """

    # Profile times that cannot lie ahead of the service clock (the schema bounds them by the
    # contract's static ranges; "now" is the clock's, which may be simulated).
    _PAST_FIELDS = ("birth_date", "business_registered_at", "onboarded_at", "last_kyc_review_at",
                    "email_first_seen_at")  # fmt: skip

    def __init__(
        self,
        context: RequestContext,
        customers: CustomerTable,
        *,
        screener: WatchlistScreener | None,
        risk_tier_model: tracking.LoadedModel | None,
    ):
        self.context = context
        self.customers = customers
        self.screener = screener
        self.risk_tier_model = risk_tier_model
        self.risk = RiskTier.load(risk_tier_model) if risk_tier_model is not None else None

    def onboard(self, profile: Profile | Mapping[str, Any]) -> OnboardResponse:
        """Screen a profile, decide its tier and action, store it (new version) and log the decision.

        The tier comes from the ``kycrisk-risk-tier`` champion when one is loaded (``onboard_risk``);
        otherwise from the hard rules (watchlist, documents) and a simple score (the highest of
        nationality, residence, phone-country and industry risk), which the reasons say
        (``RULES_ONLY``).
        """
        profile = profile if isinstance(profile, Profile) else Profile.model_validate(profile)
        self._check_profile_times(profile)
        if self.risk is not None:
            return self.onboard_risk(profile)
        rec = {c: _timestamp(v) for c, v in profile.model_dump().items()}
        if self.screener is not None:
            names = pd.DataFrame([rec]).set_index("customer_id")
            screen = self.screener.screen(names, as_of="onboarded_at").iloc[0].to_dict()
        else:
            screen = {}
        screen = {c: _plain(screen.get(c)) for c in SCREEN_COLUMNS}
        as_of = rec.get("last_kyc_review_at") or rec["onboarded_at"]
        frame = pd.DataFrame([{f"customer_{k}": v for k, v in rec.items()} | {"as_of": as_of}])
        derived = (
            PartyProfileFeatures(party="customer", time_column="as_of")
            .fit(frame)
            .transform(frame)
            .iloc[0]
            .to_dict()
        )
        derived = {k: _plain(v) for k, v in derived.items() if k != "as_of"}
        status, list_type = screen.get("screen_status"), screen.get("screen_list_type")
        flags = {
            "screen_confirmed": status == "hit" and list_type == "sanction",
            "screen_possible": status == "review" or (status == "hit" and list_type == "pep"),
            "doc_expired": derived.get("customer_doc_expired"),
            "doc_check_digit_valid": derived.get("customer_doc_check_digit_valid"),
            "doc_typo_likely": derived.get("customer_doc_typo_likely"),
        }
        flags = {k: (None if v is None else bool(v)) for k, v in flags.items()}
        risks = [
            derived.get(f"customer_{c}")
            for c in ("nationality_risk", "residence_risk", "phone_country_risk", "industry_risk")
        ]
        risks = [float(r) for r in risks if r is not None]
        score = max(risks) if risks else 0.0
        decision = ONBOARD_RULES_POLICY.decide(score, flags)
        reasons = rule_reasons(decision, screen)
        # The risk-tier model is being built elsewhere: until it is served, say how this tier was made.
        reasons.append(
            {
                "code": "RULES_ONLY",
                "source": "rule",
                "feature": None,
                "value": None,
                "contribution": None,
                "direction": None,
                "message": f"The risk-tier model ({RISK_MODEL}) is not in service"
                + (
                    f" (version {self.risk_tier_model.version} is registered, but could not be loaded for "
                    "onboarding: see the service log)"
                    if self.risk_tier_model is not None
                    else ""
                )
                + ": the tier comes from the hard rules and a simple score, the highest of nationality, "
                "residence, phone-country and industry risk.",
                "features": [],
                "decisive": None,
            }
        )
        features = (
            {k: v for k, v in derived.items() if not k.endswith("_id")}
            | {k: v for k, v in screen.items() if k != "screen_entry_id"}
            | {"rules_score": score}
        )
        return self._log_onboarding(
            profile, (rec, screen), features=features, models={}, feature_set="onboard_rules_v1",
            policy_version=ONBOARD_RULES_POLICY.version,
            score=None,  # no model scored this: the rules score is in the features
            tier=decision.tier, action=decision.action, reasons=reasons, risk_score=score, screening=screen,
        )  # fmt: skip

    def _log_onboarding(
        self,
        profile: Profile,
        stored: tuple[dict[str, Any], dict[str, Any]],
        *,
        models: dict[str, str],
        feature_set: str,
        policy_version: str,
        score: float | None,
        tier: str,
        action: str,
        reasons: list[dict[str, Any]],
        risk_score: float,
        screening: Mapping[str, Any],
        features: dict[str, Any],
        as_of: pd.Timestamp | None = None,
    ) -> OnboardResponse:
        """The decision-log record and the answer of an onboarding (``_commit_onboarding`` commits them).

        Without a model (``models`` empty) the answer names no feature set or policy: the log does.
        """
        fields = {
            "kind": "onboard", "request": profile.model_dump(mode="json"), "features": features,
            "models": models, "feature_set": feature_set, "policy_version": policy_version,
            "score": score, "tier": tier, "action": action, "reasons": reasons,
        }  # fmt: skip
        return self._commit_onboarding(
            profile,
            fields,
            stored,
            lambda decision_id, version: OnboardResponse(
                decision_id=decision_id,
                customer_id=profile.customer_id,
                risk_tier=tier,
                action=action,
                risk_score=risk_score,
                reasons=answer_reasons(reasons),
                screening=Screening.from_columns(screening),
                models=models,
                profile_version=version,
                feature_set=feature_set if models else None,
                policy_version=policy_version if models else None,
                as_of=None if as_of is None else as_of.to_pydatetime(),
            ),
        )

    def _check_profile_times(self, profile: Profile) -> None:
        for field in self._PAST_FIELDS:
            self.context.clock.check(getattr(profile, field), field)

    def _commit_onboarding(
        self,
        profile: Profile,
        fields: dict[str, Any],
        stored: tuple[dict[str, Any], dict[str, Any]],
        respond: Callable[[str, int], OnboardResponse],
    ) -> OnboardResponse:
        """Log an onboarding decision and store the profile version, all or nothing (``serving.commit``).

        A retry with the body of the customer's latest onboarding gets that answer again
        (``replayed``); another body is an update: a new decision and profile version.

        Args:
            profile: the request.
            fields: the decision to log.
            stored: ``(profile record, screening)`` for the profile store.
            respond: ``(decision_id, profile_version) -> OnboardResponse``.
        """
        state, commit = self.context.state, self.context.commit
        rec, screen = stored
        try:  # what the profile store would refuse must be refused before the decision is logged
            check_profile(profile.customer_id, {c: _timestamp(_plain(rec.get(c))) for c in CUSTOMER_COLUMNS})
            check_screening({c: screen.get(c) for c in SCREEN_COLUMNS})
        except ProfileRowError as exc:
            column = str(exc).split(" ", 1)[0]
            raise ScorerError(str(exc), column if column in CUSTOMER_COLUMNS else None) from None
        entry = commit.entry(f"onboard:{profile.customer_id}", profile.model_dump(mode="json"))
        if commit.claim([entry], [""], strict=False):
            answer = state.journal.response(entry.key)
            return OnboardResponse.model_validate({**answer, "replayed": True})
        # enter before the lock, and repair (``failed``) after it: a repair waits for every request
        # between staging and finishing, some of which may be waiting for this lock
        commit.enter()
        committed = finished = False
        try:
            with self.context.lock:  # one version at a time: the answer names the version it creates
                current = state.profiles.get(profile.customer_id)
                response = respond(new_decision_id(), 1 if current is None else current[0] + 1)
                effects = RequestCommit.effects(profiles=[stored])
                box: list[int] = []
                state.decisions.append_receipt(
                    {**fields, "decision_id": response.decision_id},
                    journal=state.journal.writer(
                        [(entry, 0)], effects, box, response=response.model_dump(mode="json")
                    ),
                )
                committed = True
                try:
                    commit.finish(effects, [], box[0])
                    finished = True
                except Exception:  # committed: the outbox has it; repaired below, outside the lock
                    log.exception("writing a committed onboarding to the stores failed: rebuilding")
        except BaseException:
            if not committed:
                commit.leave()  # nothing committed, nothing staged
            raise
        finally:
            commit.release([entry])
        if finished:
            commit.leave()
        else:
            commit.failed()
        return response

    def seed_profiles(self, customers: pd.DataFrame, watchlist: pd.DataFrame | None) -> int:
        """Store a data set's customers as profiles, each with its screening at onboarding (no decisions).

        A non-empty ``watchlist`` is kept in the state folder and replaces the screener first. The
        caller resets the customers table (``CustomerTable.reset``) under the Scorer's lock.

        Returns:
            The number of customers stored.
        """
        if watchlist is not None and len(watchlist):
            self.screener = self.context.state.store_watchlist(watchlist)
        screening = screen_customers(customers, self.screener) if self.screener is not None else None
        rows = []
        for rec in customers.to_dict("records"):
            screen = screening.loc[rec["customer_id"]].to_dict() if screening is not None else {}
            rows.append((rec, screen))
        self.context.state.profiles.put_many(rows)
        return len(rows)

    # -- onboarding with the risk-tier model --------------------------------------------------

    def snapshot_frame(
        self, rec: Mapping[str, Any], as_of: pd.Timestamp, screening: pd.DataFrame | None = None
    ) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
        """The risk model's one-row input for a profile at ``as_of`` (``features.customer.customer_frame``).

        The behaviour comes from the customer history (``CustomerHistory.rows_for``: the rows
        ``features.customer.customer_rows`` selects) through ``customer_behaviour``, the screening
        from the watchlist as listed at ``as_of``: the batch row of that snapshot.

        Args:
            rec: the profile (contract columns, times as UTC timestamps).
            as_of: the snapshot time.
            screening: the screener's one-row output at ``as_of`` when already computed.

        Returns:
            ``(frame, screen, profile)``: the frame, the screening output at ``as_of`` (unprefixed)
            and the profile as a one-row ``customers`` table.
        """
        cid = str(rec["customer_id"])
        snapshots = pd.DataFrame({"customer_id": [cid], risk.TIME_COLUMN: [as_of]})
        customers, mine = self.customers.with_profile(rec)
        rows = self.context.state.history.rows_for(cid, customers)
        behaviour = customer_behaviour(
            snapshots, rows["transactions"], rows["account_events"], rows["labels"], customers=rows["customers"]
        )  # fmt: skip
        if screening is None and self.screener is not None:
            screening = self._screen_at(rec, as_of)
        if screening is not None:
            screening = screening.set_axis(snapshots.index)
        frame = customer_frame(rows["customers"], snapshots, behaviour, screening)
        columns = self.risk.columns
        if columns:
            missing = [c for c in columns if c not in frame.columns]
            if missing:  # a Pipeline trained on other columns: refuse rather than feed it NaN
                raise RuntimeError(f"the risk-tier Pipeline expects columns the snapshot lacks: {missing}")
            frame = frame[columns]
        screen = {} if screening is None else screening.iloc[0].to_dict()
        return frame, {c: _plain(screen.get(c)) for c in SCREEN_COLUMNS}, mine

    def decide_risk(self, frame: pd.DataFrame, screen: Mapping[str, Any]) -> dict[str, Any]:
        """Probability, model features, tier, action and reasons of one customer snapshot.

        The logged Pipeline's preparation steps give the model features (no personal data), the
        encoder and the calibrated model P(bad); ``training.risk.decide_customers`` the tier and
        action (score tier, hard rules, review rules); the reasons are the policy's score and rule
        reasons (a watchlist or PEP reason names the matched list entry), then the top exact
        TreeSHAP contributions (log-odds) of the LightGBM model on the encoded row.
        """
        r = self.risk
        pipeline = r.model.pipeline
        prepared = pipeline[: r.n_prepare].transform(risk.categoricals_as_text(frame))
        encoded = pipeline[r.n_prepare : -1].transform(prepared)
        probability = float(pipeline[-1].predict_proba(encoded)[:, 1][0])
        names = r.explainer.feature_names
        contrib = r.explainer.contributions(encoded[list(names)].to_numpy(dtype=np.float64))[:-1]
        final = risk.decide_customers(r.policy, np.array([probability]), prepared, **r.review_rules).iloc[0]
        features = {k: _plain(v) if not isinstance(v, float) else v for k, v in prepared.iloc[0].items()}
        flags = {k: _plain(v) for k, v in customer_flags(prepared).iloc[0].items()}
        raw: dict[str, Any] = {
            SNAPSHOT_CONTEXT: frame[risk.TIME_COLUMN].iloc[0].isoformat(),
            **{c: _plain(frame[c].iloc[0]) for c in _RAW_SNAPSHOT_COLUMNS if c in frame.columns},
            **screen,
            **{f"customer_{c}": v for c, v in screen.items()},
            **flags,
            **features,
        }
        decision = r.policy.decide(probability, flags)
        decisive = set(filter(None, str(final["decisive_codes"]).split("|")))
        reasons = rule_reasons(decision, raw)
        for reason in reasons:
            # the review rules may take the decisive role from the policy's reasons
            reason["decisive"] = reason["code"] in decisive
            if reason["source"] == "score":
                reason["message"] = reason["message"].replace(
                    "Fraud probability", "Bad-customer probability", 1
                )
        for code in str(final["reason_codes"]).split("|"):
            if code in risk.REVIEW_RULES:
                reasons.append(self._review_reason(code, raw, code in decisive))
        reasons += reasons_for_row(dict(zip(names, contrib, strict=True)), features, raw, top_k=TOP_REASONS)
        return {
            "features": features,
            "score": probability,
            "tier": str(final["tier"]),
            "action": str(final["action"]),
            "reasons": reasons,
        }

    def _review_reason(self, code: str, raw: Mapping[str, Any], decisive: bool) -> dict[str, Any]:
        """A review rule of ``training.risk`` (``PEP_EDD``, ``KYC_OUTGROWN``) as a rule reason."""
        message = risk.review_rule_message(code, self.risk.review_rules["outgrown_volume_ratio"])
        feature, value = "customer_volume_vs_declared", raw.get("customer_volume_vs_declared")
        if code == "PEP_EDD":
            feature, value = "screen_entry_id", raw.get("screen_entry_id")
            hit = screening_sentence("", raw)
            if hit is not None:
                message = f"{message} {hit[0].upper()}{hit[1:]}."
        return {
            "code": code,
            "source": "rule",
            "feature": feature,
            "value": _plain(value),
            "contribution": None,
            "direction": "increases risk",
            "message": message,
            "features": [],
            "decisive": decisive,
        }

    def onboard_risk(self, profile: Profile | Mapping[str, Any]) -> OnboardResponse:
        """Onboard (or re-review) a profile with the risk-tier champion; see ``onboard``.

        The snapshot is taken at ``as_of`` = the later of ``last_kyc_review_at`` and
        ``onboarded_at``, plus 1 µs (as ``features.customer.snapshot_times`` takes the onboarding
        snapshot): the behaviour before it, the watchlist as listed at it. The decision log record
        (kind ``onboard``) holds the minimised profile, the model features (after the steps that
        consume personal data), P(bad) as the score, the model version, feature set and policy
        version: ``serving.replay`` recomputes the decision from it. The profile is stored as a new
        version with its screening at onboarding (what the order model reads).

        Raises:
            pydantic.ValidationError: an invalid profile (naming the field).
            ModelUnavailable: no risk-tier model is loaded.
        """
        if self.risk is None:
            raise ModelUnavailable(f"no {RISK_MODEL} model is loaded: onboarding decides by rules")
        profile = profile if isinstance(profile, Profile) else Profile.model_validate(profile)
        self._check_profile_times(profile)
        rec = {c: _timestamp(v) for c, v in profile.model_dump().items()}
        review = rec.get("last_kyc_review_at")
        start = rec["onboarded_at"] if review is None else max(review, rec["onboarded_at"])
        as_of = start + pd.Timedelta(microseconds=1)
        # one screener call: at as_of for the risk model, at onboarding for the order model's profile
        # store (features.assemble.screen_customers)
        screened = None if self.screener is None else self._screen_at(rec, as_of, rec["onboarded_at"])
        frame, screen_now, mine = self.snapshot_frame(
            rec, as_of, None if screened is None else screened.iloc[[0]]
        )
        decided = self.decide_risk(frame, screen_now)
        screen = (
            dict.fromkeys(SCREEN_COLUMNS)
            if screened is None
            else {c: _plain(v) for c, v in screened.iloc[1].to_dict().items() if c in SCREEN_COLUMNS}
        )
        r = self.risk
        return self._log_onboarding(
            profile, (rec, screen), features=decided["features"], models={r.model.name: r.model.version},
            feature_set=r.feature_set, policy_version=r.policy.version, score=decided["score"],
            tier=decided["tier"], action=decided["action"], reasons=decided["reasons"],
            risk_score=float(decided["score"]), screening=screen_now, as_of=as_of,
        )  # fmt: skip

    def _screen_at(self, rec: Mapping[str, Any], *times: Any) -> pd.DataFrame:
        """The screener's output for one profile as the watchlist stood at each of ``times`` (one row each)."""
        names = pd.DataFrame([rec] * len(times)).set_index("customer_id")
        names["_screened_at"] = list(times)
        return self.screener.screen(names, as_of="_screened_at")
