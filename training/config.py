"""Typed training configuration: every setting of both models with its default, read from TOML and validated.

The dataclasses below are the one place the defaults live; ``training/config.toml`` spells the
same values out so that a copy of it shows every setting (``kycrisk train --config FILE``). A file
may leave out any key: tables merge key by key with the defaults (``[fraud.lightgbm]`` and
``[risk.lightgbm]`` too), except ``[gate]``, which is one rule set and is taken as a whole when
present (a default fairness bound silently added to someone's own gate would be a check they did
not ask for). An unknown key or a value of the wrong type is refused with ``ConfigError`` naming
the key, so that a misspelt setting never falls back to a default unnoticed.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.gate import Gate

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).with_name("config.toml")
CALIBRATIONS = ("isotonic", "sigmoid")
# [gate.<name>] sub-tables: the risk-tier model's keys replacing [gate]'s (the fraud gate is [gate]).
GATE_OVERRIDES = ("risk",)
_GATE_KEYS = frozenset(f.name for f in dataclasses.fields(Gate))


class ConfigError(ValueError):
    """A configuration that cannot be used: unknown key, wrong type or value out of range."""


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """``[split]``: consecutive train / validation / test periods separated by the label delay."""

    label_delay_days: int = 30
    train_frac: float = 0.6
    valid_frac: float = 0.2
    test_frac: float = 0.2

    @property
    def label_delay(self) -> str:
        """The gap between periods as a pandas offset (``"30D"``)."""
        return f"{self.label_delay_days}D"


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    """``[policy]``: review and rejection costs and the review capacity the tier thresholds respect."""

    review_cost: float = 5.0
    review_capacity: float = 0.03
    reject_cost: float = 25.0
    reject_margin: float = 0.1
    review_detection_rate: float = 0.85


def _fraud_lightgbm() -> dict[str, Any]:
    # Small, depth-limited trees keep exact TreeSHAP reasons within the serving budget.
    return {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "max_depth": 4,
        "min_child_samples": 40,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "n_jobs": 2,
        "verbose": -1,
    }


def _risk_lightgbm() -> dict[str, Any]:
    return {**_fraud_lightgbm(), "n_estimators": 200, "min_child_samples": 20}


@dataclasses.dataclass(frozen=True)
class FraudConfig:
    """``[fraud]``: the order-level fraud model."""

    feature_set: str = "fraud_v1"
    calibration: str = "isotonic"
    lightgbm: dict[str, Any] = dataclasses.field(default_factory=_fraud_lightgbm)


@dataclasses.dataclass(frozen=True)
class RiskConfig:
    """``[risk]``: the customer risk-tier model; the ``[policy]`` keys set here replace them for customers."""

    snapshot_every_days: int = 30
    calibration: str = "sigmoid"
    missed_customer_cost: float = 2000.0
    # the seller rule of features.customer.customer_targets
    seller_min_bad: int = 3
    seller_min_share: float = 0.5
    # KYC_OUTGROWN: 30-day volume at least this many times the declared monthly volume
    outgrown_volume_ratio: float = 2.0
    outgrown_min_review_age_days: float = 0.0
    high_action: str = "reject"
    review_cost: float | None = None
    review_capacity: float | None = None
    reject_cost: float | None = None
    reject_margin: float | None = None
    review_detection_rate: float | None = None
    lightgbm: dict[str, Any] = dataclasses.field(default_factory=_risk_lightgbm)

    @property
    def snapshot_every(self) -> str:
        """Spacing of the regular snapshots as a pandas offset (``"30D"``)."""
        return f"{self.snapshot_every_days}D"

    def target_settings(self) -> dict[str, Any]:
        """The target rule and its seller settings, as logged with the run and the model."""
        return {
            "rule": "features.customer.customer_targets",
            "seller_min_bad": self.seller_min_bad,
            "seller_min_share": self.seller_min_share,
        }

    def review_rule_settings(self) -> dict[str, float]:
        """Settings of the review rules (``training.risk_rules.review_flags``)."""
        return {
            "outgrown_volume_ratio": self.outgrown_volume_ratio,
            "outgrown_min_review_age_days": self.outgrown_min_review_age_days,
        }


def _default_gate() -> dict[str, Any]:
    return {
        "metrics": ["average_precision", "recall_at_fpr_1pct", "auc_roc"],
        "tolerance": 0.005,
        "fairness_min": {"segment.buyer_type.fpr_min_max_ratio": 0.5},
    }


def _default_gate_overrides() -> dict[str, dict[str, Any]]:
    return {
        "risk": {
            "metrics": ["average_precision", "not_yet_known.average_precision", "auc_roc"],
            "fairness_min": {"segment.customer_type.fpr_min_max_ratio": 0.35},
        }
    }


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """``[gate]``: the fraud model's promotion gate and ``[gate.<model>]`` overrides.

    Attributes:
        base: the ``training.gate.Gate`` keys of ``[gate]`` as given.
        overrides: ``{"risk": {...}}``: keys that replace ``base``'s for that model.
    """

    base: dict[str, Any] = dataclasses.field(default_factory=_default_gate)
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=_default_gate_overrides)

    def settings(self, model: str | None = None) -> dict[str, Any]:
        """The gate keys of one model: ``base`` (``model=None``), else ``base`` with ``[gate.<model>]``'s keys.

        Without ``[gate.<model>]`` the base gate is used as it is; its fairness keys name the fraud
        model's segments, so that gate fails closed on the other model's metrics (refused, the
        reason naming the key) rather than silently skipping fairness.
        """
        if model is None:
            return dict(self.base)
        override = self.overrides.get(model)
        if override is None:
            log.warning(
                "no [gate.%s] in the configuration: using [gate] as it is; its fairness keys name the fraud "
                "model's segments, so the %s gate fails closed until [gate.%s.fairness_min] names "
                "segment.customer_type.fpr_min_max_ratio (training/config.py)",
                model,
                model,
                model,
            )
            return dict(self.base)
        return {**self.base, **override}

    def gate(self, model: str | None = None) -> Gate:
        """The ``Gate`` of ``settings(model)``."""
        return Gate.from_dict(self.settings(model))

    def to_dict(self) -> dict[str, Any]:
        """The ``[gate]`` table: base keys and override sub-tables."""
        return {**self.base, **{name: dict(keys) for name, keys in self.overrides.items()}}


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole training configuration (``training/config.toml``)."""

    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    fraud: FraudConfig = dataclasses.field(default_factory=FraudConfig)
    risk: RiskConfig = dataclasses.field(default_factory=RiskConfig)
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)
    gate: GateConfig = dataclasses.field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        for name, section in (("fraud", self.fraud), ("risk", self.risk)):
            if section.calibration not in CALIBRATIONS:
                raise ConfigError(
                    f"{name}.calibration must be one of {', '.join(CALIBRATIONS)}, got {section.calibration!r}"
                )
        if self.split.label_delay_days < 0:
            raise ConfigError(f"split.label_delay_days must be >= 0, got {self.split.label_delay_days}")
        if self.risk.snapshot_every_days < 1:
            raise ConfigError(f"risk.snapshot_every_days must be >= 1, got {self.risk.snapshot_every_days}")

    @property
    def risk_policy(self) -> PolicyConfig:
        """``[policy]`` for customers: each key that ``[risk]`` sets replaces ``[policy]``'s."""
        return dataclasses.replace(
            self.policy,
            **{
                f.name: getattr(self.risk, f.name)
                for f in dataclasses.fields(PolicyConfig)
                if getattr(self.risk, f.name) is not None
            },
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "configuration") -> Config:
        """Validate a parsed TOML document (a nested mapping) into a ``Config``.

        Raises:
            ConfigError: an unknown key, a value of the wrong type or out of range.
        """
        sections = _fields(cls, data, where)
        values: dict[str, Any] = {}
        for name, table in sections.items():
            if name == "gate":
                values[name] = _gate(table, where)
            else:
                values[name] = _section(_SECTIONS[name], table, name)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of the settings in force (unset ``[risk]`` overrides left out)."""
        out = {
            name: {k: v for k, v in dataclasses.asdict(getattr(self, name)).items() if v is not None}
            for name in _SECTIONS
        }
        out["gate"] = self.gate.to_dict()
        return out


_SECTIONS: dict[str, type] = {
    "split": SplitConfig,
    "fraud": FraudConfig,
    "risk": RiskConfig,
    "policy": PolicyConfig,
}


def _fields(cls: type, table: Any, label: str) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{label} must be a table, got {type(table).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigError(f"unknown key {', '.join(unknown)} in {label} (known: {', '.join(known)})")
    return dict(table)


def _section(cls: type, table: Any, where: str) -> Any:
    values = _fields(cls, table, f"[{where}]")
    hints = typing.get_type_hints(cls)
    defaults = cls()
    checked = {}
    for name, value in values.items():
        if name == "lightgbm":
            checked[name] = {**getattr(defaults, name), **_lightgbm(value, f"{where}.{name}")}
        else:
            checked[name] = _typed(value, hints[name], f"{where}.{name}")
    return cls(**checked)


def _typed(value: Any, hint: Any, key: str) -> Any:
    """``value`` as the annotated scalar type (an int is a float too; a bool is neither)."""
    wanted = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
    if float in wanted and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if int in wanted and isinstance(value, int) and not isinstance(value, bool):
        return value
    if str in wanted and isinstance(value, str):
        return value
    names = " or ".join(t.__name__ for t in wanted)
    raise ConfigError(f"{key} must be {names}, got {type(value).__name__} {value!r}")


def _lightgbm(table: Any, where: str) -> dict[str, Any]:
    # LightGBM's own parameter names: any key LGBMClassifier accepts, scalar values only.
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{where}] must be a table, got {type(table).__name__}")
    for key, value in table.items():
        if not isinstance(value, bool | int | float | str):
            raise ConfigError(
                f"{where}.{key} must be a number, string or boolean, got {type(value).__name__}"
            )
    return dict(table)


def _gate(table: Any, where: str) -> GateConfig:
    if not isinstance(table, Mapping):
        raise ConfigError(f"[gate] must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - _GATE_KEYS - set(GATE_OVERRIDES))
    if unknown:
        known = ", ".join([*sorted(_GATE_KEYS), *(f"[gate.{name}]" for name in GATE_OVERRIDES)])
        raise ConfigError(f"unknown key {', '.join(unknown)} in [gate] (known: {known})")
    base = {key: value for key, value in table.items() if key in _GATE_KEYS}
    overrides = {}
    for name in GATE_OVERRIDES:
        if name in table:
            override = table[name]
            if not isinstance(override, Mapping):
                raise ConfigError(f"[gate.{name}] must be a table, got {type(override).__name__}")
            overrides[name] = dict(override)
    for name, keys in (("gate", base), *((f"gate.{n}", {**base, **o}) for n, o in overrides.items())):
        try:
            Gate.from_dict(keys)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[{name}] in {where}: {exc}") from None
    return GateConfig(base=base, overrides=overrides)


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a training configuration file (``training/config.toml`` by default).

    Raises:
        ValueError: the file is not valid TOML (``ConfigError``, a ``ValueError``, when a key is
            unknown or has the wrong type).
    """
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    return Config.from_dict(data, where=str(path))


def as_config(config: Config | Mapping[str, Any] | None) -> Config:
    """A ``Config`` from a ``Config``, a parsed TOML mapping or ``None`` (the defaults)."""
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    return Config.from_dict(config)


def gate_config(config: Config | Mapping[str, Any], model: str = "risk") -> dict[str, Any]:
    """The gate settings of one model: ``[gate]`` with ``[gate.<model>]``'s keys replacing its own.

    Args:
        config: the training configuration (or its parsed TOML).
        model: name of the override table (``risk``).

    Returns:
        A dict for ``training.gate.Gate.from_dict``.
    """
    return as_config(config).gate.settings(model)
