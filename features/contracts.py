"""The input data contracts: every table's columns, types, keys, allowed values and personal data.

The contracts are declared once, as data (``TABLES``), and everything else derives from them:
the pandera schemas that check a single table, the cross-table checks in
``features.validation``, the readers in ``features.io`` (which coerce CSV text to these types),
the synthetic generator, the external-benchmark adapters and ``data/README.md``.

Timestamps are timezone-aware UTC (``datetime64[us, UTC]``); dates are UTC midnights of the same
type, so that every time comparison is between like types. Amounts are in the transaction's
``currency``; ``features.reference`` converts them to USD with a committed rate table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# --- Allowed values -------------------------------------------------------------------------

CUSTOMER_TYPES = ("individual", "business")
CUSTOMER_ROLES = ("buyer", "seller", "both")
DOCUMENT_TYPES = ("passport", "national_id", "driving_licence", "business_registration")
INDUSTRIES = (
    "retail",
    "wholesale",
    "electronics",
    "fashion",
    "chemicals",
    "pharmaceuticals",
    "logistics",
    "consulting",
    "software",
    "import_export",
    "jewelry",
    "automotive",
    "food",
    "holding",
)
GOODS_CATEGORIES = (
    "electronics",
    "phones",
    "computers",
    "fashion",
    "home",
    "beauty",
    "toys",
    "books",
    "groceries",
    "sports",
    "auto_parts",
    "jewelry",
    "industrial_supplies",
    "lab_chemicals",
    "precursor_chemicals",
    "gift_cards",
    "software",
    "general",
)
PAYMENT_METHODS = ("card", "bank_transfer", "wallet", "bnpl", "marketplace_balance")
CURRENCIES = (
    "USD",
    "EUR",
    "GBP",
    "CNY",
    "JPY",
    "INR",
    "BRL",
    "MXN",
    "TRY",
    "RUB",
    "AED",
    "NGN",
    "KRW",
    "PLN",
    "CAD",
    "AUD",
    "CHF",
    "SGD",
    "HKD",
    "ZAR",
    "VND",
    "IDR",
    "UAH",
    "KZT",
    "EGP",
    "PKR",
    "THB",
    "SEK",
)
EVENT_TYPES = (
    "login",
    "login_failed",
    "password_reset",
    "device_change",
    "twofa_enabled",
    "twofa_disabled",
    "email_change",
    "phone_change",
    "address_change",
)
LIST_TYPES = ("sanction", "pep")
LABEL_ENTITY_TYPES = ("transaction", "customer")
# Outcomes an investigation or chargeback can record. "legitimate" is a confirmed good outcome
# (e.g. a review that cleared a customer), not the absence of a label.
LABELS = (
    "fraud",
    "money_laundering",
    "restricted_goods",
    "synthetic_identity",
    "sanctioned",
    "pep",
    "kyc_refresh_required",
    "legitimate",
)
# Transaction labels that make a transaction a positive for the fraud model.
BAD_TRANSACTION_LABELS = ("fraud", "money_laundering", "restricted_goods")
LABEL_SOURCES = ("chargeback", "investigation", "manual_review", "screening", "customer_report")

# Reference list of ISO 3166-1 alpha-2 codes lives in data/reference/countries.csv; the
# contract checks the two-letter shape here and ``features.validation`` checks membership.
COUNTRY_PATTERN = r"^[A-Z]{2}$"

# --- Bounds every input meets: data files, service requests, seeding and the state rebuild -----
#
# One place for the limits, so that a value a file may hold is a value a request may send and the
# state can always load again (a value the engines cannot represent must never be stored).

# Amounts, unit prices and declared volumes: at most MAX_AMOUNT in any currency. The largest rate
# in data/reference/fx_rates.csv is 1.33 USD per unit, so every amount converts to a finite USD
# value, and even a million such orders sum to far below float64's range (1.8e308).
MAX_AMOUNT = 1e12
MAX_QUANTITY = 1_000_000
# Plausible ranges of time columns, as [low, high) in UTC; "now" is the moment of checking (the
# validation run, or the service clock for requests). Values outside are typos or sentinels
# (1970-01-01, 9999-12-31), not facts, and every bound is far inside pandas' nanosecond range
# (1677-2262), so every accepted time converts and every difference of two of them is finite.
DEFAULT_TIME_RANGE = ("1980-01-01", "2100-01-01")
TIME_RANGES: dict[str, tuple[str, str]] = {
    "birth_date": ("1900-01-01", "now"),
    "business_registered_at": ("1800-01-01", "now"),
    # An expired document is a risk signal, not bad data: only absurd years are rejected.
    "document_expiry": ("1950-01-01", "2100-01-01"),
}
# Identifiers (customer, transaction, event, label and list entry ids): 1-128 characters of this
# set, starting with a letter or digit: no spaces, control characters, escapes or bidi overrides,
# so an id can be printed, logged and compared byte for byte.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@#/+=-]{0,127}$"
MAX_ID_LENGTH = 128
# Free text (names, addresses, device ids, ...): any script, but no control characters (C0, DEL,
# C1) and no bidirectional overrides or isolates, which can disguise what a reviewer reads.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*$"
MAX_TEXT_LENGTH = 512


# --- Column and table specifications ------------------------------------------------------


@dataclass(frozen=True)
class Col:
    """One column of a contract.

    Attributes:
        name: column name.
        kind: one of ``str``, ``float``, ``int``, ``bool``, ``timestamp``, ``date``,
            ``country``, ``category``.
        description: what it means, for people (rendered into data/README.md).
        required: whether the column must be present in the file.
        nullable: whether a present column may hold nulls.
        allowed: allowed values for ``category`` columns.
        pii: whether the column is personal data (minimised in logs, hashed in serving).
        min_value: inclusive lower bound for numbers, or ``None``.
        min_exclusive: whether ``min_value`` itself is out of range (amounts must be > 0).
        max_value: inclusive upper bound for numbers, or ``None``.
        identifier: an id column: its values match ``ID_PATTERN``.
        foreign_key: ``"table.column"`` this column refers to, or ``None``.
    """

    name: str
    kind: str
    description: str
    required: bool = True
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    pii: bool = False
    min_value: float | None = None
    min_exclusive: bool = False
    max_value: float | None = None
    identifier: bool = False
    foreign_key: str | None = None

    @property
    def time_range(self) -> tuple[str, str] | None:
        """``[low, high)`` of a timestamp or date column (``TIME_RANGES``; ``"now"``), else None."""
        if self.kind in ("timestamp", "date"):
            return TIME_RANGES.get(self.name, DEFAULT_TIME_RANGE)
        return None


@dataclass(frozen=True)
class Table:
    """One input table: its columns and primary key.

    Nullable identity, contact and document columns mean "not collected": light-KYC buyers and
    external data sets (e.g. the card-fraud benchmark) have no documents; features treat a null
    as missing information, never as a valid value.
    """

    name: str
    description: str
    key: tuple[str, ...]
    columns: tuple[Col, ...] = field(default_factory=tuple)

    def column(self, name: str) -> Col:
        """Return the spec of column ``name`` (KeyError if it is not in the contract)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


CUSTOMERS = Table(
    name="customers",
    description="KYC profiles of marketplace customers (buyers, sellers or both), as onboarded.",
    key=("customer_id",),
    columns=(
        Col("customer_id", "str", "Stable customer identifier.", identifier=True),
        Col("customer_type", "category", "Individual person or registered business.", allowed=CUSTOMER_TYPES),
        Col("role", "category", "Whether the customer buys, sells or both.", allowed=CUSTOMER_ROLES),
        Col("full_name", "str", "Name as on the identity document (any script); a business's legal name.", nullable=True, pii=True),
        Col("birth_date", "date", "Date of birth (individuals; null for businesses).", nullable=True, pii=True),
        Col("email", "str", "Contact e-mail address.", nullable=True, pii=True),
        Col("email_first_seen_at", "timestamp", "When the e-mail address was first seen by the platform's data providers (age of the e-mail).", required=False, nullable=True),
        Col("phone", "str", "Phone number in E.164 form (+country code).", nullable=True, pii=True),
        Col("address", "str", "Postal address (street, city).", nullable=True, pii=True),
        Col("nationality", "country", "ISO 3166-1 alpha-2 nationality (individuals; null for businesses).", nullable=True),
        Col("residence_country", "country", "ISO 3166-1 alpha-2 country of residence or registered office.", nullable=True),
        Col("document_type", "category", "Type of the identity or registration document.", nullable=True, allowed=DOCUMENT_TYPES),
        Col("document_number", "str", "Document number; passports and national ids end in an ICAO 9303 check digit.", nullable=True, pii=True),
        Col("document_country", "country", "ISO 3166-1 alpha-2 issuing country of the document.", nullable=True),
        Col("document_expiry", "date", "Expiry date of the document (null for registrations that do not expire).", nullable=True),
        Col("business_registration_number", "str", "Company registration number (businesses only).", nullable=True, pii=True),
        Col("business_registered_at", "date", "Company incorporation date (businesses only).", nullable=True),
        Col("industry", "category", "Declared industry (businesses only).", nullable=True, allowed=INDUSTRIES),
        Col("twofa_enabled", "bool", "Whether two-factor authentication was on at onboarding; later changes are account events.", nullable=True),
        Col("onboarded_at", "timestamp", "When the customer was onboarded (UTC)."),
        Col("last_kyc_review_at", "timestamp", "When the KYC profile was last reviewed (UTC); onboarding counts as a review.", nullable=True),
        Col("declared_monthly_volume_usd", "float", "Expected monthly transaction volume declared at the last KYC review, in USD.", nullable=True, min_value=0.0, max_value=MAX_AMOUNT),
    ),
)

TRANSACTIONS = Table(
    name="transactions",
    description="Orders and their payments between a buyer and a seller on the marketplace.",
    key=("transaction_id",),
    columns=(
        Col("transaction_id", "str", "Stable transaction identifier.", identifier=True),
        Col("occurred_at", "timestamp", "When the order was placed (UTC)."),
        Col("buyer_id", "str", "Buying customer.", identifier=True, foreign_key="customers.customer_id"),
        Col("seller_id", "str", "Selling customer.", identifier=True, foreign_key="customers.customer_id"),
        Col("amount", "float", "Order amount in `currency` (> 0).", min_value=0.0, min_exclusive=True, max_value=MAX_AMOUNT),
        Col("currency", "category", "ISO 4217 currency of `amount` and `unit_price`.", allowed=CURRENCIES),
        Col("goods_category", "category", "Category of the goods ordered.", allowed=GOODS_CATEGORIES),
        Col("unit_price", "float", "Price of one unit in `currency` (> 0).", min_value=0.0, min_exclusive=True, max_value=MAX_AMOUNT),
        Col("quantity", "int", "Number of units (>= 1).", min_value=1.0, max_value=MAX_QUANTITY),
        Col("payment_method", "category", "How the buyer paid.", allowed=PAYMENT_METHODS),
        Col("buyer_country", "country", "ISO 3166-1 alpha-2 country the goods ship to.", nullable=True),
        Col("seller_country", "country", "ISO 3166-1 alpha-2 country the goods ship from.", nullable=True),
        Col("device_id", "str", "Buyer's device fingerprint (null when unknown); a pseudonymous identifier of a person's device.", nullable=True, pii=True),
        Col("ip_address", "str", "Buyer's IP address (null when unknown).", nullable=True, pii=True),
        Col("ip_country", "country", "Country of the buyer's IP address (null when unknown).", nullable=True),
    ),
)

ACCOUNT_EVENTS = Table(
    name="account_events",
    description="Security-relevant account events: logins, password resets, device and 2FA changes.",
    key=("event_id",),
    columns=(
        Col("event_id", "str", "Stable event identifier.", identifier=True),
        Col("customer_id", "str", "Customer whose account it is.", identifier=True, foreign_key="customers.customer_id"),
        Col("occurred_at", "timestamp", "When the event happened (UTC)."),
        Col("event_type", "category", "What happened.", allowed=EVENT_TYPES),
        Col("device_id", "str", "Device fingerprint used (null when unknown); a pseudonymous identifier of a person's device.", nullable=True, pii=True),
        Col("ip_address", "str", "IP address used (null when unknown).", nullable=True, pii=True),
        Col("ip_country", "country", "Country of the IP address (null when unknown).", nullable=True),
    ),
)

WATCHLIST = Table(
    name="watchlist",
    description="Sanctions and politically-exposed-person (PEP) list entries to screen customers against.",
    key=("entry_id",),
    columns=(
        Col("entry_id", "str", "Stable list entry identifier.", identifier=True),
        Col("list_type", "category", "Sanction or PEP.", allowed=LIST_TYPES),
        Col("full_name", "str", "Primary name of the listed person or entity.", pii=True),
        Col("aliases", "str", "Other names and spellings, separated by '|' (empty string when none).", nullable=True, pii=True),
        Col("birth_date", "date", "Date of birth when known.", nullable=True, pii=True),
        Col("country", "country", "Country associated with the entry when known.", nullable=True),
        Col("listed_at", "timestamp", "When the entry was added to the list (UTC).", required=False, nullable=True),
    ),
)

LABELS_TABLE = Table(
    name="labels",
    description="What became known about a transaction or a customer, and when it became known.",
    key=("label_id",),
    columns=(
        Col("label_id", "str", "Stable label identifier.", identifier=True),
        Col("entity_type", "category", "Whether the label is about a transaction or a customer.", allowed=LABEL_ENTITY_TYPES),
        Col("entity_id", "str", "transaction_id or customer_id the label is about.", identifier=True),
        Col("label", "category", "What was found.", allowed=LABELS),
        Col("known_at", "timestamp", "When the outcome became known to the platform (UTC); features and training may use a label only after this time."),
        Col("source", "category", "How it became known.", required=False, nullable=True, allowed=LABEL_SOURCES),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (CUSTOMERS, TRANSACTIONS, ACCOUNT_EVENTS, WATCHLIST, LABELS_TABLE)
}
# Tables a data folder must contain; the others default to empty tables when absent.
REQUIRED_TABLES = ("customers", "transactions")
# Non-contract tables that readers and adapters may return beside the contract tables: ground
# truth of planted patterns, for per-pattern evaluation only (never a feature). Not validated.
AUXILIARY_TABLES = ("patterns",)

# --- In-memory dtypes: what a contract column holds once read ----------------------------------

TIME_DTYPE = pd.DatetimeTZDtype("us", "UTC")
_STORED_AS: dict[str, Any] = {
    "str": "str",
    "category": "str",
    "country": "str",
    "float": "float64",
    "int": "int64",
    "bool": "boolean",
    "timestamp": TIME_DTYPE,
    "date": TIME_DTYPE,
}


def contract_dtype(col: Col) -> Any:
    """The pandas dtype a column of this contract kind has after reading (``int64`` for ints).

    Text kinds (``str``, ``category``, ``country``) are pandas ``str``; ``int`` is ``int64``
    (readers give ``Int64`` when nulls are present); ``bool`` is the nullable ``boolean``;
    timestamps and dates are ``datetime64[us, UTC]``.
    """
    return _STORED_AS[col.kind]


def empty_table(name: str) -> pd.DataFrame:
    """An empty frame of contract table ``name``: every contract column with its contract dtype."""
    table = TABLES[name]
    return pd.DataFrame({c.name: pd.Series([], dtype=contract_dtype(c)) for c in table.columns})
