"""Row-level KYC profile features of an event's parties, as scikit-learn transformers.

The transformers read a party's profile columns (joined onto each event with a ``buyer_`` or
``seller_`` prefix by ``features.assemble``) and the event time, and derive what a KYC analyst
looks at: ages, document validity at the time of the event, how stale the last KYC review is,
whether the name matches the e-mail, free-mail domains, country risk and country mismatches,
business age and industry risk, 2FA. Reference tables (country and industry risk, free-mail
domains) are copied into fitted attributes, so a logged model never reads ``data/`` again.

Raw personal data (names, e-mails, phones, addresses, document numbers) is dropped after use:
the model never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
from anyascii import anyascii
from rapidfuzz import fuzz
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features import documents
from features.reasons import FeatureReason, Renderer, as_int, binary, days, money, risk_level, times
from features.reference import load_reference

DAY = pd.Timedelta(days=1)
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


def _country_risk_table() -> dict[str, float]:
    table = load_reference("countries")
    return dict(zip(table["iso2"], table["risk_score"].astype(float), strict=True))


def _industry_risk_table() -> dict[str, float]:
    table = load_reference("industries")
    return dict(zip(table["industry"], table["risk_score"].astype(float), strict=True))


def _free_email_domains() -> frozenset[str]:
    return frozenset(load_reference("free_email_domains")["domain"].str.lower())


def phone_country(phones: pd.Series) -> pd.Series:
    """ISO country of each E.164 phone number (null when missing or unparseable).

    Args:
        phones: phone numbers such as ``+4915112345678``.

    Returns:
        A string Series aligned with ``phones``.
    """

    def one(number: str) -> str | None:
        try:
            return phonenumbers.region_code_for_number(phonenumbers.parse(number, None)) or None
        except phonenumbers.NumberParseException:
            return None

    uniques = phones.dropna().unique()
    mapping = {number: one(number) for number in uniques}
    return phones.map(mapping).astype("str")


def name_email_similarity(names: pd.Series, emails: pd.Series) -> pd.Series:
    """How well an e-mail's local part matches the name, 0 (unrelated) to 1 (built from it).

    Names in any script are transliterated to Latin first; digits and separators in the e-mail
    are ignored, so ``j.smith84@...`` matches "John Smith".

    Returns:
        A float Series aligned with the inputs; NaN where the name or e-mail is missing.
    """
    frame = pd.DataFrame({"name": names, "email": emails})
    pairs = frame.dropna().drop_duplicates()

    def one(name: str, email: str) -> float:
        local = "".join(ch for ch in email.split("@", 1)[0].lower() if ch.isalpha())
        ascii_name = anyascii(name).lower()
        tokens = ["".join(ch for ch in token if ch.isalpha()) for token in ascii_name.split()]
        tokens = [t for t in tokens if t]
        if not local or not tokens:
            return 0.0
        # Full tokens found in the local part count fully; otherwise fall back to fuzzy overlap
        # (initials plus surname, small typos).
        joined = "".join(tokens)
        return max(
            fuzz.partial_ratio(local, joined) / 100.0 if len(local) >= 3 else 0.0,
            max(fuzz.partial_ratio(token, local) / 100.0 for token in tokens if len(token) >= 3)
            if any(len(t) >= 3 for t in tokens)
            else 0.0,
        )

    scores = {(n, e): one(n, e) for n, e in zip(pairs["name"], pairs["email"], strict=True)}
    keys = list(zip(frame["name"], frame["email"], strict=True))
    return pd.Series([scores.get(k, np.nan) for k in keys], index=names.index, dtype="float64")


class PartyProfileFeatures(TransformerMixin, BaseEstimator):
    """KYC profile features of one party (buyer or seller) at the time of each event.

    Args:
        party: column prefix of the party: ``"buyer"`` or ``"seller"`` for an order's parties,
            ``"customer"`` for a customer snapshot.
        time_column: the event time the profile is evaluated at (age, expiry, staleness).
        drop_personal: drop the party's raw personal columns after use.

    Output columns (added, each prefixed ``{party}_``): ``age_years``, ``account_age_days``,
    ``doc_present``, ``doc_check_digit_valid``, ``doc_typo_likely``, ``doc_expired``,
    ``doc_days_to_expiry``, ``doc_country_mismatch``, ``days_since_kyc_review``,
    ``name_email_similarity``, ``email_free_domain``, ``email_age_days``, ``nationality_risk``,
    ``residence_risk``, ``phone_country_risk``, ``phone_residence_mismatch``,
    ``nationality_residence_mismatch``, ``business_age_days``, ``industry_risk``,
    ``twofa_at_onboarding``, and ``volume_vs_declared`` (the party's ``{party}_amount_sum_30d``
    history feature over the declared monthly volume) when that feature is in the input. Dates and times of the profile are dropped (they would only teach
    the model the calendar); categorical profile columns are kept for the encoder.
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

    def _check_columns(self, X: pd.DataFrame) -> None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"{type(self).__name__} expects a pandas DataFrame, got {type(X).__name__}")
        needed = [self.time_column] + [f"{self.party}_{c}" for c in PROFILE_COLUMNS]
        missing = [c for c in needed if c not in X.columns]
        if missing:
            raise ValueError(f"{type(self).__name__}({self.party}) is missing input columns: {missing}")

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "country_risk_")
        self._check_columns(X)
        p = f"{self.party}_"
        col = lambda name: X[p + name]  # noqa: E731 - short local accessor keeps formulas readable
        at = lambda name: _utc(X[p + name])  # noqa: E731
        t = _utc(X[self.time_column])
        out = {}

        out[p + "age_years"] = (t - at("birth_date")) / (365.25 * DAY)
        out[p + "account_age_days"] = (t - at("onboarded_at")) / DAY

        number = col("document_number")
        present = number.notna()
        out[p + "doc_present"] = present.astype("float64")
        # Only passports and national ids carry an ICAO 9303 check digit.
        checkable = col("document_type").isin(CHECK_DIGIT_DOCUMENTS)
        out[p + "doc_check_digit_valid"] = _as_float(documents.check_digit_valid(number)).where(checkable)
        out[p + "doc_typo_likely"] = _as_float(documents.transposition_typo(number)).where(checkable)
        expiry = at("document_expiry")
        out[p + "doc_expired"] = (expiry <= t).astype("float64").where(expiry.notna())
        out[p + "doc_days_to_expiry"] = (expiry - t) / DAY
        out[p + "doc_country_mismatch"] = _mismatch(col("document_country"), col("nationality"))

        # A review recorded after the event was not known at the event: fall back to onboarding,
        # which counts as the first review (point in time).
        review = at("last_kyc_review_at")
        review = review.where(review <= t, at("onboarded_at"))
        out[p + "days_since_kyc_review"] = (t - review) / DAY
        # Recent activity against the volume declared at the last review (outgrown KYC).
        activity = f"{self.party}_amount_sum_30d"
        declared = col("declared_monthly_volume_usd").astype("float64")
        if activity in X.columns:
            out[p + "volume_vs_declared"] = X[activity].astype("float64") / declared.where(declared > 0)

        out[p + "name_email_similarity"] = name_email_similarity(col("full_name"), col("email"))
        domain = col("email").astype("str").str.extract(r"@([^@]+)$", expand=False).str.lower()
        out[p + "email_free_domain"] = (
            domain.isin(self.free_email_domains_).astype("float64").where(domain.notna())
        )
        if p + "email_first_seen_at" in X.columns:
            out[p + "email_age_days"] = (t - at("email_first_seen_at")) / DAY
        else:
            out[p + "email_age_days"] = pd.Series(np.nan, index=X.index)

        phone_cc = phone_country(col("phone"))
        out[p + "nationality_risk"] = col("nationality").map(self.country_risk_).astype("float64")
        out[p + "residence_risk"] = col("residence_country").map(self.country_risk_).astype("float64")
        out[p + "phone_country_risk"] = phone_cc.map(self.country_risk_).astype("float64")
        out[p + "phone_residence_mismatch"] = _mismatch(phone_cc, col("residence_country"))
        out[p + "nationality_residence_mismatch"] = _mismatch(col("nationality"), col("residence_country"))

        out[p + "business_age_days"] = (t - at("business_registered_at")) / DAY
        out[p + "industry_risk"] = col("industry").map(self.industry_risk_).astype("float64")
        out[p + "twofa_at_onboarding"] = col("twofa_enabled").astype("float64")

        result = X.copy()
        for name, values in out.items():
            result[name] = pd.Series(values, index=X.index).astype("float64")
        dropped = [
            p + c
            for c in (
                "birth_date",
                "document_expiry",
                "business_registered_at",
                "onboarded_at",
                "last_kyc_review_at",
                "twofa_enabled",
                "document_type",
            )
        ]
        if self.drop_personal:
            dropped += [p + c for c in PERSONAL_COLUMNS]
        return result.drop(columns=[c for c in dropped if c in result.columns])


def _utc(values: pd.Series) -> pd.Series:
    """Times as tz-aware UTC (all-null columns often arrive tz-naive from JSON or CSV)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values
    return pd.to_datetime(values, utc=True)


def _as_float(flags: pd.Series) -> pd.Series:
    """A nullable boolean Series as floats (1.0 / 0.0, NaN for unknown), the model's encoding."""
    return flags.astype("Float64").astype("float64")


def _mismatch(a: pd.Series, b: pd.Series) -> pd.Series:
    """1.0 where both values are known and differ, 0.0 where equal, NaN where either is missing."""
    known = a.notna() & b.notna()
    return (a != b).astype("float64").where(known)


class EventRiskFeatures(TransformerMixin, BaseEstimator):
    """Country and goods risk of the event itself, from the committed reference tables.

    Output columns (added): ``ip_country_risk``, ``buyer_country_risk``, ``seller_country_risk``
    (FATF-based country risk, NaN when the country is unknown), ``goods_category_risk`` (0 low,
    0.33 medium, 0.67 high, 1 restricted; NaN for an unknown category).
    """

    GOODS_RISK = {"low": 0.0, "medium": 1 / 3, "high": 2 / 3, "restricted": 1.0}
    COLUMNS = ("ip_country", "buyer_country", "seller_country", "goods_category")

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
        check_is_fitted(self, "country_risk_")
        self._check_columns(X)
        result = X.copy()
        for column in ("ip_country", "buyer_country", "seller_country"):
            result[f"{column}_risk"] = X[column].map(self.country_risk_).astype("float64")
        result["goods_category_risk"] = X["goods_category"].map(self.goods_risk_).astype("float64")
        return result


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
