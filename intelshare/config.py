"""Configuration: one schema, a YAML file plus ``INTELSHARE_*`` variables.

Each service describes its settings as a frozen dataclass whose fields carry
their documentation in ``metadata["doc"]``. The same dataclasses are the
schema: :func:`load` reads a section of the file, applies environment
overrides named ``INTELSHARE_<SECTION>_<FIELD>`` (upper case), converts the
types and reports every problem with the key that caused it, so a
misconfigured service stops at start with ``gateway.listen: ...`` instead of
failing later in an unrelated place. The deploy files are tested against
:func:`schema`, so they cannot drift from the code.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from intelshare.errors import ConfigError

_T = TypeVar("_T")


def setting(default: Any = dataclasses.MISSING, *, doc: str) -> Any:
    """A documented config field."""
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


def env_name(section: str, name: str) -> str:
    return f"INTELSHARE_{section}_{name}".upper().replace("-", "_").replace(".", "_")


def _convert(key: str, value: Any, hint: Any, base: Path | None) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or value == "":
            return None
        return _convert(key, value, args[0], base)
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if hint is Path:
        if not isinstance(value, str | Path) or str(value) == "":
            raise ConfigError(f"{key}: expected a file path, got {value!r}")
        path = Path(value).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        return path
    if hint is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner, *_rest) = typing.get_args(hint)
        return tuple(_convert(f"{key}[{i}]", v, inner, base) for i, v in enumerate(items))
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover


def load(
    cls: type[_T],
    section: str,
    data: Mapping[str, Any] | None,
    *,
    env: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> _T:
    """Build ``cls`` from ``data[section]`` with environment overrides.

    Relative paths are resolved against ``base`` (the config file's folder)
    and made absolute: a service handing a path to a child process started in
    another directory (the bundled Redis and its socket) must not depend on
    the directory it was started from (``--config node.yaml`` has base ``.``).
    Unknown keys are errors: a typo must not silently fall back to a default.
    """
    env = os.environ if env is None else env
    base = base.absolute() if base is not None else None
    raw = dict((data or {}).get(section) or {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{section}: expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{section}.{unknown[0]}: unknown setting (known: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{section}.{name}"
        from_env = env.get(env_name(section, name))
        if from_env is not None:
            values[name] = _convert(key, from_env, hints[name], Path.cwd())
        elif name in raw:
            values[name] = _convert(key, raw[name], hints[name], base)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(
                f"{key}: required setting is missing (or set {env_name(section, name)})"
            )
    obj = cls(**values)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def read_file(path: Path) -> dict[str, Any]:
    """Read a YAML config file; a missing or unparsable file is a ConfigError."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return data


def schema(cls: type[Any], section: str) -> dict[str, dict[str, str]]:
    """Field name -> {env, doc, default} for documentation and deploy checks."""
    out: dict[str, dict[str, str]] = {}
    for f in dataclasses.fields(cls):
        default = "" if f.default is dataclasses.MISSING else repr(f.default)
        out[f.name] = {
            "env": env_name(section, f.name),
            "doc": f.metadata.get("doc", ""),
            "default": default,
        }
    return out


def parse_address(key: str, text: str) -> tuple[str, int]:
    """``host:port`` -> (host, port), with an error naming the key."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{key}: expected host:port, got {text!r}")
    return host.strip("[]"), int(port)
