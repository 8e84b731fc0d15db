"""firetape.toml: one file, environment overrides, validated before anything starts.

Every section is a msgspec Struct that rejects unknown keys, so a typo stops start-up with
the key's name instead of being silently ignored. Overrides come from variables named
FIRETAPE_<SECTION>__<KEY> (double underscore between levels), e.g.
FIRETAPE_RISK__MAX_DRAWDOWN=0.05 or FIRETAPE_STRATEGIES__SMA_CROSS__FAST=5; the value is
read as a TOML value when it parses as one, else as a string.
"""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from agents.aggregation import AggregationConfig
from agents.allocator import OrderTerms
from agents.sizing import SizingConfig
from connectors.alpaca.config import AlpacaConfig
from connectors.paper.config import ExecutionConfig
from risk.limits import RiskLimits

ENV_PREFIX = "FIRETAPE_"


class ConfigError(ValueError):
    """A configuration that cannot start: names the key and the reason."""


class RunSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    account: str = "paper"
    strategies: list[str] = msgspec.field(default_factory=lambda: ["sma_cross"])


class PortfolioSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    initial_cash: Decimal = Decimal(1_000_000)

    def __post_init__(self) -> None:
        if self.initial_cash <= 0:
            raise ValueError("portfolio.initial_cash: must be positive")


class LogSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    level: str = "info"
    format: str = "auto"     # auto (console in a terminal, JSON otherwise) | console | json


class FiretapeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The whole configuration; every section has working defaults."""

    run: RunSection = RunSection()
    portfolio: PortfolioSection = PortfolioSection()
    execution: ExecutionConfig = ExecutionConfig()
    sizing: SizingConfig = SizingConfig()
    aggregation: AggregationConfig = AggregationConfig()
    orders: OrderTerms = OrderTerms()
    risk: RiskLimits = RiskLimits()
    strategies: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    log: LogSection = LogSection()
    alpaca: AlpacaConfig = AlpacaConfig()


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_env(data: dict, environ: Mapping[str, str]) -> dict:
    """Fold FIRETAPE_A__B=value variables into the nested `data` (copying what it changes)."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        node = data
        for part in path[:-1]:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[path[-1]] = _parse_env_value(text)
    return data


_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`")


def _explain(error: Exception, source: str) -> ConfigError:
    """Turn msgspec's message into 'source: key.path: reason'."""
    message = str(error)
    match = _AT.search(message)
    path = match.group("path").replace("[", ".").replace("]", "").replace("'", "") if match else ""
    reason = _AT.sub("", message)
    unknown = re.search(r"unknown field `([^`]+)`", reason)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        reason = "unknown key"
    return ConfigError(f"{source}: {path or '(top level)'}: {reason}")


def load_config(path: str | Path | None = None,
                environ: Mapping[str, str] | None = None) -> FiretapeConfig:
    """Read and validate the config (defaults when `path` is None) plus env overrides."""
    source = str(path) if path else "defaults"
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    data = apply_env(data, os.environ if environ is None else environ)
    try:
        config = msgspec.convert(data, FiretapeConfig, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise _explain(exc, source) from None
    validate_strategies(config, source)
    return config


def validate_strategies(config: FiretapeConfig, source: str = "config") -> None:
    """Every configured strategy resolves and its [strategies.NAME] params validate."""
    from strategies.registry import make_params, resolve

    for name in config.run.strategies:
        try:
            make_params(resolve(name), config.strategies.get(name, {}))
        except (ValueError, ImportError, AttributeError) as exc:
            raise ConfigError(f"{source}: strategies.{name}: {exc}") from None
    for name in config.strategies:
        if name not in config.run.strategies:
            try:
                resolve(name)
            except (ValueError, ImportError, AttributeError) as exc:
                raise ConfigError(f"{source}: strategies.{name}: {exc}") from None


def strategy_setup(config: FiretapeConfig) -> tuple:
    """What a strategy's state depends on besides its code: the configured strategies in
    order with their parameters, and the sizing method (vol_target makes the strategy
    stage track volatility). State made under one setup is no use under another."""
    return (tuple((name, tuple(sorted(config.strategies.get(name, {}).items())))
                  for name in config.run.strategies), config.sizing.method)


def with_strategies(config: FiretapeConfig, names: list[str]) -> FiretapeConfig:
    """The config with its strategy list replaced (the CLI's --strategy)."""
    return msgspec.structs.replace(config, run=msgspec.structs.replace(config.run,
                                                                      strategies=names))


def to_builtins(config: FiretapeConfig) -> dict:
    """The whole config as plain data, for run.json (Decimals as strings): a replay uses
    exactly these values, whatever the defaults of a later version are."""
    return msgspec.to_builtins(config)


def settings_of(config: FiretapeConfig) -> dict:
    """Only what differs from the defaults and can change a run's events, as plain data:
    what the run id is derived from. A section or key added later with a default, a
    strategy parameter spelled out at its default, or the log level does not change it."""
    from strategies.registry import make_params, resolve

    data = to_builtins(config)
    del data["log"]
    data["strategies"] = {}
    for name, given in config.strategies.items():
        cls = resolve(name)
        changed = _differences(msgspec.to_builtins(make_params(cls, given)),
                               msgspec.to_builtins(make_params(cls, {})))
        if changed:
            data["strategies"][name] = changed
    defaults = to_builtins(FiretapeConfig())
    del defaults["log"]
    return _differences(data, defaults)


def _differences(value, default):
    if isinstance(value, dict) and isinstance(default, dict):
        return {key: _differences(item, default.get(key)) for key, item in value.items()
                if key not in default or item != default[key]}
    return value
