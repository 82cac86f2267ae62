"""Shared state of one generator run: reference arrays, clock, device and IP registries, row accumulators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features import contracts
from features.reference import iso_country_codes, load_reference
from features.synthetic.names import COUNTRY_POOL, POOL_CODES, REGION_POOL
from features.units import US_PER_DAY

if TYPE_CHECKING:
    from features.synthetic.behaviour import Habits
    from features.synthetic.population import Population

NULL = -1  # index meaning "no value" in every integer-coded column

CATEGORY = {name: i for i, name in enumerate(contracts.GOODS_CATEGORIES)}
CURRENCY = {name: i for i, name in enumerate(contracts.CURRENCIES)}
PAYMENT = {name: i for i, name in enumerate(contracts.PAYMENT_METHODS)}
INDUSTRY = {name: i for i, name in enumerate(contracts.INDUSTRIES)}
EVENT = {name: i for i, name in enumerate(contracts.EVENT_TYPES)}
LABEL = {name: i for i, name in enumerate(contracts.LABELS)}
SOURCE = {name: i for i, name in enumerate(contracts.LABEL_SOURCES)}
DOCUMENT = {name: i for i, name in enumerate(contracts.DOCUMENT_TYPES)}
INDIVIDUAL, BUSINESS = 0, 1
BUYER, SELLER, BOTH = 0, 1, 2


@dataclass(frozen=True)
class Reference:
    """The reference CSVs as arrays aligned with the contracts' category tuples."""

    iso2: np.ndarray
    name: np.ndarray
    region: np.ndarray
    customer_weight: np.ndarray
    seller_weight: np.ndarray
    calling_code: np.ndarray
    utc_offset: np.ndarray
    currency: np.ndarray
    pool: np.ndarray
    cat_price: np.ndarray
    cat_sigma: np.ndarray
    cat_share: np.ndarray
    usd_per_unit: np.ndarray
    precursor_reason: np.ndarray
    free_domains_global: tuple[str, ...]
    free_domains_local: dict[str, tuple[str, ...]]
    country_index: dict[str, int]

    def country(self, iso2: str) -> int:
        return self.country_index[iso2]

    def countries(self, codes: list[str] | tuple[str, ...]) -> np.ndarray:
        return np.array([self.country_index[c] for c in codes], dtype=np.int64)


def _aligned(table: pd.DataFrame, key: str, values: tuple[str, ...], name: str) -> pd.DataFrame:
    missing = sorted(set(values) - set(table[key]))
    if missing:
        raise ValueError(f"data/reference/{name}.csv lacks {key} values {missing}")
    return table.set_index(key).loc[list(values)]


def load_world_reference() -> Reference:
    """Read and check the reference CSVs the generator needs.

    Raises:
        ValueError: when a reference file lacks a value of the contracts, naming file and values.
    """
    countries = load_reference("countries").copy()
    unknown = sorted(set(countries["iso2"]) - iso_country_codes())
    if unknown:
        raise ValueError(f"data/reference/countries.csv holds non-ISO codes {unknown}")
    currency = countries["marketplace_currency"].map(CURRENCY)
    if currency.isna().any():
        raise ValueError("data/reference/countries.csv: marketplace_currency outside contracts.CURRENCIES")
    pool_index = {code: i for i, code in enumerate(POOL_CODES)}
    pool = [
        pool_index[COUNTRY_POOL.get(iso, REGION_POOL[region])]
        for iso, region in zip(countries["iso2"], countries["region"], strict=True)
    ]
    goods = _aligned(
        load_reference("goods_categories"), "category", contracts.GOODS_CATEGORIES, "goods_categories"
    )
    fx = _aligned(load_reference("fx_rates"), "currency", contracts.CURRENCIES, "fx_rates")
    industries = _aligned(load_reference("industries"), "industry", contracts.INDUSTRIES, "industries")
    domains = load_reference("free_email_domains")
    local: dict[str, list[str]] = {}
    for domain, iso in zip(domains["domain"], domains["country"].fillna(""), strict=True):
        if iso:
            local.setdefault(iso, []).append(domain)
    share = goods["retail_catalogue_share"].to_numpy(dtype=float)
    return Reference(
        iso2=countries["iso2"].to_numpy(dtype=object),
        name=countries["name"].to_numpy(dtype=object),
        region=countries["region"].to_numpy(dtype=object),
        customer_weight=_normalised(countries["marketplace_weight"].to_numpy(dtype=float)),
        seller_weight=_normalised(countries["seller_weight"].to_numpy(dtype=float)),
        calling_code=countries["calling_code"].fillna(0).astype("int64").astype(str).to_numpy(dtype=object),
        utc_offset=countries["utc_offset_hours"].to_numpy(dtype=float),
        currency=currency.to_numpy(dtype=np.int64),
        pool=np.array(pool, dtype=np.int64),
        cat_price=goods["reference_unit_price_usd"].to_numpy(dtype=float),
        cat_sigma=goods["price_log_sigma"].to_numpy(dtype=float),
        cat_share=share / share.sum(),
        usd_per_unit=fx["usd_per_unit"].to_numpy(dtype=float),
        precursor_reason=industries["precursor_business_reason"]
        .astype(str)
        .str.lower()
        .eq("true")
        .to_numpy(),
        free_domains_global=tuple(domains.loc[domains["country"].isna(), "domain"]),
        free_domains_local={k: tuple(v) for k, v in local.items()},
        country_index={iso: i for i, iso in enumerate(countries["iso2"])},
    )


def _normalised(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def choice(rng: np.random.Generator, options: dict, size: int) -> np.ndarray:
    """Draw ``size`` keys of ``options`` ({value: weight}) as an array (weights need not sum to 1)."""
    keys = np.array(list(options))
    cum = np.cumsum(np.fromiter(options.values(), dtype=float, count=len(options)))
    index = np.searchsorted(cum, rng.random(size) * cum[-1], side="right")
    return keys[np.minimum(index, len(keys) - 1)]


@dataclass
class Clock:
    """The generated period: ``start`` (inclusive) to ``end`` (exclusive), in microseconds since the epoch."""

    start: int
    days: int

    @property
    def end(self) -> int:
        return self.start + self.days * US_PER_DAY

    @staticmethod
    def parse(start: str, days: int) -> Clock:
        ts = pd.Timestamp(start)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        if ts != ts.normalize():
            raise ValueError(f"start must be a date (UTC midnight), got {start!r}")
        return Clock(start=int(ts.value // 1000), days=days)


class Devices:
    """Device fingerprints, created on demand and rendered as 16 hex digits at the end."""

    def __init__(self) -> None:
        self.count = 0

    def new(self, n: int) -> np.ndarray:
        idx = np.arange(self.count, self.count + n, dtype=np.int64)
        self.count += n
        return idx

    def strings(self, rng: np.random.Generator) -> np.ndarray:
        values = rng.integers(0, 2**63 - 1, size=self.count, dtype=np.int64)
        # Fingerprints are hashes: fixed-width lower-case hex, unique by construction below.
        text = np.char.mod("%016x", values).astype(object)
        _, first = np.unique(text, return_index=True)
        if len(first) != len(text):  # astronomically unlikely; keep uniqueness anyway
            text = np.array([f"{v:016x}{i:x}" for i, v in enumerate(values)], dtype=object)
        return text


class IPs:
    """IPv4 addresses whose country is known: each country owns a few /16 blocks of public space."""

    def __init__(self, rng: np.random.Generator, ref: Reference) -> None:
        first = np.array([a for a in range(1, 224) if a not in (10, 100, 127, 169, 172, 192, 198, 203)])
        blocks = (first[:, None] * 256 + np.arange(256)[None, :]).ravel()
        blocks = rng.permutation(blocks)
        # Bigger markets get more blocks; every country gets at least two so any can be drawn.
        weight = np.maximum(ref.customer_weight, ref.seller_weight)
        per_country = np.maximum(2, np.round(weight * 4000)).astype(int)
        bounds = np.concatenate([[0], np.cumsum(per_country)])
        self.block_start = bounds[:-1]
        self.block_count = per_country
        self.blocks = blocks[: bounds[-1]]
        self.country: list[np.ndarray] = []
        self.address: list[np.ndarray] = []
        self.count = 0

    def new(self, rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
        country = np.asarray(country, dtype=np.int64)
        n = len(country)
        block = self.blocks[
            self.block_start[country] + rng.integers(0, 1 << 30, n) % self.block_count[country]
        ]
        host = rng.integers(256, 65279, n)  # avoid x.y.0.z network and x.y.255.255 broadcast
        host = np.where(host % 256 == 0, host + 1, host)
        host = np.where(host % 256 == 255, host - 1, host)
        self.country.append(country)
        self.address.append(block * 65536 + host)
        idx = np.arange(self.count, self.count + n, dtype=np.int64)
        self.count += n
        return idx

    def countries(self) -> np.ndarray:
        return np.concatenate(self.country) if self.country else np.zeros(0, dtype=np.int64)

    def strings(self) -> np.ndarray:
        address = np.concatenate(self.address) if self.address else np.zeros(0, dtype=np.int64)
        octets = [(address >> shift) & 255 for shift in (24, 16, 8, 0)]
        text = pd.Series(octets[0]).astype(str)
        for octet in octets[1:]:
            text = text + "." + pd.Series(octet).astype(str)
        return text.to_numpy(dtype=object)


@dataclass
class Rows:
    """Append-only columns (numpy arrays) with defaults, concatenated once at the end."""

    defaults: dict[str, tuple[type, object]]
    chunks: list[dict[str, np.ndarray]] = field(default_factory=list)
    count: int = 0

    def add(self, **columns: np.ndarray) -> np.ndarray:
        """Append rows; return their running row numbers (``uid``), stable across the run."""
        lengths = {len(np.atleast_1d(v)) for v in columns.values() if np.ndim(v) > 0}
        if len(lengths) != 1:
            raise ValueError(f"columns of different lengths: {lengths}")
        n = lengths.pop()
        unknown = set(columns) - set(self.defaults)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}")
        chunk = {}
        for name, (dtype, default) in self.defaults.items():
            value = columns.get(name, default)
            chunk[name] = np.broadcast_to(np.asarray(value, dtype=dtype), (n,)).copy()
        uid = np.arange(self.count, self.count + n, dtype=np.int64)
        chunk["uid"] = uid
        self.chunks.append(chunk)
        self.count += n
        return uid

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the rows where ``mask`` (over ``concat()`` order); ``uid`` values stay as they were."""
        rows = self.concat()
        self.replace({name: values[mask] for name, values in rows.items()})

    def replace(self, rows: dict[str, np.ndarray]) -> None:
        """Replace all rows by ``rows`` (edited columns of ``concat()``, with their ``uid``)."""
        if set(rows) != {*self.defaults, "uid"}:
            raise KeyError(f"expected columns {sorted({*self.defaults, 'uid'})}")
        self.chunks = [rows]

    def concat(self) -> dict[str, np.ndarray]:
        names = [*self.defaults, "uid"]
        if not self.chunks:
            return {
                n: np.zeros(0, dtype=self.defaults[n][0] if n in self.defaults else np.int64) for n in names
            }
        return {n: np.concatenate([c[n] for c in self.chunks]) for n in names}


def transaction_rows() -> Rows:
    i8 = np.int64
    return Rows(
        {
            "t": (i8, 0),
            "buyer": (i8, NULL),
            "seller": (i8, NULL),
            "cat": (i8, 0),
            "unit_usd": (np.float64, np.nan),
            "unit_local": (np.float64, np.nan),  # set when a pattern picks a round local price
            "qty": (i8, 1),
            "cur": (i8, 0),
            "pay": (i8, 0),
            "ship": (i8, NULL),
            "dev": (i8, NULL),
            "ip": (i8, NULL),
            "pattern": (i8, NULL),
            "instance": (i8, NULL),
            "stage": (i8, NULL),
        }
    )


def event_rows() -> Rows:
    i8 = np.int64
    return Rows({"t": (i8, 0), "customer": (i8, NULL), "type": (i8, 0), "dev": (i8, NULL), "ip": (i8, NULL)})


def label_rows() -> Rows:
    i8 = np.int64
    # entity: 0 transaction (ref = transaction uid), 1 customer (ref = customer index)
    return Rows(
        {
            "entity": (i8, 0),
            "ref": (i8, 0),
            "label": (i8, 0),
            "known_at": (i8, 0),
            "source": (i8, 0),
            "pattern": (i8, NULL),
            "instance": (i8, NULL),
        }
    )


def member_rows() -> Rows:
    """Customers taking part in a planted pattern (ground truth, not a feature)."""
    i8 = np.int64
    return Rows({"customer": (i8, 0), "pattern": (i8, 0), "instance": (i8, NULL), "stage": (i8, NULL)})


@dataclass
class World:
    """Everything one run builds: reference, clock, population, habits, registries and rows."""

    rng: np.random.Generator
    ref: Reference
    clock: Clock
    pop: Population
    devices: Devices
    ips: IPs
    tx: Rows = field(default_factory=transaction_rows)
    events: Rows = field(default_factory=event_rows)
    labels: Rows = field(default_factory=label_rows)
    members: Rows = field(default_factory=member_rows)
    habits: Habits | None = None
    # Customers whose whole activity a pattern writes (no ordinary orders as buyer or seller).
    scripted: np.ndarray | None = None
    # Customers already given a role in a pattern (patterns pick disjoint customers).
    taken: np.ndarray | None = None
    # When an account was frozen (sanctions hit): no orders or events from then on.
    frozen_at: np.ndarray | None = None
    # Ordinary sellers by category they list (built once habits exist).
    category_sellers: dict[int, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.scripted = np.zeros(self.pop.n, dtype=bool)
        self.taken = np.zeros(self.pop.n, dtype=bool)
        self.frozen_at = np.full(self.pop.n, np.iinfo(np.int64).max, dtype=np.int64)
