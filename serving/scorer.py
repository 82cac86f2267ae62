"""The Scorer: the fraud champion, online features, customer profiles, screening and the decision log, without BentoML.

One ``Scorer`` per process holds:

- the ``champion`` of ``kycrisk-fraud`` (the whole scikit-learn Pipeline, loaded once through
  ``training.tracking.load_model``, which reviews the skops trusted types), its tier policy and
  feature set from the model's metadata, and an ``Explainer`` on the LightGBM model inside;
- the online feature store (``features.online.OnlineFeatureStore``, sqlite in WAL mode,
  ``<state_dir>/features.sqlite``);
- the customer profile store (sqlite, ``<state_dir>/profiles.sqlite``): the contract columns of
  every customer plus its watchlist screening at onboarding and a profile version; seeded from a
  data folder (``Scorer.seed``) and updated by ``onboard``;
- the watchlist screener (fitted on ``<state_dir>/watchlist.parquet``, copied there by ``seed`` or
  given to ``from_registry``);
- the customer history (``serving.history.CustomerHistory``, ``<state_dir>/history.sqlite``): the raw
  transactions, account events and labels the risk-tier model's customer behaviour reads; seeded
  by ``seed``, fed by ``score`` and ``apply_events``;
- the ``champion`` of ``kycrisk-risk-tier`` when there is one (else onboarding decides by rules);
- the decision log (``serving.decision_log.DecisionLog``, ``<state_dir>/decisions.sqlite``).

Onboarding (``onboard``) with the risk-tier champion follows the offline snapshot path exactly
(``onboard_risk``): the snapshot ``as_of`` is the later of ``last_kyc_review_at`` and
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
- ``decide_fast`` (the default): the same fitted steps as dicts. The time-independent outputs of
  each party's profile step (document checks, name/e-mail similarity, country and industry risk,
  the categorical profile columns) are computed by the Pipeline's own fitted ``buyer_profile`` /
  ``seller_profile`` step, batched, once per customer and profile version (``warm_profiles``; a
  new version from ``onboard`` is computed on first use); the time-dependent ones (ages, document
  expiry, KYC staleness, volume against the declared volume) are recomputed per order with the
  same arithmetic (integer microseconds, one float division, as pandas does for ``datetime64[us]``);
  event risk uses the fitted ``event_risk`` tables, the encoder its fitted ``encoder_dict_``
  (unseen and missing categories -1), the probability one LightGBM call on a float64 row plus the
  fitted calibrators (on ``decision_function``, as scikit-learn does), the reasons one TreeSHAP
  call. A Pipeline of another shape falls back to ``decide_pipeline`` (logged as a warning).
  Measured on the 300-tree champion (2,000 customers, 148,559 orders): score + reasons p50
  0.70 ms, p99 0.95 ms; the whole ``score`` (validation, online features, decision log append
  with its fsync, applying the order) p50 2.0 ms, p99 5.5 ms.

Secrets come from configuration, never from the state folder (``serving.secrets_config``): the
pseudonym salt (``KYCRISK_PII_SALT``) pseudonymises personal data in the decision log and the device
ids of the customer history (``serving.privacy.Pseudonymiser``), the state key (``KYCRISK_STATE_KEY``)
encrypts the profile store (``serving.profiles``), and the log is keyed (HMAC) when
``KYCRISK_DECISION_LOG_KEY`` is set; each from its environment variable or the secrets file that
``KYCRISK_SECRETS_FILE`` names. The Scorer holds the state folder's lock (shared) while open, so the
privacy commands refuse a state in use.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.assemble import SCREEN_COLUMNS, model_frame
from features.customer import customer_behaviour, customer_flags, customer_frame
from features.online import LateEventError, OnlineFeatureStore, event_log
from features.profile import OPTIONAL_PROFILE_COLUMNS, PROFILE_COLUMNS, PartyProfileFeatures
from features.screening import WatchlistScreener
from serving.commit import RequestCommit
from serving.decision_log import (
    ANCHORS_ENV,
    DEFAULT_PII_FIELDS,
    DecisionLog,
    DecisionRecord,
    new_decision_id,
)
from serving.errors import IdempotencyConflict, ScorerError
from serving.history import CustomerHistory
from serving.journal import Journal
from serving.privacy import Pseudonymiser
from serving.profiles import (
    CUSTOMER_COLUMNS,
    ProfileCipher,
    ProfileRowError,
    ProfileStore,
    check_profile,
    check_screening,
)
from serving.profiles import as_timestamp as _timestamp
from serving.profiles import plain_value as _plain
from serving.schemas import (
    AccountEvent,
    Label,
    OnboardResponse,
    Order,
    Profile,
    Reason,
    ScoreResponse,
    Screening,
)
from serving.secrets_config import resolve_secrets
from training import fraud, risk, tracking
from training.explain import SNAPSHOT_CONTEXT, Explainer, reasons_for_row, rule_reasons, screening_sentence
from training.policy import TierPolicy

log = logging.getLogger(__name__)

FRAUD_MODEL = "kycrisk-fraud"  # training.run.FRAUD_MODEL (not imported: training.run pulls in plotting)
RISK_TIER_MODEL = "kycrisk-risk-tier"
TOP_REASONS = 5
_REASON_FIELDS = frozenset(Reason.model_fields)  # read once: pydantic's model_fields is a slow property
# Profile features that depend on the event time (recomputed per order by the fast path); every other
# output of ``PartyProfileFeatures`` depends on the profile alone and is cached per profile version.
TIME_DEPENDENT = (
    "age_years", "account_age_days", "doc_expired", "doc_days_to_expiry", "days_since_kyc_review",
    "email_age_days", "business_age_days", "volume_vs_declared",
)  # fmt: skip
US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_YEAR = 31_557_600_000_000  # 365.25 days, as features.profile divides ages
TIMES = ("birth_date", "onboarded_at", "document_expiry", "last_kyc_review_at", "email_first_seen_at",
         "business_registered_at")  # fmt: skip
# Onboarding without the risk-tier model: hard rules plus the highest country / industry risk.
ONBOARD_RULES_POLICY = TierPolicy(medium_threshold=0.5, high_threshold=0.9, version="onboard-rules-1")


class UnknownCustomer(ScorerError):
    """An order names a buyer or seller the profile store does not know."""


class ModelUnavailable(RuntimeError):
    """No champion to serve, or its artifact failed the trusted-type review."""


def _us(value: Any) -> int | None:
    """A time as integer microseconds since the epoch (None when missing)."""
    if value is None or value is pd.NaT:
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value) // 1000  # .value is nanoseconds whatever the unit


def _span(later: int | None, earlier: int | None, unit: int) -> float:
    # float(us) / float(unit) is exactly what pandas computes for datetime64[us] differences divided by
    # a Timedelta (both are exact in float64, so the quotient is the correctly rounded one)
    if later is None or earlier is None:
        return math.nan
    return float(later - earlier) / float(unit)


def _text(value: Any) -> Any:
    """A categorical value as the Pipeline sees it after ``fraud.categoricals_as_text`` (NaN when missing)."""
    value = _plain(value)
    return math.nan if value is None else str(value)


def _num(value: Any) -> float:
    value = _plain(value)
    return math.nan if value is None else float(value)


def _calibration_function(calibrator: Any) -> Any:
    """``calibrator.predict`` for one fitted calibrator, without scikit-learn's per-call input checks.

    For an ``IsotonicRegression`` this is the body of its ``_transform`` after ``check_array``
    (cast to the thresholds' dtype, clip, interpolate with its fitted ``f_``, cast back): the same
    numbers (tested against ``predict``), about 0.1 ms less per order. Anything else keeps its
    own ``predict``.
    """
    from sklearn.isotonic import IsotonicRegression

    f = getattr(calibrator, "f_", None)
    if (
        not isinstance(calibrator, IsotonicRegression)
        or f is None
        or not hasattr(calibrator, "X_thresholds_")
    ):
        return calibrator.predict
    dtype = calibrator.X_thresholds_.dtype
    clip = calibrator.out_of_bounds == "clip"
    low, high = calibrator.X_min_, calibrator.X_max_

    def predict(values: np.ndarray) -> np.ndarray:
        t = np.asarray(values, dtype=dtype).reshape(-1)
        if clip:
            t = np.clip(t, low, high)
        return f(t).astype(t.dtype)

    return predict


class Clock:
    """The service's notion of "now", to refuse events dated in the future.

    The online state accepts events up to its allowed lateness behind the newest one, so a single
    order dated next year would move that watermark and make every real order after it "late".
    ``check`` therefore refuses a time more than ``max_future_seconds`` ahead of now (clock skew
    between the platform and this service; default 5 minutes).

    ``start`` runs a simulated clock for replays and demos on data dated later than today (the
    synthetic data set runs to the end of 2026): now is ``start`` when the clock is made, and
    advances with real time. The service reads ``KYCRISK_CLOCK_START`` and
    ``KYCRISK_MAX_FUTURE_SECONDS`` (``from_env``).
    """

    def __init__(self, start: Any = None, max_future_seconds: float = 300.0):
        if not max_future_seconds >= 0:
            raise ValueError(f"max_future_seconds must be >= 0, got {max_future_seconds!r}")
        self.max_future_us = int(max_future_seconds * 1_000_000)
        self.offset_us = 0 if start is None else _us(pd.Timestamp(start)) - time.time_ns() // 1000
        self.simulated = start is not None

    @classmethod
    def from_env(cls) -> Clock:
        start = os.environ.get("KYCRISK_CLOCK_START") or None
        seconds = os.environ.get("KYCRISK_MAX_FUTURE_SECONDS")
        try:
            return cls(start, 300.0 if seconds in (None, "") else float(seconds))
        except ValueError as exc:
            raise ValueError(f"KYCRISK_CLOCK_START / KYCRISK_MAX_FUTURE_SECONDS: {exc}") from exc

    def now_us(self) -> int:
        return time.time_ns() // 1000 + self.offset_us

    def check(self, value: Any, field: str) -> None:
        """Raise ``ScorerError`` naming ``field`` when ``value`` is too far ahead of now."""
        if isinstance(value, date) and not isinstance(value, datetime | pd.Timestamp):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, datetime) and not isinstance(value, pd.Timestamp):
            # Python's arithmetic: exact for any year 1-9999 (pandas' nanosecond range ends in 2262)
            aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            t = (aware - _EPOCH) // timedelta(microseconds=1)
        else:
            t = _us(value)
        now = self.now_us()
        if t is not None and t > now + self.max_future_us:
            stamp = pd.Timestamp(t, unit="us", tz="UTC").isoformat()
            clock = pd.Timestamp(now, unit="us", tz="UTC").isoformat()
            raise ScorerError(
                f"{stamp} is {(t - now) / 1e6:,.0f} s ahead of the service clock ({clock}"
                f"{', simulated' if self.simulated else ''}); at most {self.max_future_us / 1e6:g} s ahead "
                "is accepted",
                field,
            )


class Scorer:
    """Scores orders, onboards customers, applies events and reads decisions (see the module docstring).

    Build it with ``Scorer.from_registry``; ``__init__`` only stores what it is given.
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
        self.screener = screener
        self.risk_tier_model = risk_tier_model
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # secrets given explicitly, the others from configuration (never from the state folder)
        secrets = resolve_secrets(
            self.state_dir, salt=salt, state_key=state_key, decision_log_key=decision_log_key
        )
        # the profile store first: it takes the state folder's lock before any store is read
        self.profiles = ProfileStore(self.state_dir / "profiles.sqlite", secrets.state_key)
        self.pseudonymise = Pseudonymiser(secrets.salt)
        self.features = OnlineFeatureStore(
            self.state_dir / "features.sqlite", self.feature_set, pseudonymise=self.pseudonymise
        )
        self.history = CustomerHistory(self.state_dir / "history.sqlite", self.pseudonymise)
        self._customers: pd.DataFrame | None = None  # every stored profile, for onboarding's profile links
        self._risk = _RiskTier.load(risk_tier_model) if risk_tier_model is not None else None
        self.decisions = DecisionLog(
            self.state_dir / "decisions.sqlite", key=secrets.decision_log_key, salt=secrets.salt,
            group_commit=True,  # concurrent requests share one fsync; each still returns only once on disk
            anchors=os.environ.get(ANCHORS_ENV) or None,  # the head, anchored outside the state (auditors)
        )  # fmt: skip
        self._lock = threading.Lock()
        # one commit point per request across the stores (serving.commit): the journal rides in
        # the decision log's transactions; its outbox holds personal data, sealed with the state key
        self.journal = Journal(self.decisions, cipher=ProfileCipher(secrets.state_key), salt=secrets.salt)
        self.commit = RequestCommit(self.journal, self.features, self.history, self._put_profiles)
        self._party_cache: dict[tuple[str, str, int], tuple[dict[str, Any], dict[str, int | None]]] = {}
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
            fast: score with the dict fast path (``score_fast``) when the Pipeline has the known
                shape; ``False`` always runs the pandas Pipeline (``score_pipeline``).
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
        tracking.configure(tracking_uri)
        try:
            model = tracking.load_model(FRAUD_MODEL, tracking.CHAMPION)
        except LookupError as exc:
            raise ModelUnavailable(
                f"no {tracking.CHAMPION!r} version of {FRAUD_MODEL} in {tracking.resolve_tracking_uri(tracking_uri)}: "
                "train and promote one first (kycrisk train)"
            ) from exc
        except ValueError as exc:
            raise ModelUnavailable(f"refusing to load the {FRAUD_MODEL} champion: {exc}") from exc
        if risk_tier not in ("required", "optional"):
            raise ValueError(f"risk_tier must be 'required' or 'optional', got {risk_tier!r}")
        risk_model = None
        try:
            risk_model = tracking.load_model(RISK_TIER_MODEL, tracking.CHAMPION)
        except LookupError as exc:
            if risk_tier == "required":
                raise ModelUnavailable(
                    f"no {tracking.CHAMPION!r} version of {RISK_TIER_MODEL} in "
                    f"{tracking.resolve_tracking_uri(tracking_uri)}: train and promote one (kycrisk train), "
                    "or allow onboarding by rules only (KYCRISK_RISK_TIER=optional)"
                ) from exc
            log.info("no %s champion: onboarding decides by hard rules and a simple score", RISK_TIER_MODEL)
        except Exception as exc:
            if risk_tier == "required":
                raise ModelUnavailable(f"refusing to load the {RISK_TIER_MODEL} champion: {exc}") from exc
            # optional: a broken or untrusted risk-tier model must not stop order scoring
            log.warning("not using %s: %s", RISK_TIER_MODEL, exc)
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        screener = cls._screener(watchlist, state_dir)
        return cls(
            model, state_dir, screener=screener, risk_tier_model=risk_model, salt=salt,
            decision_log_key=decision_log_key, state_key=state_key, fast=fast, clock=clock,
        )  # fmt: skip

    @staticmethod
    def _screener(watchlist: Any, state_dir: Path) -> WatchlistScreener | None:
        if watchlist is None:
            stored = state_dir / "watchlist.parquet"
            if not stored.is_file():
                return None
            watchlist = stored
        if not isinstance(watchlist, pd.DataFrame):
            path = Path(watchlist)
            watchlist = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        return WatchlistScreener().fit(watchlist) if len(watchlist) else None

    def seed(self, data_dir: str | Path, source: str = "kycrisk") -> dict[str, int]:
        """Load customers (with their onboarding screening) and replay the history into the feature state.

        Args:
            data_dir: a data folder meeting the contracts (``kycrisk generate`` output).
            source: input layout (``kycrisk`` or ``fdh``).

        Returns:
            Counts: ``customers``, ``transactions``, ``account_events``, ``labels`` applied.
        """
        from features.assemble import screen_customers
        from features.io import load_valid_dataset

        tables = dict(load_valid_dataset(Path(data_dir), source=source))
        customers = tables["customers"]
        watchlist = tables.get("watchlist")
        if watchlist is not None and len(watchlist):
            target = self.state_dir / "watchlist.parquet"
            watchlist.to_parquet(target)
            self.screener = WatchlistScreener().fit(watchlist)
        screening = screen_customers(customers, self.screener) if self.screener is not None else None
        rows = []
        for rec in customers.to_dict("records"):
            screen = screening.loc[rec["customer_id"]].to_dict() if screening is not None else {}
            rows.append((rec, screen))
        self.profiles.put_many(rows)
        if self.fast:
            self.warm_profiles()
        counts = {"customers": len(rows), "transactions": 0, "account_events": 0, "labels": 0}
        with self._lock:
            self._customers = None  # rebuilt from the profile store on the next onboarding
            # The raw rows the risk-tier model's customer behaviour reads (bulk, idempotent by id).
            self.history.add_transactions(tables["transactions"])
            for name, add in (
                ("account_events", self.history.add_account_events),
                ("labels", self.history.add_labels),
            ):
                if tables.get(name) is not None:
                    add(tables[name])
            events = event_log(tables)
            if self.features.empty:
                # the bulk path: the same state as event by event (tested), 8x faster, and one
                # sqlite transaction (all or nothing) so no fsync needs turning off
                counts.update(self.features.bulk_apply(events))
            else:
                # seeding on top of an existing state: event by event, duplicates ignored. A bulk
                # load that is simply redone if it fails: skip the per-event fsync meanwhile.
                conn = self.features._conn
                conn.execute("PRAGMA synchronous=OFF")
                try:
                    self._replay(events, counts)
                finally:
                    conn.execute("PRAGMA synchronous=NORMAL")
        return counts

    def _replay(self, events: Iterable[tuple[str, Mapping[str, Any]]], counts: dict[str, int]) -> None:
        for kind, rec in events:
            if kind == "transaction":
                counts["transactions"] += self.features.apply_transaction(rec)
            elif kind == "account_event":
                counts["account_events"] += self.features.apply_account_event(rec)
            else:
                counts["labels"] += self.features.apply_label(rec)

    def close(self) -> None:
        """Close the sqlite files (the state is already on disk)."""
        self.journal.flush_done()
        self.journal.close()
        self.features.close()
        self.profiles.close()
        self.history.close()
        self.decisions.close()

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

    # The fast path: the Pipeline's own fitted steps, applied to one order as dicts ------------

    def _init_fast(self) -> bool:
        """Check the Pipeline has the shape the fast path reproduces; remember what it needs."""
        from feature_engine.encoding import OrdinalEncoder
        from feature_engine.selection import DropFeatures
        from sklearn.calibration import CalibratedClassifierCV

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
        self._profile_steps = {p: self.pipeline.named_steps[f"{p}_profile"] for p in ("buyer", "seller")}
        risk = self.pipeline.named_steps["event_risk"]
        self._country_risk, self._goods_risk = risk.country_risk_, risk.goods_risk_
        encoder = self.pipeline[4]
        self._codes = {var: dict(codes) for var, codes in encoder.encoder_dict_.items()}
        # a missing category is "unseen" (-1) unless the encoder learnt a code for NaN
        self._missing_code = {
            var: next((code for key, code in codes.items() if isinstance(key, float) and math.isnan(key)), -1)
            for var, codes in self._codes.items()
        }
        self._prepared_columns = list(encoder.feature_names_in_)
        self._calibrators = [_calibration_function(cc.calibrators[0]) for cc in final.calibrated_classifiers_]
        # sklearn calibrates decision_function when the estimator has one (LightGBM 4.7: the raw
        # score in log-odds), else the positive-class probability
        self._calibrate_raw = all(
            hasattr(cc.estimator, "decision_function") for cc in final.calibrated_classifiers_
        )
        self._profile_columns = [
            c for c in (*PROFILE_COLUMNS, *OPTIONAL_PROFILE_COLUMNS) if f"buyer_{c}" in self.input_columns
        ]
        return True

    def _static_profiles(self, party: str, items: list[tuple[str, int, dict[str, Any]]]) -> None:
        """Run the fitted profile step once on many customers and cache its time-independent outputs."""
        if not items:
            return
        reference = pd.Timestamp("2000-01-01", tz="UTC")  # any time: only time-independent outputs are kept
        frame = pd.DataFrame(
            [{f"{party}_{c}": profile.get(c) for c in self._profile_columns} for _, _, profile in items]
        )
        frame[fraud.TIME_COLUMN] = reference
        out = self._profile_steps[party].transform(fraud.categoricals_as_text(frame))
        dynamic = {f"{party}_{n}" for n in TIME_DEPENDENT} | {fraud.TIME_COLUMN}
        keep = [c for c in out.columns if c not in dynamic]
        cached = []
        for (cid, version, profile), values in zip(
            items, out[keep].itertuples(index=False, name=None), strict=True
        ):
            static = dict(zip(keep, values, strict=True))
            times = {c: _us(profile.get(c)) for c in TIMES}
            cached.append(((party, cid, version), (static, times)))
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

    def _party_features(
        self, party: str, cid: str, field: str, t: int, history: Mapping[str, float]
    ) -> tuple[dict, dict]:
        found = self.profiles.get(cid)
        if found is None:
            raise UnknownCustomer(f"{field} {cid!r} is not a known customer: onboard it first", field)
        version, profile, screen = found
        key = (party, cid, version)
        if key not in self._party_cache:
            self._static_profiles(party, [(cid, version, profile)])
        static, times = self._party_cache[key]
        p = f"{party}_"
        out = dict(static)
        out[p + "age_years"] = _span(t, times["birth_date"], US_PER_YEAR)
        out[p + "account_age_days"] = _span(t, times["onboarded_at"], US_PER_DAY)
        expiry = times["document_expiry"]
        out[p + "doc_expired"] = math.nan if expiry is None else float(expiry <= t)
        out[p + "doc_days_to_expiry"] = _span(expiry, t, US_PER_DAY)
        # as features.profile: a review recorded after the event falls back to onboarding
        review = times["last_kyc_review_at"]
        review = review if review is not None and review <= t else times["onboarded_at"]
        out[p + "days_since_kyc_review"] = _span(t, review, US_PER_DAY)
        activity = f"{party}_amount_sum_30d"
        if activity in history:
            declared = _num(static.get(p + "declared_monthly_volume_usd"))
            out[p + "volume_vs_declared"] = float(history[activity]) / declared if declared > 0 else math.nan
        out[p + "email_age_days"] = _span(t, times["email_first_seen_at"], US_PER_DAY)
        out[p + "business_age_days"] = _span(t, times["business_registered_at"], US_PER_DAY)
        out[p + "screen_score"] = _num(screen.get("screen_score"))
        for c in ("screen_status", "screen_list_type", "screen_dob_match"):
            out[p + c] = _text(screen.get(c))
        return out, screen

    def prepared_fast(
        self, event: Mapping[str, Any], history: Mapping[str, float]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model features of one order (what ``fraud.model_features`` gives) without pandas.

        Returns:
            ``(features, raw)``: the model features by name, in the Pipeline's order, and the
            request values that make reason sentences specific (countries, screening entries).
        """
        t = _us(event["occurred_at"])
        row: dict[str, Any] = {c: _text(event.get(c)) for c in ("currency", "goods_category", "payment_method",
                                                                 "buyer_country", "seller_country", "ip_country")}  # fmt: skip
        row["quantity"] = event.get("quantity")
        row.update(history)
        raw: dict[str, Any] = {}
        for party in ("buyer", "seller"):
            field = f"{party}_id"
            values, screen = self._party_features(party, event[field], field, t, history)
            row.update(values)
            raw[f"{party}_screen_entry_id"] = screen.get("screen_entry_id")
        for column in ("ip_country", "buyer_country", "seller_country"):
            value = row[column]
            row[f"{column}_risk"] = (
                _num(self._country_risk.get(value)) if isinstance(value, str) else math.nan
            )
        goods = row["goods_category"]
        row["goods_category_risk"] = _num(self._goods_risk.get(goods)) if isinstance(goods, str) else math.nan
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
        names = self.explainer.feature_names
        x = np.empty((1, len(names)), dtype=np.float64)
        for i, name in enumerate(names):
            value = features[name]
            codes = self._codes.get(name)
            if codes is not None:
                # feature-engine's OrdinalEncoder (unseen="encode"): unseen categories -1, and so is
                # a missing one (the text conversion leaves NaN, which was never a category)
                x[0, i] = codes.get(value, -1) if isinstance(value, str) else self._missing_code[name]
            else:
                x[0, i] = _num(value)
        return x

    def _calibrated_rows(self, x: np.ndarray) -> np.ndarray:
        """``_calibrated`` for many rows at once (the same arithmetic row by row)."""
        p = self.explainer.booster.predict(x, raw_score=self._calibrate_raw, num_threads=1)
        total = np.zeros(len(x), dtype=np.float64)
        for calibrate in self._calibrators:
            total += np.asarray(calibrate(p), dtype=np.float64)
        return total / len(self._calibrators)

    def _calibrated(self, x: np.ndarray) -> float:
        # CalibratedClassifierCV.predict_proba for a binary model: the mean over its calibrated
        # classifiers of calibrator.predict(LightGBM's decision_function, or its probability)
        p = self.explainer.booster.predict(x, raw_score=self._calibrate_raw, num_threads=1)
        total = 0.0
        for calibrate in self._calibrators:
            total += float(calibrate(p)[0])
        return total / len(self._calibrators)

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
        self._finish(effects, [staged], box[0])
        # answered from the decision itself: the log stores exactly these values (its JSON
        # round-trips every float), so there is no need to decode what was just written
        return ScoreResponse(
            decision_id=receipt.decision_id,
            transaction_id=event["transaction_id"],
            fraud_probability=float(decided["score"]),
            risk_tier=decided["tier"],
            action=decided["action"],
            reasons=self._reasons(decided["reasons"]),
            models=dict(decided["models"]),
            feature_set=decided["feature_set"],
            policy_version=decided["policy_version"],
        )

    def _prepare_order(self, event: Mapping[str, Any], where: str) -> tuple:
        try:
            return self.features.prepare(event)
        except ValueError as exc:
            raise ScorerError(str(exc), where + "amount") from exc

    def _finish(self, effects: Mapping[str, Any], staged: list, outbox_id: int) -> None:
        """After the commit: the effects to the stores. A failure here loses nothing (the outbox has
        them); memory, ahead of disk, is rebuilt and the outbox re-applied."""
        try:
            self.commit.finish(effects, staged, outbox_id)
        except Exception:
            log.exception("writing a committed request to the stores failed: rebuilding from the outbox")
            self.commit.failed()
        else:
            self.commit.leave()

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
            self._finish(effects, staged, box[0])
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

    @staticmethod
    def _reasons(reasons: list[dict[str, Any]]) -> list[Reason]:
        return [Reason.model_validate({k: v for k, v in r.items() if k in _REASON_FIELDS}) for r in reasons]

    def _response(self, record: DecisionRecord, transaction_id: str) -> ScoreResponse:
        return ScoreResponse(
            decision_id=record.decision_id,
            transaction_id=transaction_id,
            fraud_probability=float(record.score),
            risk_tier=record.tier,
            action=record.action,
            reasons=self._reasons(record.reasons),
            models=dict(record.models),
            feature_set=record.feature_set,
            policy_version=record.policy_version,
        )

    # -- onboarding ---------------------------------------------------------------------------

    def onboard(self, profile: Profile | Mapping[str, Any]) -> OnboardResponse:
        """Screen a profile, decide its tier and action, store it (new version) and log the decision.

        The tier comes from the ``kycrisk-risk-tier`` champion when one is loaded (``onboard_risk``);
        otherwise from the hard rules (watchlist, documents) and a simple score (the highest of
        nationality, residence, phone-country and industry risk), which the reasons say
        (``RULES_ONLY``).
        """
        profile = profile if isinstance(profile, Profile) else Profile.model_validate(profile)
        self._check_profile_times(profile)
        if self._risk is not None:
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
                "message": f"The risk-tier model ({RISK_TIER_MODEL}) is not in service"
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
                reasons=self._reasons(reasons),
                screening=Screening.from_columns(screening),
                models=models,
                profile_version=version,
                feature_set=feature_set if models else None,
                policy_version=policy_version if models else None,
                as_of=None if as_of is None else as_of.to_pydatetime(),
            ),
        )

    # Profile times that cannot lie ahead of the service clock (the schema bounds them by the
    # contract's static ranges; "now" is the clock's, which may be simulated).
    _PAST_FIELDS = ("birth_date", "business_registered_at", "onboarded_at", "last_kyc_review_at",
                    "email_first_seen_at")  # fmt: skip

    def _check_profile_times(self, profile: Profile) -> None:
        for field in self._PAST_FIELDS:
            self.clock.check(getattr(profile, field), field)

    def _commit_onboarding(
        self,
        profile: Profile,
        fields: dict[str, Any],
        stored: tuple[dict[str, Any], dict[str, Any]],
        respond: Any,
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
        rec, screen = stored
        try:  # what the profile store would refuse must be refused before the decision is logged
            check_profile(profile.customer_id, {c: _timestamp(_plain(rec.get(c))) for c in CUSTOMER_COLUMNS})
            check_screening({c: screen.get(c) for c in SCREEN_COLUMNS})
        except ProfileRowError as exc:
            column = str(exc).split(" ", 1)[0]
            raise ScorerError(str(exc), column if column in CUSTOMER_COLUMNS else None) from None
        entry = self.commit.entry(f"onboard:{profile.customer_id}", profile.model_dump(mode="json"))
        if self.commit.claim([entry], [""], strict=False):
            answer = self.journal.response(entry.key)
            return OnboardResponse.model_validate({**answer, "replayed": True})
        # enter before the lock, and repair (``failed``) after it: a repair waits for every request
        # between staging and finishing, some of which may be waiting for this lock
        self.commit.enter()
        committed = finished = False
        try:
            with self._lock:  # one version at a time: the answer names the version it creates
                current = self.profiles.get(profile.customer_id)
                response = respond(new_decision_id(), 1 if current is None else current[0] + 1)
                effects = RequestCommit.effects(profiles=[stored])
                box: list[int] = []
                self.decisions.append_receipt(
                    {**fields, "decision_id": response.decision_id},
                    journal=self.journal.writer(
                        [(entry, 0)], effects, box, response=response.model_dump(mode="json")
                    ),
                )
                committed = True
                try:
                    self.commit.finish(effects, [], box[0])
                    finished = True
                except Exception:  # committed: the outbox has it; repaired below, outside the lock
                    log.exception("writing a committed onboarding to the stores failed: rebuilding")
        except BaseException:
            if not committed:
                self.commit.leave()  # nothing committed, nothing staged
            raise
        finally:
            self.commit.release([entry])
        if finished:
            self.commit.leave()
        else:
            self.commit.failed()
        return response

    def _put_profiles(self, rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
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
        if self._customers is not None:  # the profile links' universe, for onboarding
            table = self._customers
            ids = {str(rec["customer_id"]) for rec, _ in fresh}
            mine = self._profiles_frame([dict(rec) for rec, _ in fresh])
            self._customers = pd.concat(
                [table[~table["customer_id"].isin(ids).to_numpy()], mine], ignore_index=True
            )

    # -- onboarding with the risk-tier model --------------------------------------------------

    @staticmethod
    def _profiles_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
        """Stored profiles as a ``customers`` table (contract column types) for ``features.customer``."""
        frame = pd.DataFrame(list(records), columns=list(CUSTOMER_COLUMNS))
        for column in frame.columns:
            if column in TIMES:
                frame[column] = pd.to_datetime(frame[column], utc=True)
            elif column == "declared_monthly_volume_usd":
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            elif column == "twofa_enabled":
                frame[column] = frame[column].astype("boolean")
            else:
                frame[column] = frame[column].astype("str")
        return frame

    def _customers_with(self, rec: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Every stored profile with ``rec`` as its customer's current one (the profile links' universe).

        Returns:
            ``(customers, mine)``: that table and ``rec``'s own one-row table.
        """
        with self._lock:
            if self._customers is None:
                self._customers = self._profiles_frame(p for _, p, _ in list(self.profiles._cache.values()))
            table = self._customers
        mine = self._profiles_frame([rec])
        others = table[(table["customer_id"] != rec["customer_id"]).to_numpy()]
        return pd.concat([others, mine], ignore_index=True), mine

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
        customers, mine = self._customers_with(rec)
        rows = self.history.rows_for(cid, customers)
        behaviour = customer_behaviour(
            snapshots,
            rows["transactions"],
            rows["account_events"],
            rows["labels"],
            customers=rows["customers"],
        )
        if screening is None and self.screener is not None:
            screening = self._screen_at(rec, as_of)
        if screening is not None:
            screening = screening.set_axis(snapshots.index)
        frame = customer_frame(rows["customers"], snapshots, behaviour, screening)
        columns = self._risk.columns
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
        r = self._risk
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
        message = risk.review_rule_message(code, self._risk.review_rules["outgrown_volume_ratio"])
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
        if self._risk is None:
            raise ModelUnavailable(f"no {RISK_TIER_MODEL} model is loaded: onboarding decides by rules")
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
        r = self._risk
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

    # -- events and decisions -----------------------------------------------------------------

    def apply_events(self, events: Iterable[AccountEvent | Label | Mapping[str, Any]]) -> dict[str, int]:
        """Apply account events and labels to the feature state and the customer history: all or none.

        Every event is checked first (schema, the service clock, the state's allowed lateness for
        every account event, ids twice in the request, earlier requests with the same id), so a
        refused event refuses the request and nothing changes; then all of them are applied and
        committed in one journal write (``serving.commit``). Every accepted event is also kept in the
        customer history (the risk-tier model reads customer labels and account events that no
        order feature uses).

        Returns:
            ``{"applied": n, "ignored": m, "replayed": r}``: events that changed the feature state,
            the others (duplicates, events it does not use such as labels of customers), and among
            those the retries of events applied before with an identical body.

        Raises:
            pydantic.ValidationError: an invalid event (``events[i]...``).
            ScorerError: a refused event, its field named ``events[i].<field>``.
            IdempotencyConflict: an event id applied before with another body.
        """
        parsed: list[AccountEvent | Label] = []
        seen: set[str] = set()
        for i, event in enumerate(events):
            if isinstance(event, Mapping):
                kind = event.get("kind", "account_event")
                event = (Label if kind == "label" else AccountEvent).model_validate(event)
            # a far-future event would make every later one "late": refuse the request up front
            id_field = "label_id" if isinstance(event, Label) else "event_id"
            time_field = "known_at" if isinstance(event, Label) else "occurred_at"
            self.clock.check(getattr(event, time_field), f"events[{i}].{time_field}")
            key = f"{event.kind}:{getattr(event, id_field)}"
            if key in seen:
                raise ScorerError(
                    f"{id_field} {getattr(event, id_field)!r} appears twice", f"events[{i}].{id_field}"
                )
            seen.add(key)
            parsed.append(event)
        account = [(i, e) for i, e in enumerate(parsed) if isinstance(e, AccountEvent)]
        try:  # every account event, of a type the features read or not (the history keeps it)
            self.features.check_lateness((e.occurred_at for _, e in account), what="account event")
        except LateEventError as exc:
            raise ScorerError(str(exc), f"events[{account[exc.index][0]}].occurred_at") from exc
        entries = [
            self.commit.entry(
                f"{e.kind}:{e.label_id if isinstance(e, Label) else e.event_id}", e.model_dump(mode="json")
            )
            for e in parsed
        ]
        done = self.commit.claim(entries, [f"events[{i}]." for i in range(len(parsed))])
        new = [i for i in range(len(parsed)) if i not in done]
        if not new:
            return {"applied": 0, "ignored": len(done), "replayed": len(done)}
        claimed = [entries[i] for i in new]
        recs = {i: parsed[i].model_dump(exclude={"kind"}) for i in new}
        self.commit.enter()
        staged = []
        try:
            with self._lock:
                for i in new:
                    try:
                        if isinstance(parsed[i], Label):
                            staged.append(self.features.stage_label(recs[i]))
                        else:
                            staged.append(self.features.stage_account_event(recs[i]))
                    except ValueError as exc:
                        raise ScorerError(str(exc), f"events[{i}].occurred_at") from exc
            effects = RequestCommit.effects(
                account_events=[recs[i] for i in new if isinstance(parsed[i], AccountEvent)],
                labels=[recs[i] for i in new if isinstance(parsed[i], Label)],
            )
            box: list[int] = []
            self.decisions.append_many(
                [], journal=self.journal.writer([(e, None) for e in claimed], effects, box)
            )
        except BaseException:
            self.commit.release(claimed)
            if any(w is not None for w in staged):
                self.commit.failed()
            else:
                self.commit.leave()
            raise
        self.commit.release(claimed)
        self._finish(effects, staged, box[0])
        applied = sum(w is not None for w in staged)
        return {"applied": applied, "ignored": len(parsed) - applied, "replayed": len(done)}

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        """The logged decision, or None."""
        return self.decisions.get(decision_id)


# Frame columns (no personal data) that make onboarding reason sentences specific.
_RAW_SNAPSHOT_COLUMNS = ("customer_nationality", "customer_residence_country", "customer_industry")


@dataclasses.dataclass(frozen=True)
class _RiskTier:
    """What onboarding needs of the risk-tier champion, read once from its metadata."""

    model: tracking.LoadedModel
    policy: TierPolicy
    n_prepare: int
    feature_set: str
    review_rules: dict[str, float]
    explainer: Explainer
    columns: list[str]

    @classmethod
    def load(cls, model: tracking.LoadedModel) -> _RiskTier | None:
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


def timed_scores(scorer: Scorer, orders: list[Mapping[str, Any]]) -> dict[str, float]:
    """Score orders one by one and report latency percentiles in milliseconds (``p50``, ``p99``, ``max``)."""
    times = []
    for order in orders:
        started = time.perf_counter()
        scorer.score(order)
        times.append((time.perf_counter() - started) * 1000)
    arr = np.asarray(times)
    return {
        "n": len(arr),
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }


__all__ = [
    "Clock",
    "IdempotencyConflict",
    "ModelUnavailable",
    "ProfileStore",
    "Scorer",
    "ScorerError",
    "UnknownCustomer",
    "timed_scores",
]
