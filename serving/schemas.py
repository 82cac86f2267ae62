"""Request and response schemas of the scoring service (pydantic), shared by the Scorer and the HTTP API.

Requests follow the data contracts of ``features.contracts`` (column names, types, ranges):

- ``Order``: one ``transactions`` row to score;
- ``Profile``: one ``customers`` row to onboard (or update);
- ``AccountEvent`` and ``Label``: ``account_events`` and ``labels`` rows (``POST /events``).

Wrong types, missing required fields, non-positive amounts or prices and unknown currencies are
refused with an error that names the field (the service answers 400/422 and never scores a
malformed request). Every bound comes from ``features.contracts`` (one place for files and
requests): amounts, unit prices and declared volumes in ``(0, MAX_AMOUNT]``, quantities up to
``MAX_QUANTITY``, identifiers matching ``ID_PATTERN``, free text matching ``TEXT_PATTERN`` (no control
characters, escapes or bidi overrides) and at most ``MAX_TEXT_LENGTH`` characters.

Times are ISO 8601 strings only, never numbers (pydantic would read an integer as an epoch):
datetimes with a time zone (``2026-06-01T12:00:00Z``, ``...+02:00``; seconds required, at most 6
decimals), dates as ``YYYY-MM-DD``. Each lies in its column's contract range (``Col.time_range``,
``[low, high)`` in UTC); the ``JSON Schema`` of a time field carries a ``pattern`` spelling out exactly
the strings accepted (calendar days and years of the range included), so that a client or a test
generator sees the bounds in the OpenAPI document. A ``"now"`` upper bound (``birth_date``,
``business_registered_at``) is checked here against its static part (before 2100) only; the
Scorer checks it against the service clock. Numbers and booleans are strict (``"12.5"`` or
``"true"`` as strings are refused), and strings are taken as sent (no whitespace stripping: an id
with a trailing space is refused by its pattern, not silently changed). Unknown *categories* (a new goods category, payment method, industry) are
accepted: the model maps them to its "unseen" code, exactly as offline. Currencies are the
exception: an amount in an unknown currency cannot be converted to USD.

Responses carry the score, tier, action, reasons and model versions. Reason contributions are
exact TreeSHAP contributions of the LightGBM model in **log-odds** (raw score space), not
probabilities.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from features.contracts import (
    COUNTRY_PATTERN,
    CURRENCIES,
    CUSTOMER_ROLES,
    CUSTOMER_TYPES,
    ID_PATTERN,
    LABEL_ENTITY_TYPES,
    MAX_AMOUNT,
    MAX_ID_LENGTH,
    MAX_QUANTITY,
    MAX_TEXT_LENGTH,
    TABLES,
    TEXT_PATTERN,
)

MAX_BATCH = 1000  # orders per /score_batch, events per /events
MAX_BODY_BYTES = 2_000_000  # request body limit of the HTTP service (a full batch is ~0.5 MB)

Country = Annotated[str, Field(pattern=COUNTRY_PATTERN, description="ISO 3166-1 alpha-2 code.")]
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
Category = Annotated[str, Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)]
ShortText = Annotated[str, Field(max_length=MAX_TEXT_LENGTH, pattern=TEXT_PATTERN)]
Currency = Literal[CURRENCIES]  # type: ignore[valid-type]
Amount = Annotated[float, Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False, strict=True)]


def _integral(value: Any) -> Any:
    # JSON Schema counts 317.0 as an integer; strict mode still refuses "317" and 317.5
    return int(value) if isinstance(value, float) and value.is_integer() else value


# the constraints first: after a BeforeValidator pydantic writes them into the JSON Schema as "ge"/"le"
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True), BeforeValidator(_integral)]

# The static part of a "now" bound: a request is checked against the service clock by the Scorer.
STATIC_NOW = "2100-01-01"
# Request fields whose contract range ends at "now" (the Scorer checks them against its clock).
NOW_BOUNDED_FIELDS = tuple(
    sorted({c.name for t in TABLES.values() for c in t.columns if c.time_range and c.time_range[1] == "now"})
)
# Contract date columns: tables hold them as UTC midnights, requests send them as YYYY-MM-DD.
DATE_FIELDS = frozenset(c.name for t in TABLES.values() for c in t.columns if c.kind == "date")

_TIME_OF_DAY = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
_ZONE = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
# month-day pairs that exist in every year (February 29 is added for leap years only)
_MONTH_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"


def _years_pattern(first: int, last: int) -> str:
    """A regular expression matching the four-digit years ``first..last`` and no other."""
    parts = []
    for century in range(first // 100, last // 100 + 1):
        lo, hi = max(first, century * 100), min(last, century * 100 + 99)
        if (lo, hi) == (century * 100, century * 100 + 99):
            parts.append(f"{century:02d}[0-9]{{2}}")
            continue
        decades = []
        for decade in range(lo // 10, hi // 10 + 1):
            a, b = max(lo, decade * 10) % 10, min(hi, decade * 10 + 9) % 10
            decades.append(f"{decade % 10}" + ("[0-9]" if (a, b) == (0, 9) else f"[{a}-{b}]" if a != b else f"{a}"))
        parts.append(f"{century:02d}(?:{'|'.join(decades)})")
    return "(?:" + "|".join(parts) + ")"


def _date_pattern(first: int, last: int) -> str:
    leap = "|".join(str(y) for y in range(first, last + 1) if calendar.isleap(y))
    return f"(?:{_years_pattern(first, last)}-{_MONTH_DAY}" + (f"|(?:{leap})-02-29)" if leap else ")")


def _contract_range(table: str, column: str) -> tuple[datetime, datetime]:
    low, high = TABLES[table].column(column).time_range  # type: ignore[misc]
    return (
        datetime.fromisoformat(low).replace(tzinfo=UTC),
        datetime.fromisoformat(STATIC_NOW if high == "now" else high).replace(tzinfo=UTC),
    )


def _time_type(table: str, column: str, *, is_date: bool) -> Any:
    """The request type of a contract time column: an ISO 8601 string in the column's range.

    The JSON Schema pattern spells out exactly the strings accepted, so the check runs the pattern
    before pydantic parses (pydantic alone would also take integer epochs, date-only datetimes and
    years 0001 or 9999, which pandas cannot hold).
    """
    low, high = _contract_range(table, column)
    last = high - timedelta(microseconds=1)
    day = _date_pattern(low.year, last.year)
    pattern = f"^{day}$" if is_date else f"^{day}T{_TIME_OF_DAY}{_ZONE}$"
    matcher = re.compile(pattern)
    shown = f"[{low.date()}, {high.date()})"
    wanted = "an ISO 8601 date (YYYY-MM-DD)" if is_date else "an ISO 8601 date-time with a time zone"
    example = "2026-06-01" if is_date else "2026-06-01T12:00:00Z"

    def check_text(value: Any) -> Any:
        if isinstance(value, date):  # Python callers; JSON input is always a string
            return value
        # the reason never quotes the value: it may be personal data (a birth date)
        if not isinstance(value, str):
            raise ValueError(f"must be a string, {wanted} such as {example} (numbers such as epochs are refused)")
        if not matcher.fullmatch(value):
            raise ValueError(f"must be {wanted} such as {example}, within {shown}")
        return value

    def check_range(value: date) -> date:
        if is_date:
            if isinstance(value, datetime) or not low.date() <= value < high.date():
                raise ValueError(f"must be a date within {shown}")
            return value
        if value.tzinfo is None:
            raise ValueError("must have a time zone (e.g. Z or +02:00)")
        value = value.astimezone(UTC)
        if not low <= value < high:
            raise ValueError(f"must be within {shown} (UTC)")
        return value

    fmt = "date" if is_date else "date-time"
    return Annotated[
        date if is_date else datetime,
        BeforeValidator(check_text),
        AfterValidator(check_range),
        WithJsonSchema({"type": "string", "format": fmt, "pattern": pattern}),
    ]


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
    for f in DATE_FIELDS.intersection(body):  # tables hold dates as UTC midnights; requests send dates
        if isinstance(body[f], str):
            body[f] = body[f][:10]
    return {f: v for f, v in body.items() if v is not None} if drop_missing else body


class _Request(BaseModel):
    # unknown fields are refused: a misspelt optional field would otherwise vanish silently
    model_config = ConfigDict(extra="forbid")


class Order(_Request):
    """One order (a ``transactions`` row) to score."""

    transaction_id: Identifier
    occurred_at: _time_type("transactions", "occurred_at", is_date=False) = Field(
        description="When the order was placed: ISO 8601 with a time zone (stored as UTC)."
    )
    buyer_id: Identifier
    seller_id: Identifier
    amount: Amount = Field(description=f"Order amount in `currency` (> 0, at most {MAX_AMOUNT:.0e}).")
    currency: Currency = Field(
        description="ISO 4217 currency of `amount` and `unit_price` (one of the supported currencies)."
    )
    goods_category: Category = Field(description="Category of the goods (unknown categories are accepted).")
    unit_price: Amount = Field(description="Price of one unit in `currency` (> 0).")
    quantity: Quantity = Field(description="Number of units (>= 1).")
    payment_method: Category
    buyer_country: Country | None = None
    seller_country: Country | None = None
    device_id: ShortText | None = None
    ip_address: ShortText | None = None
    ip_country: Country | None = None

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
    birth_date: _time_type("customers", "birth_date", is_date=True) | None = None
    email: ShortText | None = None
    email_first_seen_at: _time_type("customers", "email_first_seen_at", is_date=False) | None = None
    phone: ShortText | None = None
    address: ShortText | None = None
    nationality: Country | None = None
    residence_country: Country | None = None
    document_type: Category | None = None
    document_number: ShortText | None = None
    document_country: Country | None = None
    document_expiry: _time_type("customers", "document_expiry", is_date=True) | None = None
    business_registration_number: ShortText | None = None
    business_registered_at: _time_type("customers", "business_registered_at", is_date=True) | None = None
    industry: Category | None = None
    twofa_enabled: bool | None = Field(default=None, strict=True)
    onboarded_at: _time_type("customers", "onboarded_at", is_date=False)
    last_kyc_review_at: _time_type("customers", "last_kyc_review_at", is_date=False) | None = None
    declared_monthly_volume_usd: float | None = Field(
        default=None, ge=0, le=MAX_AMOUNT, allow_inf_nan=False, strict=True
    )


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

    kind: Literal["account_event"] = Field(
        default="account_event", description="`account_event` (the default when omitted)."
    )
    event_id: Identifier
    customer_id: Identifier
    occurred_at: _time_type("account_events", "occurred_at", is_date=False)
    event_type: Category
    device_id: ShortText | None = None
    ip_address: ShortText | None = None
    ip_country: Country | None = None


class Label(_Request):
    """A ``labels`` row: what became known about a transaction or customer, and when."""

    kind: Literal["label"] = Field(description="`label` (required: an event without `kind` is an account event).")
    label_id: Identifier
    entity_type: Literal[LABEL_ENTITY_TYPES]  # type: ignore[valid-type]
    entity_id: Identifier
    label: Category
    known_at: _time_type("labels", "known_at", is_date=False)
    source: Category | None = None


Event = Annotated[AccountEvent | Label, Field(discriminator="kind")]


class EventsRequest(_Request):
    events: list[Event] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=f"At most {MAX_BATCH} events; an event without `kind` is an account event.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_kind(cls, data: Any) -> Any:
        # AccountEvent documents kind's default; the discriminated union needs the key to pick a model
        if isinstance(data, Mapping) and isinstance(data.get("events"), list):
            events = [
                {"kind": "account_event", **e} if isinstance(e, Mapping) and "kind" not in e else e
                for e in data["events"]
            ]
            data = {**data, "events": events}
        return data


class EventsResponse(BaseModel):
    applied: int = Field(description="Events that changed the feature state.")
    ignored: int = Field(description="Duplicates and events no feature uses (e.g. labels of customers).")
    replayed: int = Field(
        default=0, description="Events already applied by an earlier request with an identical body (retries)."
    )


class Problem(BaseModel):
    """One thing wrong with a request: where, and why (never the value sent: it may be personal data)."""

    field: str = Field(
        min_length=1,
        description="Path of the field at fault, e.g. `orders[3].amount`, `events[1].occurred_at`; "
        "`body` for the body as a whole (invalid JSON, wrong top-level type, too large).",
    )
    reason: str = Field(description="What is wrong, in one sentence.")


class ErrorDetail(BaseModel):
    status: int = Field(description="The HTTP status code, repeated.")
    code: str = Field(
        description="Stable machine-readable code: invalid_request (400), unauthorized (401), not_found "
        "(404), method_not_allowed (405), conflict (409), body_too_large (413), unsupported_media_type "
        "(415), unprocessable (422), internal_error (500), unavailable (503)."
    )
    message: str = Field(description="One plain-language sentence.")
    problems: list[Problem] = Field(
        description="Every field at fault (400, 409, 413, 422); empty when no field is (401, 404, 415, 500)."
    )


class ErrorResponse(BaseModel):
    """The one error shape of every endpoint and status."""

    error: ErrorDetail
