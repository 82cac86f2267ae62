"""Request and response schemas of the scoring service (pydantic), shared by the Scorer and the HTTP API.

Requests follow the data contracts of ``features.contracts`` (column names, types, ranges):

- ``Order``: one ``transactions`` row to score;
- ``Profile``: one ``customers`` row to onboard (or update);
- ``AccountEvent`` and ``Label``: ``account_events`` and ``labels`` rows (``POST /events``).

Wrong types, missing required fields, non-positive amounts or prices and unknown currencies are
refused with an error that names the field (the service answers 400/422 and never scores a
malformed request). Unknown *categories* (a new goods category, payment method, industry) are
accepted: the model maps them to its "unseen" code, exactly as offline. Currencies are the
exception: an amount in an unknown currency cannot be converted to USD.

Responses carry the score, tier, action, reasons and model versions. Reason contributions are
exact TreeSHAP contributions of the LightGBM model in **log-odds** (raw score space), not
probabilities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from features.contracts import CURRENCIES, CUSTOMER_ROLES, CUSTOMER_TYPES, LABEL_ENTITY_TYPES

MAX_BATCH = 1000  # orders per /score_batch, events per /events
MAX_BODY_BYTES = 2_000_000  # request body limit of the HTTP service (a full batch is ~0.5 MB)

Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code.")]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]
Category = Annotated[str, Field(min_length=1, max_length=64)]
ShortText = Annotated[str, Field(max_length=512)]
Currency = Literal[CURRENCIES]  # type: ignore[valid-type]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def json_value(value: Any) -> Any:
    """A table value (pandas, numpy or Python) as a JSON request value: missing -> None, times -> ISO 8601."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def request_body(
    row: Mapping[str, Any], fields: Iterable[str], *, drop_missing: bool = False
) -> dict[str, Any]:
    """The request fields of a table row (e.g. ``request_body(row, Order.model_fields)``), JSON-ready.

    Args:
        row: a table row (``DataFrame.to_dict("records")``).
        fields: the request's field names; fields absent from ``row`` are missing.
        drop_missing: leave missing values out instead of sending them as null.
    """
    body = {f: json_value(row.get(f)) for f in fields}
    return {f: v for f, v in body.items() if v is not None} if drop_missing else body


class _Request(BaseModel):
    # unknown fields are refused: a misspelt optional field would otherwise vanish silently
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Order(_Request):
    """One order (a ``transactions`` row) to score."""

    transaction_id: Identifier
    occurred_at: AwareDatetime = Field(
        description="When the order was placed: ISO 8601 with a time zone (stored as UTC)."
    )
    buyer_id: Identifier
    seller_id: Identifier
    amount: float = Field(gt=0, allow_inf_nan=False, description="Order amount in `currency` (> 0).")
    currency: Currency = Field(
        description="ISO 4217 currency of `amount` and `unit_price` (one of the supported currencies)."
    )
    goods_category: Category = Field(description="Category of the goods (unknown categories are accepted).")
    unit_price: float = Field(gt=0, allow_inf_nan=False, description="Price of one unit in `currency` (> 0).")
    quantity: int = Field(ge=1, le=1_000_000, description="Number of units (>= 1).")
    payment_method: Category
    buyer_country: Country | None = None
    seller_country: Country | None = None
    device_id: ShortText | None = None
    ip_address: ShortText | None = None
    ip_country: Country | None = None

    _utc_time = field_validator("occurred_at")(_utc)

    def to_event(self) -> dict[str, Any]:
        """The contract row (``transactions`` columns) for the feature engines."""
        return self.model_dump()


class ScoreBatchRequest(_Request):
    orders: list[Order] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"At most {MAX_BATCH} orders."
    )


class Reason(BaseModel):
    """One reason of a decision (model contribution, hard rule or score tier)."""

    code: str = Field(
        description="Stable reason code (training.explain.REASON_CATALOGUE or the policy's codes)."
    )
    source: Literal["model", "rule", "score"]
    direction: str | None = Field(
        description="`increases risk`, `decreases risk`, or null for the score reason."
    )
    contribution: float | None = Field(
        description="Exact TreeSHAP contribution of the feature group in LOG-ODDS (raw model score), "
        "not in probability; null for rule and score reasons."
    )
    message: str = Field(description="One plain-language sentence.")
    feature: str | None = None
    value: Any = None
    decisive: bool | None = Field(
        default=None, description="Rule/score reasons: whether it produced the tier and action."
    )


class ScoreResponse(BaseModel):
    """Score, tier, action and reasons of one order."""

    decision_id: str = Field(description="Id of the decision in the tamper-evident decision log.")
    transaction_id: str
    fraud_probability: float = Field(description="Calibrated fraud probability (0..1).")
    risk_tier: Literal["low", "medium", "high"]
    action: str = Field(description="approve, ask_to_correct, review, reject or report.")
    reasons: list[Reason] = Field(
        description="Rule and score reasons, then the top model contributions (log-odds)."
    )
    models: dict[str, str] = Field(description="{registered model name: version} of every model used.")
    feature_set: str
    policy_version: str
    replayed: bool = Field(
        default=False,
        description="True when this is the answer to an earlier request with the same transaction_id "
        "and an identical body (a retry): the original decision, not a new one.",
    )


class ScoreBatchResponse(BaseModel):
    results: list[ScoreResponse]


class Profile(_Request):
    """A KYC profile (a ``customers`` row) to onboard or update."""

    customer_id: Identifier
    customer_type: Literal[CUSTOMER_TYPES]  # type: ignore[valid-type]
    role: Literal[CUSTOMER_ROLES]  # type: ignore[valid-type]
    full_name: ShortText | None = None
    birth_date: date | None = None
    email: ShortText | None = None
    email_first_seen_at: AwareDatetime | None = None
    phone: ShortText | None = None
    address: ShortText | None = None
    nationality: Country | None = None
    residence_country: Country | None = None
    document_type: Category | None = None
    document_number: ShortText | None = None
    document_country: Country | None = None
    document_expiry: date | None = None
    business_registration_number: ShortText | None = None
    business_registered_at: date | None = None
    industry: Category | None = None
    twofa_enabled: bool | None = None
    onboarded_at: AwareDatetime
    last_kyc_review_at: AwareDatetime | None = None
    declared_monthly_volume_usd: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @field_validator("email_first_seen_at", "onboarded_at", "last_kyc_review_at")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)


class Screening(BaseModel):
    status: str | None = Field(description="hit, review or clear; null without a watchlist.")
    list_type: str | None = None
    score: float | None = None
    entry_id: str | None = None

    @classmethod
    def from_columns(cls, screen: Mapping[str, Any]) -> Screening:
        """From the screener's output columns (``screen_status``, ``screen_list_type``, ...)."""
        return cls(
            status=screen.get("screen_status"),
            list_type=screen.get("screen_list_type"),
            score=screen.get("screen_score"),
            entry_id=screen.get("screen_entry_id"),
        )


class OnboardResponse(BaseModel):
    decision_id: str
    customer_id: str
    risk_tier: Literal["low", "medium", "high"]
    action: str
    risk_score: float = Field(
        description="Risk score the tier was decided on: the risk-tier model's calibrated probability "
        "that the customer is bad, or (rules only) the simple rules score."
    )
    reasons: list[Reason]
    screening: Screening
    models: dict[str, str] = Field(
        description="{registered model name: version} of the model that scored (empty: rules only)."
    )
    profile_version: int = Field(description="1 for a new customer, +1 on each update.")
    feature_set: str | None = Field(
        default=None, description="Feature set id of the risk-tier model (null: rules only)."
    )
    policy_version: str | None = Field(default=None, description="Version of the tier policy that decided.")
    as_of: datetime | None = Field(
        default=None,
        description="Snapshot time the risk-tier model scored: the later of last_kyc_review_at and "
        "onboarded_at, plus 1 microsecond (null: rules only).",
    )
    replayed: bool = Field(
        default=False,
        description="True when this answers a retry of an earlier identical onboarding: the original decision.",
    )


class AccountEvent(_Request):
    """An ``account_events`` row (login, password reset, device or 2FA change, ...)."""

    kind: Literal["account_event"] = "account_event"
    event_id: Identifier
    customer_id: Identifier
    occurred_at: AwareDatetime
    event_type: Category
    device_id: ShortText | None = None
    ip_address: ShortText | None = None
    ip_country: Country | None = None

    _utc_time = field_validator("occurred_at")(_utc)


class Label(_Request):
    """A ``labels`` row: what became known about a transaction or customer, and when."""

    kind: Literal["label"] = "label"
    label_id: Identifier
    entity_type: Literal[LABEL_ENTITY_TYPES]  # type: ignore[valid-type]
    entity_id: Identifier
    label: Category
    known_at: AwareDatetime
    source: Category | None = None

    _utc_time = field_validator("known_at")(_utc)


Event = Annotated[AccountEvent | Label, Field(discriminator="kind")]


class EventsRequest(_Request):
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH)


class EventsResponse(BaseModel):
    applied: int = Field(description="Events that changed the feature state.")
    ignored: int = Field(description="Duplicates and events no feature uses (e.g. labels of customers).")
    replayed: int = Field(
        default=0, description="Events already applied by an earlier request with an identical body (retries)."
    )
