"""Row-level KYC profile features of an event's parties, as scikit-learn transformers.

The transformers read a party's profile columns (joined onto each event with a ``buyer_`` or
``seller_`` prefix by ``features.assemble``) and the event time, and derive what a KYC analyst
looks at: ages, document validity at the time of the event, how stale the last KYC review is,
whether the name matches the e-mail, free-mail domains, country risk and country mismatches,
business age and industry risk, 2FA. Reference tables (country and industry risk, free-mail
domains) are copied into fitted attributes, so a logged model never reads ``data/`` again.

Raw personal data (names, e-mails, phones, addresses, document numbers) is dropped after use:
the model never sees it.

Each transformer has ``transform`` (a frame: training, the pandas route of the service) and
``transform_record`` (one record as a dict: the service's row path) on the same formulas, so the
two cannot drift; ``tests/serving/test_scorer.py`` checks them equal on the champion, order by order.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features import documents
from features.profile_values import (
    as_utc,
    flags_as_float,
    mismatch,
    name_email_similarity,
    per_value,
    phone_country,
)
from features.reasons import FeatureReason, Renderer, as_int, binary, days, money, risk_level, times
from features.reference import load_reference
from features.units import US_PER_DAY, US_PER_YEAR  # integer microseconds, for one record's arithmetic

DAY = pd.Timedelta(days=1)
YEAR = 365.25 * DAY  # ages in years of 365.25 days
CHECK_DIGIT_DOCUMENTS = ("passport", "national_id")
# Profile columns a party must carry (after the party prefix) for the transformer to run.
PROFILE_COLUMNS = (
    "customer_type",
    "full_name",
    "birth_date",
    "email",
    "phone",
    "address",
    "nationality",
    "residence_country",
    "document_type",
    "document_number",
    "document_country",
    "document_expiry",
    "business_registered_at",
    "industry",
    "twofa_enabled",
    "onboarded_at",
    "last_kyc_review_at",
    "declared_monthly_volume_usd",
)
OPTIONAL_PROFILE_COLUMNS = ("email_first_seen_at",)
PERSONAL_COLUMNS = (
    "full_name",
    "birth_date",
    "email",
    "email_first_seen_at",
    "phone",
    "address",
    "document_number",
    "business_registration_number",
)
# Profile dates and the document type: read, then dropped (with PERSONAL_COLUMNS when drop_personal).
DROPPED = (
    "birth_date", "document_expiry", "business_registered_at", "onboarded_at",
    "last_kyc_review_at", "twofa_enabled", "document_type",
)  # fmt: skip
# The profile times the time-dependent outputs read.
TIMES = (
    "birth_date", "onboarded_at", "document_expiry", "last_kyc_review_at", "email_first_seen_at",
    "business_registered_at",
)  # fmt: skip
# Output columns (after the party prefix), in the order transform adds them (the model's order).
OUTPUTS = (
    "age_years", "account_age_days", "doc_present", "doc_check_digit_valid", "doc_typo_likely",
    "doc_expired", "doc_days_to_expiry", "doc_country_mismatch", "days_since_kyc_review",
    "volume_vs_declared", "name_email_similarity", "email_free_domain", "email_age_days",
    "nationality_risk", "residence_risk", "phone_country_risk", "phone_residence_mismatch",
    "nationality_residence_mismatch", "business_age_days", "industry_risk", "twofa_at_onboarding",
)  # fmt: skip
# The outputs that depend on the event time; every other output depends on the profile alone.
TIME_DEPENDENT = (
    "age_years", "account_age_days", "doc_expired", "doc_days_to_expiry", "days_since_kyc_review",
    "email_age_days", "business_age_days", "volume_vs_declared",
)  # fmt: skip


class ProfileState(NamedTuple):
    """What one record's profile outputs need besides the event: computed once per profile.

    ``static``: the time-independent output columns and the kept profile columns (prefixed);
    ``times``: the party's ``TIMES`` as integer microseconds (None when missing); ``declared``:
    the declared monthly volume (USD, NaN when missing).
    """

    static: dict[str, Any]
    times: dict[str, int | None]
    declared: float


def _country_risk_table() -> dict[str, float]:
    table = load_reference("countries")
    return dict(zip(table["iso2"], table["risk_score"].astype(float), strict=True))


def _industry_risk_table() -> dict[str, float]:
    table = load_reference("industries")
    return dict(zip(table["industry"], table["risk_score"].astype(float), strict=True))


def _free_email_domains() -> frozenset[str]:
    return frozenset(load_reference("free_email_domains")["domain"].str.lower())


def _record_us(value: Any) -> int | None:
    """A time of one record as integer microseconds since the epoch (None when missing)."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        return None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value) // 1000  # .value is nanoseconds whatever the unit


@functools.cache
def _dropped_columns(party: str, drop_personal: bool) -> tuple[str, ...]:
    return tuple(f"{party}_{c}" for c in (*DROPPED, *(PERSONAL_COLUMNS if drop_personal else ())))


class _Columns:
    """The arithmetic of the time-dependent formulas on whole columns (pandas, times as datetimes)."""

    day, year = DAY, YEAR

    def __init__(self, index: pd.Index):
        self.index = index

    def span(self, later: Any, earlier: Any, unit: pd.Timedelta) -> pd.Series:
        if later is None or earlier is None:
            return pd.Series(np.nan, index=self.index)
        return (later - earlier) / unit

    @staticmethod
    def not_after(when: pd.Series, t: pd.Series) -> pd.Series:
        return (when <= t).astype("float64").where(when.notna())

    @staticmethod
    def known_at(when: pd.Series, t: pd.Series, otherwise: pd.Series) -> pd.Series:
        return when.where(when <= t, otherwise)

    @staticmethod
    def per_positive(value: pd.Series, base: pd.Series) -> pd.Series:
        return value.astype("float64") / base.where(base > 0)

    @staticmethod
    def lookup(values: pd.Series, table: Mapping[Any, float]) -> np.ndarray:
        return per_value(values, lambda distinct: distinct.map(table).astype("float64"))


class _Record:
    """The same arithmetic on one record (Python numbers, times as integer microseconds or None).

    ``float(us) / float(unit)`` is what pandas computes for ``datetime64[us]`` differences divided by
    a Timedelta (both exact in float64, so the quotient is the correctly rounded one).
    """

    day, year = float(US_PER_DAY), float(US_PER_YEAR)

    @staticmethod
    def span(later: int | None, earlier: int | None, unit: float) -> float:
        if later is None or earlier is None:
            return math.nan
        return float(later - earlier) / unit

    @staticmethod
    def not_after(when: int | None, t: int) -> float:
        return math.nan if when is None else float(when <= t)

    @staticmethod
    def known_at(when: int | None, t: int, otherwise: int | None) -> int | None:
        return when if when is not None and when <= t else otherwise

    @staticmethod
    def per_positive(value: float, base: float) -> float:
        return float(value) / base if base > 0 else math.nan

    @staticmethod
    def lookup(value: Any, table: Mapping[Any, float]) -> float:
        return float(table.get(value, math.nan)) if isinstance(value, str) else math.nan


def _time_dependent(
    ops: Any, t: Any, times: Mapping[str, Any], activity: Any, declared: Any
) -> dict[str, Any]:
    """The outputs that depend on the event time, written once for columns and for one record.

    Args:
        ops: ``_Columns`` (``transform``) or ``_Record`` (``transform_record``).
        t: the event time; ``times``: the party's ``TIMES`` (None when absent); ``activity``: the
            party's ``amount_sum_30d`` history feature (None when not an input); ``declared``: its
            declared monthly volume (USD, float).

    Returns:
        Output name (without the party prefix) -> value, for ``TIME_DEPENDENT`` names.
    """
    out = {
        "age_years": ops.span(t, times["birth_date"], ops.year),
        "account_age_days": ops.span(t, times["onboarded_at"], ops.day),
        "doc_expired": ops.not_after(times["document_expiry"], t),
        "doc_days_to_expiry": ops.span(times["document_expiry"], t, ops.day),
        # A review recorded after the event was not known at the event: fall back to onboarding,
        # which counts as the first review (point in time).
        "days_since_kyc_review": ops.span(
            t, ops.known_at(times["last_kyc_review_at"], t, times["onboarded_at"]), ops.day
        ),
        "email_age_days": ops.span(t, times["email_first_seen_at"], ops.day),
        "business_age_days": ops.span(t, times["business_registered_at"], ops.day),
    }
    if activity is not None:
        # Recent activity against the volume declared at the last review (outgrown KYC).
        out["volume_vs_declared"] = ops.per_positive(activity, declared)
    return out


class PartyProfileFeatures(TransformerMixin, BaseEstimator):
    """KYC profile features of one party (buyer or seller) at the time of each event.

    Args:
        party: column prefix of the party: ``"buyer"`` or ``"seller"`` for an order's parties,
            ``"customer"`` for a customer snapshot.
        time_column: the event time the profile is evaluated at (age, expiry, staleness).
        drop_personal: drop the party's raw personal columns after use.

    Output columns (added, each prefixed ``{party}_``, in the order of ``OUTPUTS``): ``age_years``,
    ``account_age_days``, ``doc_present``, ``doc_check_digit_valid``, ``doc_typo_likely``,
    ``doc_expired``, ``doc_days_to_expiry``, ``doc_country_mismatch``, ``days_since_kyc_review``,
    ``volume_vs_declared`` (the party's ``{party}_amount_sum_30d`` history feature over the declared
    monthly volume, only when that feature is in the input), ``name_email_similarity``,
    ``email_free_domain``, ``email_age_days``, ``nationality_risk``, ``residence_risk``,
    ``phone_country_risk``, ``phone_residence_mismatch``, ``nationality_residence_mismatch``,
    ``business_age_days``, ``industry_risk``, ``twofa_at_onboarding``. Dates and times of the
    profile are dropped (they would only teach the model the calendar); categorical profile
    columns are kept for the encoder.

    Two ways in, one set of formulas: ``transform`` on a frame, and ``transform_record`` on one
    record (the service's row path). The time-independent outputs are computed column-wise only
    (``profile_states`` runs them for the records, once per profile); the time-dependent ones are
    written once in ``_time_dependent`` over two arithmetic backends (``_Columns``, ``_Record``).
    """

    def __init__(self, party: str = "buyer", time_column: str = "occurred_at", drop_personal: bool = True):
        self.party = party
        self.time_column = time_column
        self.drop_personal = drop_personal

    def fit(self, X: pd.DataFrame, y=None):
        if not (isinstance(self.party, str) and self.party.isidentifier()):
            raise ValueError(
                f"party must be a column prefix such as 'buyer', 'seller' or 'customer', got {self.party!r}"
            )
        self._check_columns(X)
        self.country_risk_ = _country_risk_table()
        self.industry_risk_ = _industry_risk_table()
        self.free_email_domains_ = sorted(_free_email_domains())
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def _check_columns(self, X: pd.DataFrame, with_time: bool = True) -> None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"{type(self).__name__} expects a pandas DataFrame, got {type(X).__name__}")
        needed = [self.time_column] * with_time + [f"{self.party}_{c}" for c in PROFILE_COLUMNS]
        missing = [c for c in needed if c not in X.columns]
        if missing:
            raise ValueError(f"{type(self).__name__}({self.party}) is missing input columns: {missing}")

    def _dropped(self) -> tuple[str, ...]:
        return _dropped_columns(self.party, self.drop_personal)

    def _time_independent(self, X: pd.DataFrame) -> dict[str, Any]:
        """The outputs that depend on the profile alone (without the prefix), column-wise."""
        p = f"{self.party}_"
        col = lambda name: X[p + name]  # noqa: E731 - short local accessor keeps formulas readable
        out: dict[str, Any] = {}
        number = col("document_number")
        out["doc_present"] = number.notna().astype("float64")
        # Only passports and national ids carry an ICAO 9303 check digit.
        checkable = col("document_type").isin(CHECK_DIGIT_DOCUMENTS).to_numpy()
        for name, check in (
            ("doc_check_digit_valid", documents.check_digit_valid),
            ("doc_typo_likely", documents.transposition_typo),
        ):
            flags = per_value(number, lambda distinct, check=check: flags_as_float(check(distinct)))
            out[name] = np.where(checkable, flags, np.nan)
        out["doc_country_mismatch"] = mismatch(col("document_country"), col("nationality"))
        out["name_email_similarity"] = name_email_similarity(col("full_name"), col("email"))
        free = self.free_email_domains_

        def free_domain(emails: pd.Series) -> pd.Series:
            domain = emails.astype("str").str.extract(r"@([^@]+)$", expand=False).str.lower()
            return domain.isin(free).astype("float64").where(domain.notna())

        out["email_free_domain"] = per_value(col("email"), free_domain)
        phone_cc = phone_country(col("phone"))
        risk = self.country_risk_
        out["nationality_risk"] = _Columns.lookup(col("nationality"), risk)
        out["residence_risk"] = _Columns.lookup(col("residence_country"), risk)
        out["phone_country_risk"] = _Columns.lookup(phone_cc, risk)
        out["phone_residence_mismatch"] = mismatch(phone_cc, col("residence_country"))
        out["nationality_residence_mismatch"] = mismatch(col("nationality"), col("residence_country"))
        out["industry_risk"] = _Columns.lookup(col("industry"), self.industry_risk_)
        out["twofa_at_onboarding"] = col("twofa_enabled").astype("float64")
        return out

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The input without the party's dates and personal columns, plus the output columns.

        Only the added columns are new memory: the kept input columns are shared with ``X``
        (pandas copy-on-write), which is never modified.
        """
        check_is_fitted(self, "country_risk_")
        self._check_columns(X)
        p = f"{self.party}_"
        times = {c: as_utc(X[p + c]) if p + c in X.columns else None for c in TIMES}
        activity = X[p + "amount_sum_30d"] if p + "amount_sum_30d" in X.columns else None
        declared = X[p + "declared_monthly_volume_usd"].astype("float64")
        out = self._time_independent(X)
        out.update(_time_dependent(_Columns(X.index), as_utc(X[self.time_column]), times, activity, declared))
        added = pd.DataFrame(
            {p + name: np.asarray(out[name], dtype="float64") for name in OUTPUTS if name in out},
            index=X.index,
        )
        kept = X.drop(columns=[c for c in self._dropped() if c in X.columns])
        replaced = [c for c in added.columns if c in kept.columns]
        if replaced:  # an output already in the input keeps its place, as assignment would
            kept = kept.assign(**{c: added[c] for c in replaced})
            added = added.drop(columns=replaced)
        return pd.concat([kept, added], axis=1)

    def profile_states(self, X: pd.DataFrame) -> list[ProfileState]:
        """The time-independent part of ``transform_record``'s answer for each row of profiles.

        The service computes it once per customer and profile version and keeps it.

        Args:
            X: the party's profile columns (``{party}_`` + ``PROFILE_COLUMNS``, optional ones
                when present), encoded as the Pipeline's input is; no event time needed.

        Returns:
            One ``ProfileState`` per row, in order.
        """
        check_is_fitted(self, "country_risk_")
        self._check_columns(X, with_time=False)
        p = f"{self.party}_"
        out = self._time_independent(X)
        static = pd.DataFrame(
            {p + n: np.asarray(out[n], dtype="float64") for n in OUTPUTS if n in out}, index=X.index
        )
        drop = {*self._dropped(), self.time_column}
        kept = [c for c in X.columns if c not in drop and c not in static.columns]
        frame = pd.concat([X[kept], static], axis=1)
        columns = list(frame.columns)
        declared = X[p + "declared_monthly_volume_usd"].astype("float64").tolist()
        # a time beyond pandas' nanosecond range (year 2262) raises here: the service quarantines it
        times = [
            [_record_us(v) for v in X[p + c].tolist()] if p + c in X.columns else [None] * len(X)
            for c in TIMES
        ]
        return [
            ProfileState(dict(zip(columns, values, strict=True)), dict(zip(TIMES, stamps, strict=True)), d)
            for values, d, stamps in zip(
                frame.itertuples(index=False, name=None), declared, zip(*times, strict=True), strict=True
            )
        ]

    def transform_record(
        self, record: Mapping[str, Any], profile: ProfileState | None = None
    ) -> dict[str, Any]:
        """``transform`` of one record: the same output columns and values, as a dict.

        Args:
            record: the event's values by input column (the event time, the party's
                ``amount_sum_30d`` when it is an input, and the party's profile columns unless
                ``profile`` is given).
            profile: this party's ``profile_states`` entry, computed beforehand (the service's cache).

        Returns:
            The record without the party's dropped columns, plus the output columns.
        """
        p = f"{self.party}_"
        if profile is None:
            check_is_fitted(self, "country_risk_")
            columns = [p + c for c in (*PROFILE_COLUMNS, *OPTIONAL_PROFILE_COLUMNS) if p + c in record]
            profile = self.profile_states(pd.DataFrame([{c: record[c] for c in columns}]))[0]
        out = dict(record)
        for column in self._dropped():
            out.pop(column, None)
        out.update(profile.static)
        activity = record.get(p + "amount_sum_30d")
        timed = _time_dependent(
            _Record, _record_us(record[self.time_column]), profile.times, activity, profile.declared
        )
        for name, value in timed.items():
            out[p + name] = value
        return out


class EventRiskFeatures(TransformerMixin, BaseEstimator):
    """Country and goods risk of the event itself, from the committed reference tables.

    Output columns (added): ``ip_country_risk``, ``buyer_country_risk``, ``seller_country_risk``
    (FATF-based country risk, NaN when the country is unknown), ``goods_category_risk`` (0 low,
    0.33 medium, 0.67 high, 1 restricted; NaN for an unknown category).
    """

    GOODS_RISK = {"low": 0.0, "medium": 1 / 3, "high": 2 / 3, "restricted": 1.0}
    COLUMNS = ("ip_country", "buyer_country", "seller_country", "goods_category")
    # (output column, input column, fitted table): the whole step, read by transform and transform_record
    RISKS = (
        ("ip_country_risk", "ip_country", "country_risk_"),
        ("buyer_country_risk", "buyer_country", "country_risk_"),
        ("seller_country_risk", "seller_country", "country_risk_"),
        ("goods_category_risk", "goods_category", "goods_risk_"),
    )

    def fit(self, X: pd.DataFrame, y=None):
        self._check_columns(X)
        self.country_risk_ = _country_risk_table()
        goods = load_reference("goods_categories")
        self.goods_risk_ = {
            c: self.GOODS_RISK[r] for c, r in zip(goods["category"], goods["risk"], strict=True)
        }
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def _check_columns(self, X: pd.DataFrame) -> None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"{type(self).__name__} expects a pandas DataFrame, got {type(X).__name__}")
        missing = [c for c in self.COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"{type(self).__name__} is missing input columns: {missing}")

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The input plus the output columns (the input's columns are shared, never modified)."""
        check_is_fitted(self, "country_risk_")
        self._check_columns(X)
        return X.assign(
            **{
                name: pd.Series(_Columns.lookup(X[column], getattr(self, table)), index=X.index)
                for name, column, table in self.RISKS
            }
        )

    def transform_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``transform`` of one record (a dict of input columns): the record plus the output columns."""
        out = dict(record)
        for name, column, table in self.RISKS:
            out[name] = _Record.lookup(record[column], getattr(self, table))
        return out


# --- Reasons: the declaration of each profile and event-risk output's reason code and sentence ---
# (read by training.explain; a new output column above gets its entry here, in the same change)

PROFILE_CODES = {
    "CUSTOMER_AGE": "age of the customer",
    "NEW_ACCOUNT": "age of the customer's account",
    "DOC_MISSING": "no identity document on file",
    "DOC_INVALID": "document number failing its check digit",
    "DOC_TYPO_LIKELY": "document number with a likely typo (two adjacent characters swapped)",
    "DOC_EXPIRED": "identity document expired, or close to expiry, at the time of the order",
    "DOC_COUNTRY_MISMATCH": "document issued by a country other than the nationality",
    "STALE_KYC": "time since the last KYC review",
    "NAME_EMAIL_MISMATCH": "e-mail address unrelated to the customer's name",
    "FREE_EMAIL": "free e-mail provider",
    "NEW_EMAIL": "age of the e-mail address",
    "HIGH_RISK_COUNTRY": "country risk of nationality, residence or phone number",
    "COUNTRY_MISMATCH": "phone or nationality from a country other than the residence",
    "NEW_BUSINESS": "age of the registered business",
    "HIGH_RISK_INDUSTRY": "risk class of the declared industry",
    "NO_2FA": "no two-factor authentication at onboarding",
    "CUSTOMER_TYPE": "individual or business customer",
    "CUSTOMER_COUNTRY": "the customer's countries (nationality, residence, document)",
    "INDUSTRY": "declared industry",
    "VOLUME_VS_DECLARED": "activity compared with the monthly volume declared at the last KYC review",
    "RISKY_GOODS": "risk class of the goods category (restricted goods such as precursor chemicals highest)",
}


def _country_risk(party: str, what: str, raw_key: str) -> Renderer:
    def render(v: Any, raw: Mapping[str, Any]) -> str:
        country = raw.get(f"{party}_{raw_key}")
        where = f" ({country})" if isinstance(country, str) and country else ""
        level = risk_level(float(v), 0.8, 0.5)
        return f"the {party}'s {what}{where} is a {level}-risk country (risk score {float(v):.2f})"

    return render


def party_reasons(party: str, event: str = "the order") -> dict[str, FeatureReason]:
    """``PartyProfileFeatures(party)`` output suffix (after ``{party}_``) -> its reason.

    Also the raw categorical profile columns the model keeps (``customer_type``, ``role``,
    ``nationality``, ...). Times are said relative to ``event`` ("the order", "this decision").
    """
    the = f"the {party}'s"

    def doc_expiry(v: Any, raw: Mapping[str, Any]) -> str:
        d = float(v)
        if d < 0:
            return f"{the} identity document expired {days(-d)} before {event}"
        return f"{the} identity document expires {days(d)} after {event}"

    def name_email(v: Any, raw: Mapping[str, Any]) -> str:
        s = float(v)
        if s < 0.5:
            return f"{the} e-mail address does not resemble their name (similarity {100 * s:.0f}%)"
        return f"{the} e-mail address resembles their name (similarity {100 * s:.0f}%)"

    def industry_risk(v: Any, raw: Mapping[str, Any]) -> str:
        industry = raw.get(f"{party}_industry")
        where = f" ({industry})" if isinstance(industry, str) and industry else ""
        level = risk_level(float(v), 0.6, 0.3)
        return f"{the} declared industry{where} is {level} risk (risk score {float(v):.2f})"

    def category(code: str, subject: str, label: str) -> FeatureReason:
        return FeatureReason(code, subject, lambda v, raw: f"{the} {label} is {v}")

    def yes_no(code: str, subject: str, yes: str, no: str) -> FeatureReason:
        return FeatureReason(code, subject, binary(yes, no))

    return {
        "age_years": FeatureReason(
            "CUSTOMER_AGE", f"{the} age", lambda v, raw: f"the {party} is {as_int(v)} years old"
        ),
        "account_age_days": FeatureReason(
            "NEW_ACCOUNT",
            f"{the} account age",
            lambda v, raw: f"{the} account was opened {days(v)} before {event}",
        ),
        "doc_present": yes_no(
            "DOC_MISSING",
            f"whether {the} identity document is on file",
            f"{the} identity document is on file",
            f"no identity document on file for the {party}",
        ),
        "doc_check_digit_valid": yes_no(
            "DOC_INVALID",
            f"the check digit of {the} document number",
            f"{the} document number passes its check digit",
            f"{the} document number fails its check digit",
        ),
        "doc_typo_likely": yes_no(
            "DOC_TYPO_LIKELY",
            f"whether {the} document number has a typo",
            f"{the} document number looks like a typo (two adjacent characters swapped)",
            f"no typo pattern in {the} document number",
        ),
        "doc_expired": yes_no(
            "DOC_EXPIRED",
            f"whether {the} identity document had expired",
            f"{the} identity document had expired at the time of {event}",
            f"{the} identity document was valid at the time of {event}",
        ),
        "doc_days_to_expiry": FeatureReason(
            "DOC_EXPIRED", f"the expiry of {the} identity document", doc_expiry
        ),
        "doc_country_mismatch": yes_no(
            "DOC_COUNTRY_MISMATCH",
            f"whether {the} document country matches their nationality",
            f"{the} document was issued by a country other than their nationality",
            f"{the} document was issued by their country of nationality",
        ),
        "days_since_kyc_review": FeatureReason(
            "STALE_KYC",
            f"the time since {the} last KYC review",
            lambda v, raw: f"{the} last KYC review was {days(v)} before {event}",
        ),
        "name_email_similarity": FeatureReason(
            "NAME_EMAIL_MISMATCH", f"how well {the} e-mail matches their name", name_email
        ),
        "email_free_domain": yes_no(
            "FREE_EMAIL",
            f"whether {the} e-mail is from a free provider",
            f"{the} e-mail address is from a free provider",
            f"{the} e-mail address is not from a free provider",
        ),
        "email_age_days": FeatureReason(
            "NEW_EMAIL",
            f"the age of {the} e-mail address",
            lambda v, raw: f"{the} e-mail address was first seen {days(v)} before {event}",
        ),
        "nationality_risk": FeatureReason(
            "HIGH_RISK_COUNTRY",
            f"the risk of {the} nationality",
            _country_risk(party, "nationality", "nationality"),
        ),
        "residence_risk": FeatureReason(
            "HIGH_RISK_COUNTRY",
            f"the risk of {the} country of residence",
            _country_risk(party, "country of residence", "residence_country"),
        ),
        "phone_country_risk": FeatureReason(
            "HIGH_RISK_COUNTRY",
            f"the risk of {the} phone number's country",
            _country_risk(party, "phone number's country", "phone_country"),
        ),
        "phone_residence_mismatch": yes_no(
            "COUNTRY_MISMATCH",
            f"whether {the} phone number is from their country of residence",
            f"{the} phone number is from a country other than their residence",
            f"{the} phone number is from their country of residence",
        ),
        "nationality_residence_mismatch": yes_no(
            "COUNTRY_MISMATCH",
            f"whether the {party} lives in their country of nationality",
            f"the {party} lives outside their country of nationality",
            f"the {party} lives in their country of nationality",
        ),
        "business_age_days": FeatureReason(
            "NEW_BUSINESS",
            f"the age of {the} business",
            lambda v, raw: f"{the} business was registered {days(v)} before {event}",
        ),
        "industry_risk": FeatureReason("HIGH_RISK_INDUSTRY", f"the risk of {the} industry", industry_risk),
        "twofa_at_onboarding": yes_no(
            "NO_2FA",
            f"whether the {party} had two-factor authentication at onboarding",
            f"the {party} had two-factor authentication at onboarding",
            f"the {party} had no two-factor authentication at onboarding",
        ),
        "customer_type": category("CUSTOMER_TYPE", f"{the} customer type", "customer type"),
        "role": category("CUSTOMER_TYPE", f"{the} role", "role"),
        "nationality": category("CUSTOMER_COUNTRY", f"{the} nationality", "nationality"),
        "residence_country": category(
            "CUSTOMER_COUNTRY", f"{the} country of residence", "country of residence"
        ),
        "document_country": category("CUSTOMER_COUNTRY", f"{the} document country", "document country"),
        "industry": category("INDUSTRY", f"{the} declared industry", "declared industry"),
        "volume_vs_declared": FeatureReason(
            "VOLUME_VS_DECLARED",
            f"{the} 30-day volume against the monthly volume declared at KYC",
            lambda v, raw: (
                f"{the} volume in the 30 days before {event} is {times(v)} the monthly volume declared at KYC"
            ),
        ),
        "declared_monthly_volume_usd": FeatureReason(
            "VOLUME_VS_DECLARED",
            f"the monthly volume the {party} declared at KYC",
            lambda v, raw: f"the {party} declared a monthly volume of {money(v)} at KYC",
        ),
    }


def _event_country_risk(what: str, raw_key: str) -> Renderer:
    def render(v: Any, raw: Mapping[str, Any]) -> str:
        country = raw.get(raw_key)
        where = f" ({country})" if isinstance(country, str) and country else ""
        level = risk_level(float(v), 0.8, 0.5)
        return f"the {what}{where} is a {level}-risk country (risk score {float(v):.2f})"

    return render


def _goods_risk(v: Any, raw: Mapping[str, Any]) -> str:
    level = {0.0: "a low-risk", 1.0: "a restricted"}.get(
        round(float(v), 2), "a high-risk" if float(v) > 0.5 else "a medium-risk"
    )
    return f"the goods ({raw.get('goods_category') or 'this category'}) are {level} category"


# ``EventRiskFeatures`` output column -> its reason.
EVENT_RISK_REASONS: dict[str, FeatureReason] = {
    "goods_category_risk": FeatureReason("RISKY_GOODS", "the risk class of the goods category", _goods_risk),
    "ip_country_risk": FeatureReason(
        "HIGH_RISK_COUNTRY",
        "the risk of the IP address's country",
        _event_country_risk("IP address's country", "ip_country"),
    ),
    "buyer_country_risk": FeatureReason(
        "HIGH_RISK_COUNTRY",
        "the risk of the country the goods ship to",
        _event_country_risk("country the goods ship to", "buyer_country"),
    ),
    "seller_country_risk": FeatureReason(
        "HIGH_RISK_COUNTRY",
        "the risk of the country the goods ship from",
        _event_country_risk("country the goods ship from", "seller_country"),
    ),
}
