"""The Scorer: scores orders with the fraud champion, and holds the collaborators of the other requests, without BentoML.

One ``Scorer`` per process holds:

- the ``champion`` of ``kycrisk-fraud`` (the whole scikit-learn Pipeline, loaded once through
  ``training.tracking.load_model``, which reviews the skops trusted types), its tier policy and
  feature set from the model's metadata, and an ``Explainer`` on the LightGBM model inside;
- the open state (``serving.state.ServiceState``: the online feature store, the customer profile
  store, the customer history, the decision log and its request journal, under ``<state_dir>``,
  with their keys and the state folder's lock), seeded from a data folder by ``seed``;
- one commit point per request across those stores (``serving.commit.RequestCommit``), the clock
  that bounds request times (``serving.clock.Clock``) and one lock, bundled as the
  ``serving.context.RequestContext`` its collaborators share;
- onboarding (``serving.onboarding.Onboarding``): the watchlist screener, the ``champion`` of
  ``kycrisk-risk-tier`` when there is one (else onboarding decides by rules), the table of stored
  profiles its profile links read;
- account events and labels (``serving.events.apply_events``).

This module is the order decision: ``score`` and ``score_batch`` and the two implementations of
the model path below.

Scoring one order (``score``) follows the offline path exactly: the online features of the order
(computed before the order is applied, as the batch engine sees a row), joined with both parties'
profiles and screening by ``features.assemble.model_frame`` (the same function that builds the
training frame), then the logged Pipeline: its first ``n_prepare_steps`` steps give the model
features that the decision log stores, the encoder and the calibrated model give the probability.
The reasons are the exact TreeSHAP contributions (log-odds) of the LightGBM model on the encoded
row, grouped into reason codes, after the policy's score and hard-rule reasons. The answer is
logged, then the order is applied to the feature state.

Two implementations of that path, proven equal by ``tests/serving/test_scorer.py`` (same model
features, bit-identical probability, same reasons, order by order):

- ``decide_pipeline``: the pandas route above, ``model_frame`` plus the logged Pipeline
  (about 70-90 ms per order: ``PartyProfileFeatures.transform`` and pandas overhead on one row);
- ``decide_fast`` (the default): the same fitted steps on the order as a dict, through their
  record methods (``transform_record``, beside ``transform``, sharing its formulas). Each party's
  time-independent profile outputs (document checks, name/e-mail similarity, country and industry
  risk, the categorical profile columns) are the fitted ``buyer_profile`` / ``seller_profile``
  step's ``profile_states``, batched, once per customer and profile version (``warm_profiles``; a
  new version from ``onboard`` is computed on first use); the step's ``transform_record`` adds the
  time-dependent ones per order. Then the fitted ``event_risk`` step's ``transform_record``, the
  encoder's (``training.steps.CategoricalEncoder``; a champion logged with feature-engine's own
  encoder is read through it), the probability from one LightGBM call plus the fitted calibrators
  (``training.steps.CalibratedRecords``), the reasons from one TreeSHAP call. ``serving`` holds no
  copy of a fitted step. A Pipeline of another shape falls back to ``decide_pipeline`` (logged as
  a warning).
  Measured on the 300-tree champion (2,000 customers, 148,559 orders): score + reasons p50
  0.70 ms, p99 0.95 ms; the whole ``score`` (validation, online features, decision log append
  with its fsync, applying the order) p50 2.0 ms, p99 5.5 ms.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feature_engine.encoding import OrdinalEncoder
from feature_engine.selection import DropFeatures
from sklearn.calibration import CalibratedClassifierCV

from features.assemble import SCREEN_COLUMNS, model_frame
from features.io import load_valid_dataset
from features.online import LateEventError
from features.profile import OPTIONAL_PROFILE_COLUMNS, PROFILE_COLUMNS, ProfileState
from features.screening import WatchlistScreener
from serving.champions import load_champions
from serving.clock import Clock
from serving.commit import RequestCommit
from serving.context import TOP_REASONS, RequestContext, answer_reasons
from serving.decision_log import DEFAULT_PII_FIELDS, DecisionRecord
from serving.errors import IdempotencyConflict, ModelUnavailable, ScorerError, UnknownCustomer
from serving.events import apply_events
from serving.onboarding import CustomerTable, Onboarding
from serving.profiles import CUSTOMER_COLUMNS
from serving.profiles import as_timestamp as _timestamp
from serving.profiles import plain_value as _plain
from serving.schemas import AccountEvent, Label, OnboardResponse, Order, Profile, ScoreResponse
from serving.state import ServiceState, load_screener
from training import fraud, tracking
from training.explain import Explainer, reasons_for_row, rule_reasons
from training.policy import TierPolicy
from training.steps import CalibratedRecords, CategoricalEncoder, row_vector

log = logging.getLogger(__name__)


def _text(value: Any) -> Any:
    """A categorical value as the Pipeline sees it after ``fraud.categoricals_as_text`` (NaN when missing)."""
    value = _plain(value)
    return math.nan if value is None else str(value)


def _num(value: Any) -> float:
    value = _plain(value)
    return math.nan if value is None else float(value)


class Scorer:
    """Scores orders, onboards customers, applies events and reads decisions (see the module docstring).

    Build it with ``Scorer.from_registry``. ``__init__`` reads the models' metadata, opens the state
    (``serving.state.ServiceState``), finishes what a crash interrupted (``RequestCommit.recover``)
    and warms the fast path; onboarding (``serving.onboarding``) and account events
    (``serving.events``) are collaborators on the same ``RequestContext``.
    """

    def __init__(
        self,
        model: tracking.LoadedModel,
        state_dir: Path,
        *,
        screener: WatchlistScreener | None = None,
        risk_tier_model: tracking.LoadedModel | None = None,
        salt: bytes | str | None = None,
        decision_log_key: bytes | str | None = None,
        state_key: bytes | str | None = None,
        fast: bool = True,
        clock: Clock | None = None,
    ):
        self.model = model
        self.clock = clock or Clock()
        self.state_dir = Path(state_dir)
        self.pipeline = model.pipeline
        meta = model.metadata
        self.feature_set: str = meta["feature_set"]
        self.policy = TierPolicy.from_dict(meta["tier_policy"])
        self.n_prepare = int(meta.get("n_prepare_steps", fraud.N_PREPARE_STEPS))
        self.models = {model.name: model.version}
        self.explainer = Explainer(fraud.lgbm_of(self.pipeline))
        self.input_columns = list(getattr(self.pipeline, "feature_names_in_", []))
        self.state = state = ServiceState.open(
            self.state_dir, self.feature_set, salt=salt, state_key=state_key, decision_log_key=decision_log_key
        )  # fmt: skip
        # the stores by name: the order path reads them on every order
        self.profiles, self.features, self.history = state.profiles, state.features, state.history
        self.decisions, self.journal = state.decisions, state.journal
        self._lock = threading.Lock()
        self.customers = CustomerTable(self.profiles, self._lock)
        # one commit point per request across the stores (serving.commit)
        self.commit = RequestCommit(self.journal, self.features, self.history, self.customers.put)
        self.context = RequestContext(self.state, self.commit, self.clock, self._lock)
        self.onboarding = Onboarding(
            self.context, self.customers, screener=screener, risk_tier_model=risk_tier_model
        )
        self.risk_tier_model = risk_tier_model
        self._risk = self.onboarding.risk  # the risk-tier champion's parts, or None: onboarding by rules
        self._party_cache: dict[tuple[str, str, int], ProfileState] = {}
        self.commit.recover()  # finish what a crash interrupted, before serving anything
        self.fast = bool(fast) and self._init_fast()
        if self.fast:
            self.warm_profiles()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_registry(
        cls,
        tracking_uri: str | None = None,
        state_dir: str | Path = "state",
        watchlist: str | Path | pd.DataFrame | None = None,
        *,
        salt: bytes | str | None = None,
        decision_log_key: bytes | str | None = None,
        state_key: bytes | str | None = None,
        fast: bool = True,
        clock: Clock | None = None,
        risk_tier: str = "optional",
    ) -> Scorer:
        """Load the fraud champion (and the risk-tier champion when there is one) and open the state.

        Args:
            tracking_uri: MLflow tracking URI (default: ``MLFLOW_TRACKING_URI``, then the project store).
            state_dir: folder of the sqlite state files (created when missing).
            watchlist: watchlist table or parquet/CSV file for onboarding screening; default
                ``<state_dir>/watchlist.parquet`` when present (written by ``seed``).
            salt: pseudonym salt of the decision log and the state (default from configuration:
                ``KYCRISK_PII_SALT``, or the secrets file of ``KYCRISK_SECRETS_FILE``).
            decision_log_key: HMAC key of the decision log (default ``KYCRISK_DECISION_LOG_KEY``,
                likewise; optional).
            state_key: the 32-byte key of personal data at rest (default ``KYCRISK_STATE_KEY``,
                likewise).
            fast: decide with the dict fast path (``decide_fast``) when the Pipeline has the known
                shape; ``False`` always runs the pandas Pipeline (``decide_pipeline``).
            clock: the clock that bounds event times (default: real time, 5 minutes of skew).
            risk_tier: ``"required"``: a missing or untrusted ``kycrisk-risk-tier`` champion is a
                ``ModelUnavailable`` too (the service's default); ``"optional"``: onboarding then
                falls back to the hard rules and a simple score, and says so in its reasons.

        Raises:
            ModelUnavailable: no champion, or the artifact fails the trusted-type review.
            serving.secrets_config.SecretsError: no salt or state key is configured.
            serving.profiles.StateKeyError: the state key is not the one the state was written with.
            serving.profiles.StateLocked: a privacy command holds the state folder.
        """
        model, risk_model = load_champions(tracking_uri, risk_tier)
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        screener = load_screener(watchlist, state_dir)
        return cls(
            model, state_dir, screener=screener, risk_tier_model=risk_model, salt=salt,
            decision_log_key=decision_log_key, state_key=state_key, fast=fast, clock=clock,
        )  # fmt: skip

    @property
    def screener(self) -> WatchlistScreener | None:
        """The watchlist screener of onboarding (None: no watchlist); ``seed`` may replace it."""
        return self.onboarding.screener

    def seed(self, data_dir: str | Path, source: str = "kycrisk") -> dict[str, int]:
        """Load customers (with their onboarding screening) and replay the history into the feature state.

        Args:
            data_dir: a data folder meeting the contracts (``kycrisk generate`` output).
            source: input layout (``kycrisk`` or ``fdh``).

        Returns:
            Counts: ``customers``, ``transactions``, ``account_events``, ``labels`` applied.
        """
        tables = dict(load_valid_dataset(Path(data_dir), source=source))
        n_customers = self.onboarding.seed_profiles(tables["customers"], tables.get("watchlist"))
        if self.fast:
            self.warm_profiles()
        with self._lock:
            self.customers.reset()  # rebuilt from the profile store on the next onboarding
            return {"customers": n_customers, **self.state.load_history(tables)}

    def close(self) -> None:
        """Close the state's stores (what was committed is already on disk)."""
        self.state.close()

    # -- scoring ------------------------------------------------------------------------------

    def _party(self, customer_id: str, field: str) -> tuple[dict[str, Any], dict[str, Any]]:
        found = self.profiles.get(customer_id)
        if found is None:
            raise UnknownCustomer(f"{field} {customer_id!r} is not a known customer: onboard it first", field)
        return found[1], found[2]

    def model_input(self, event: Mapping[str, Any], history: Mapping[str, float]) -> pd.DataFrame:
        """The one-row model input frame of an order: ``features.assemble.model_frame`` columns.

        Args:
            event: the order (``transactions`` contract columns).
            history: its online history features.
        """
        parties: dict[str, dict[str, Any]] = {}
        screens: dict[str, dict[str, Any]] = {}
        for field in ("buyer_id", "seller_id"):
            cid = event[field]
            parties[cid], screens[cid] = self._party(cid, field)
        customers = pd.DataFrame(list(parties.values()), columns=list(CUSTOMER_COLUMNS))
        screening = pd.DataFrame.from_dict(screens, orient="index", columns=list(SCREEN_COLUMNS))
        transactions = pd.DataFrame([{**event, "occurred_at": _timestamp(event["occurred_at"])}])
        hist = pd.DataFrame([{"transaction_id": event["transaction_id"], **history}])
        frame = model_frame(transactions, hist, customers, screening if self.screener is not None else None)
        if self.input_columns:
            frame = frame.reindex(columns=self.input_columns)
        return frame

    # The fast path: the Pipeline's own fitted steps, run on one order as a dict (their record methods)

    def _init_fast(self) -> bool:
        """Check the Pipeline has the shape the fast path runs; take its steps' record methods."""
        steps = [name for name, _ in self.pipeline.steps]
        final = self.pipeline[-1]
        if (
            steps != ["buyer_profile", "seller_profile", "event_risk", "drop", "encode", "model"]
            or self.n_prepare != 4
            or not isinstance(self.pipeline[3], DropFeatures)
            or not isinstance(self.pipeline[4], OrdinalEncoder)
            or not isinstance(final, CalibratedClassifierCV)
            or final.method not in ("isotonic", "sigmoid")
            or len(final.classes_) != 2
            or not self.input_columns
        ):
            log.warning(
                "the fraud Pipeline has an unexpected shape %s: scoring with the pandas Pipeline", steps
            )
            return False
        named = self.pipeline.named_steps
        self._profile_steps = {p: named[f"{p}_profile"] for p in ("buyer", "seller")}
        self._event_risk = named["event_risk"]
        # a champion logged with feature-engine's own encoder gets the record method over the same state
        self._encoder = CategoricalEncoder.of(self.pipeline[4])
        # the drop step's output is the encoder's input, in the encoder's (training) order
        self._prepared_columns = list(self._encoder.feature_names_in_)
        self._model = CalibratedRecords(final, self.explainer.booster)
        self._profile_columns = [
            c for c in (*PROFILE_COLUMNS, *OPTIONAL_PROFILE_COLUMNS) if f"buyer_{c}" in self.input_columns
        ]
        return True

    def _static_profiles(self, party: str, items: list[tuple[str, int, dict[str, Any]]]) -> None:
        """Run the fitted profile step once on many customers and cache their ``profile_states``."""
        if not items:
            return
        frame = pd.DataFrame(
            [{f"{party}_{c}": profile.get(c) for c in self._profile_columns} for _, _, profile in items]
        )
        states = self._profile_steps[party].profile_states(fraud.categoricals_as_text(frame))
        cached = [
            ((party, cid, version), state) for (cid, version, _), state in zip(items, states, strict=True)
        ]
        self._party_cache.update(cached)  # all of the batch or none of it

    def warm_profiles(self) -> None:
        """Cache the time-independent profile features of every stored customer (batched).

        A profile the fitted profile step (or the time arithmetic) fails on is quarantined in the
        profile store (``ProfileStore.quarantine``, logged with the customer id and the error type,
        never a value), so that no stored profile can stop the start or fail an order later; the
        profile store already refuses and quarantines the profiles it can tell are bad.
        """
        for party in ("buyer", "seller"):
            items = [
                (cid, version, profile)
                for cid, version, profile, _ in self.profiles.items()
                if (party, cid, version) not in self._party_cache
            ]
            for i in range(0, len(items), 5000):
                batch = items[i : i + 5000]
                try:
                    self._static_profiles(party, batch)
                except Exception:
                    # find the profile(s) at fault one by one; the others are cached as usual
                    for item in batch:
                        try:
                            self._static_profiles(party, [item])
                        except Exception as exc:
                            reason = f"the fraud Pipeline's {party} profile step fails on it ({type(exc).__name__})"
                            self.profiles.quarantine(item[0], reason)

    def _party_features(self, party: str, cid: str, field: str, row: Mapping[str, Any]) -> tuple[dict, dict]:
        """``row`` through the party's fitted profile step (its cached profile state), plus its screening."""
        found = self.profiles.get(cid)
        if found is None:
            raise UnknownCustomer(f"{field} {cid!r} is not a known customer: onboard it first", field)
        version, profile, screen = found
        key = (party, cid, version)
        if key not in self._party_cache:
            self._static_profiles(party, [(cid, version, profile)])
        out = self._profile_steps[party].transform_record(row, self._party_cache[key])
        # the screening columns model_frame joins beside the profile (as the encoder reads them)
        p = f"{party}_"
        out[p + "screen_score"] = _num(screen.get("screen_score"))
        for c in ("screen_status", "screen_list_type", "screen_dob_match"):
            out[p + c] = _text(screen.get(c))
        return out, screen

    def prepared_fast(
        self, event: Mapping[str, Any], history: Mapping[str, float]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model features of one order (what ``fraud.model_features`` gives) without pandas.

        The order's record (its ``model_frame`` columns, categoricals as text) goes through the
        fitted ``buyer_profile``, ``seller_profile`` and ``event_risk`` steps' ``transform_record``.

        Returns:
            ``(features, raw)``: the model features by name, in the Pipeline's order, and the
            request values that make reason sentences specific (countries, screening entries).
        """
        row: dict[str, Any] = {c: _text(event.get(c)) for c in ("currency", "goods_category", "payment_method",
                                                                 "buyer_country", "seller_country", "ip_country")}  # fmt: skip
        row["quantity"] = event.get("quantity")
        row[fraud.TIME_COLUMN] = event["occurred_at"]
        row.update(history)
        raw: dict[str, Any] = {}
        for party in ("buyer", "seller"):
            field = f"{party}_id"
            row, screen = self._party_features(party, event[field], field, row)
            raw[f"{party}_screen_entry_id"] = screen.get("screen_entry_id")
        row = self._event_risk.transform_record(row)
        try:
            features = {c: row[c] for c in self._prepared_columns}
        except KeyError as exc:  # a Pipeline the fast path does not know: refuse rather than guess
            raise RuntimeError(
                f"the fast path does not produce model feature {exc}: use fast=False"
            ) from None
        raw.update({k: v for k, v in event.items() if k not in DEFAULT_PII_FIELDS})
        raw.update(features)
        return features, raw

    def _vector(self, features: Mapping[str, Any]) -> np.ndarray:
        """The model's input row: the fitted encoder's ``transform_record``, in the booster's order."""
        return row_vector(self._encoder.transform_record(features), self.explainer.feature_names)

    def _calibrated_rows(self, x: np.ndarray) -> np.ndarray:
        """The fitted calibrated model's probability of many encoded rows (``CalibratedRecords``)."""
        return self._model.predict_rows(x)

    def _calibrated(self, x: np.ndarray) -> float:
        return self._model.predict_record(x)

    # -- decisions ----------------------------------------------------------------------------

    def _decision(
        self, event: Mapping[str, Any], features: Mapping[str, Any], raw: Mapping[str, Any],
        probability: float, contrib: np.ndarray,
    ) -> dict[str, Any]:  # fmt: skip
        confirmed = any(
            raw.get(f"{p}_screen_status") == "hit" and raw.get(f"{p}_screen_list_type") == "sanction"
            for p in ("buyer", "seller")
        )
        decision = self.policy.decide(probability, {"screen_confirmed": confirmed})
        names = self.explainer.feature_names
        reasons = rule_reasons(decision, raw) + reasons_for_row(
            dict(zip(names, contrib, strict=True)), features, raw, top_k=TOP_REASONS
        )
        return {
            "kind": "score",
            "request": dict(event),
            "features": dict(features),
            "models": self.models,
            "feature_set": self.feature_set,
            "policy_version": self.policy.version,
            "score": probability,
            "tier": decision.tier,
            "action": decision.action,
            "reasons": reasons,
        }

    def decide_fast(self, event: Mapping[str, Any], history: Mapping[str, float]) -> dict[str, Any]:
        """The decision of one order by the dict fast path (see ``prepared_fast``)."""
        features, raw = self.prepared_fast(event, history)
        x = self._vector(features)
        probability = self._calibrated(x)
        contrib = self.explainer.contributions(x)[:-1]
        return self._decision(event, features, raw, probability, contrib)

    def decide_pipeline(self, event: Mapping[str, Any], history: Mapping[str, float]) -> dict[str, Any]:
        """The decision of one order through the pandas Pipeline (the reference the fast path must equal)."""
        frame = self.model_input(event, history)
        text = fraud.categoricals_as_text(frame)
        prepared = self.pipeline[: self.n_prepare].transform(text)
        encoded = self.pipeline[self.n_prepare : -1].transform(prepared)
        probability = float(self.pipeline[-1].predict_proba(encoded)[:, 1][0])
        names = self.explainer.feature_names
        contrib = self.explainer.contributions(encoded[list(names)].to_numpy(dtype=np.float64))[:-1]
        features = {k: _plain(v) if not isinstance(v, float) else v for k, v in prepared.iloc[0].items()}
        raw = {k: _plain(v) for k, v in frame.iloc[0].items() if k not in DEFAULT_PII_FIELDS}
        raw.update(features)
        return self._decision(event, features, raw, probability, contrib)

    def score(self, order: Order | Mapping[str, Any]) -> ScoreResponse:
        """Score one order, add it to the feature state, and log the decision before answering.

        Only the feature state is under the Scorer's lock: the order's features are looked up and
        the order is applied in one step (so the next order of the same buyer sees this one, and
        two concurrent orders never see the same "before"). Deciding (model, TreeSHAP, reasons)
        needs nothing but those features and the parties' profiles, so it runs outside the lock:
        concurrent requests overlap there, and LightGBM and sqlite release the GIL while they
        work. The decision log append uses group commit (concurrent requests share one fsync) and
        this call returns only once its decision is on disk. If deciding or logging fails (a bug,
        a full disk) the order stays in the feature state, as it did happen, and the caller gets
        the error instead of a decision.

        Raises:
            pydantic.ValidationError: an invalid order (naming the field).
            UnknownCustomer: the buyer or seller is not onboarded.
            ScorerError: the order is dated beyond the clock, or older than the state accepts.
        """
        order = order if isinstance(order, Order) else Order.model_validate(order)
        event = order.to_event()
        self.clock.check(event["occurred_at"], "occurred_at")
        for field in ("buyer_id", "seller_id"):
            self._party(event[field], field)  # refuse unknown customers before any change
        prepared = self._prepare_order(event, "")
        entry = self.commit.entry(f"order:{event['transaction_id']}", order.model_dump(mode="json"))
        done = self.commit.claim([entry], [""])
        if done:
            return self._replay(done[0], event["transaction_id"])
        self.commit.enter()
        try:
            with self._lock:
                try:
                    history = self.features.compute(event, prepared)
                except ValueError as exc:
                    raise ScorerError(str(exc), "occurred_at") from exc
                staged = self.features.stage_transaction(event, prepared)
        except BaseException:
            self.commit.leave()  # nothing was staged
            self.commit.release([entry])
            raise
        try:
            decide = self.decide_fast if self.fast else self.decide_pipeline
            decided = decide(event, history)
            effects = RequestCommit.effects(transactions=[event])
            box: list[int] = []
            receipt = self.decisions.append_receipt(
                decided, journal=self.journal.writer([(entry, 0)], effects, box)
            )
        except BaseException:
            self.commit.release([entry])
            self.commit.failed()  # staged in memory, never committed: back to what is on disk
            raise
        self.commit.release([entry])
        self.context.finish(effects, [staged], box[0])
        # answered from the decision itself: the log stores exactly these values (its JSON
        # round-trips every float), so there is no need to decode what was just written
        return ScoreResponse(
            decision_id=receipt.decision_id,
            transaction_id=event["transaction_id"],
            fraud_probability=float(decided["score"]),
            risk_tier=decided["tier"],
            action=decided["action"],
            reasons=answer_reasons(decided["reasons"]),
            models=dict(decided["models"]),
            feature_set=decided["feature_set"],
            policy_version=decided["policy_version"],
        )

    def _prepare_order(self, event: Mapping[str, Any], where: str) -> tuple:
        try:
            return self.features.prepare(event)
        except ValueError as exc:
            raise ScorerError(str(exc), where + "amount") from exc

    def _replay(self, entry: Any, transaction_id: str) -> ScoreResponse:
        record = self.decisions.get(entry.decision_ids[0])
        if record is None:  # the journal names a decision the log does not hold: never answer wrongly
            raise RuntimeError(
                f"the journal names decision {entry.decision_ids[0]} that the log does not hold"
            )
        return self._response(record, transaction_id).model_copy(update={"replayed": True})

    def score_batch(self, orders: Iterable[Order | Mapping[str, Any]]) -> list[ScoreResponse]:
        """Score many orders in their given order: the same answers as ``score`` one by one.

        Each order's features see the orders before it in the batch (as the batch engine sees
        earlier rows). Everything is checked first (schema, known customers, times against the
        clock and the state's lateness), so a bad order refuses the whole batch before any of it
        changes the state; then, with the fast path, the model and TreeSHAP run once on all rows
        and the decisions are appended in one transaction with the journal (all or none, in every
        store: ``serving.commit``). Orders already scored with an identical body (a retried batch)
        get their original decisions, marked ``replayed``.

        Raises:
            pydantic.ValidationError, UnknownCustomer, ScorerError: as ``score``, with the field
            prefixed by the order's position (``orders[3].buyer_id``).
            IdempotencyConflict: an order's id was scored before with another body.
        """
        orders = [o if isinstance(o, Order) else Order.model_validate(o) for o in orders]
        events = [o.to_event() for o in orders]
        if not events:
            return []
        self._check_batch(events)
        entries = [
            self.commit.entry(f"order:{e['transaction_id']}", o.model_dump(mode="json"))
            for e, o in zip(events, orders, strict=True)
        ]
        done = self.commit.claim(entries, [f"orders[{i}]." for i in range(len(events))])
        new = [i for i in range(len(events)) if i not in done]
        answers: dict[int, ScoreResponse] = {
            i: self._replay(entry, events[i]["transaction_id"]) for i, entry in done.items()
        }
        if new:
            claimed = [entries[i] for i in new]
            batch = [events[i] for i in new]
            self.commit.enter()
            staged, computed = [], []
            try:
                with self._lock:
                    self._check_lateness(batch, new)
                    for i, event in zip(new, batch, strict=True):
                        txn = self._prepare_order(event, f"orders[{i}].")
                        history = self.features.compute(event, txn)
                        computed.append(history if not self.fast else self.prepared_fast(event, history))
                        staged.append(self.features.stage_transaction(event, txn))
            except BaseException:
                self.commit.release(claimed)
                if staged:
                    self.commit.failed()
                else:
                    self.commit.leave()
                raise
            try:
                decided = self._decide_many(batch, computed)
                effects = RequestCommit.effects(transactions=batch)
                box: list[int] = []
                records = self.decisions.append_many(
                    decided,
                    journal=self.journal.writer([(e, k) for k, e in enumerate(claimed)], effects, box),
                )
            except BaseException:
                self.commit.release(claimed)
                self.commit.failed()
                raise
            self.commit.release(claimed)
            self.context.finish(effects, staged, box[0])
            for i, record, event in zip(new, records, batch, strict=True):
                answers[i] = self._response(record, event["transaction_id"])
        return [answers[i] for i in range(len(events))]

    def _decide_many(self, events: list[dict[str, Any]], computed: list[Any]) -> list[dict[str, Any]]:
        """Decisions of many orders: their history features (pipeline) or ``prepared_fast`` outputs."""
        if not self.fast:
            return [self.decide_pipeline(e, h) for e, h in zip(events, computed, strict=True)]
        x = np.vstack([self._vector(features) for features, _ in computed])
        probabilities = self._calibrated_rows(x)
        contrib = self.explainer.booster.predict(x, pred_contrib=True, num_threads=self.explainer.num_threads)
        contrib = np.asarray(contrib, dtype=np.float64).reshape(len(events), -1)[:, :-1]
        return [
            self._decision(event, features, raw, float(p), c)
            for event, (features, raw), p, c in zip(events, computed, probabilities, contrib, strict=True)
        ]

    def _check_lateness(self, events: list[dict[str, Any]], positions: list[int]) -> None:
        try:
            self.features.check_lateness((e["occurred_at"] for e in events), what="order")
        except LateEventError as exc:
            raise ScorerError(str(exc), f"orders[{positions[exc.index]}].occurred_at") from exc

    def _check_batch(self, events: list[dict[str, Any]]) -> None:
        """Refuse a batch before any of it is applied: unknown customers, times, ids twice."""
        seen: set[str] = set()
        for i, event in enumerate(events):
            where = f"orders[{i}]."
            for field in ("buyer_id", "seller_id"):
                if self.profiles.get(event[field]) is None:
                    raise UnknownCustomer(
                        f"{field} {event[field]!r} is not a known customer: onboard it first", where + field
                    )
            self.clock.check(event["occurred_at"], where + "occurred_at")
            if event["transaction_id"] in seen:
                raise ScorerError(
                    f"transaction_id {event['transaction_id']!r} appears twice in the batch",
                    where + "transaction_id",
                )
            seen.add(event["transaction_id"])

    def _response(self, record: DecisionRecord, transaction_id: str) -> ScoreResponse:
        return ScoreResponse(
            decision_id=record.decision_id,
            transaction_id=transaction_id,
            fraud_probability=float(record.score),
            risk_tier=record.tier,
            action=record.action,
            reasons=answer_reasons(record.reasons),
            models=dict(record.models),
            feature_set=record.feature_set,
            policy_version=record.policy_version,
        )

    # -- onboarding and account events: the collaborators -------------------------------------

    def onboard(self, profile: Profile | Mapping[str, Any]) -> OnboardResponse:
        """Screen a profile, decide its tier and action, store it (new version) and log the decision.

        See ``serving.onboarding.Onboarding.onboard``: with the ``kycrisk-risk-tier`` champion when
        one is loaded, else by the hard rules and a simple score (``RULES_ONLY``).
        """
        return self.onboarding.onboard(profile)

    def apply_events(self, events: Iterable[AccountEvent | Label | Mapping[str, Any]]) -> dict[str, int]:
        """Apply account events and labels to the feature state and the customer history: all or none.

        See ``serving.events.apply_events`` (returns ``{"applied", "ignored", "replayed"}`` counts).
        """
        return apply_events(self.context, events)

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        """The logged decision, or None."""
        return self.decisions.get(decision_id)


__all__ = [
    "Clock",
    "IdempotencyConflict",
    "ModelUnavailable",
    "Scorer",
    "ScorerError",
    "UnknownCustomer",
]
