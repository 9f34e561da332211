"""Job configuration: typed defaults in code, YAML files in conf/, `--set key=value` on top.

Each job declares a dataclass of its settings. `load_config` layers, in order:
the dataclass defaults, the YAML file, then command-line overrides, and checks
every key and type so a typo fails the job before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sparkrec.core.errors import SparkrecError

C = TypeVar("C")


class ConfigError(SparkrecError):
    """A configuration key or value that the job cannot use."""


ALL = "all"


def count_or_all(name: str, value: str) -> int | None:
    """A setting that holds a positive integer or "all": that integer, or None for all."""
    if value == ALL:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name}: expected a positive integer or 'all', got {value!r}")
    return int(value)


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Turn a YAML or command-line value into the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in options:
                return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(name, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{name}: {value!r} fits none of {annotation}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        try:
            return int(str(value), 10)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return str(value)
    if origin is list or annotation is list:
        (item_type,) = typing.get_args(annotation) or (str,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        return [_coerce(name, v, item_type) for v in value]
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"{name}: expected one of {list(allowed)}, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported type {annotation}")


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`["a=1", "b=x"]` -> `{"a": "1", "b": "x"}`."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        result[key.strip()] = value.strip()
    return result


def load_config(cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> C:
    """Build a `cls` instance from defaults, an optional YAML file and overrides."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        layers.append((str(path), loaded))
    layers.append(("--set", overrides or {}))
    for origin, layer in layers:
        for key, value in layer.items():
            if key not in fields:
                raise ConfigError(f"{origin}: unknown setting {key!r} (known: {', '.join(sorted(fields))})")
            values[key] = _coerce(key, value, hints[key])
    config = cls(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """The resolved settings, as recorded next to every output."""
    return dataclasses.asdict(config)


def add_config_arguments(parser: argparse.ArgumentParser, default_config: str | None) -> None:
    """The `--config` / `--set` pair every job accepts."""
    parser.add_argument("--config", default=default_config, help="YAML file of settings (default: %(default)s)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting; repeatable",
    )
