"""Checks and coercions for the drafting format: every problem reported at once.

Each helper records what is wrong in ``v``, a mapping from the field path of
the drafting format (``valid.until``, ``fields.alert[2]``) to a message for
people, and carries on, so :class:`~intelshare.treaty.model.Treaty` can
raise one :class:`~intelshare.errors.InvalidArgument` listing every
violation. YAML is loaded strictly: a duplicate key is refused rather than
silently keeping the last one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

import yaml

from intelshare.errors import InvalidArgument, Malformed
from intelshare.treaty.kinds import _NAME_RE, CONTROL_KINDS, DATA_KINDS, RECORD_KINDS

_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?")
_SEGMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_PATHS_PER_KIND = 1000


def _summary(what: str, v: Mapping[str, str]) -> str:
    items = sorted(v.items())
    shown = "; ".join(f"{k or '(document)'}: {t}" for k, t in items[:5])
    more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
    return f"{what}: {shown}{more}"


def _covers(parent: str, key: str) -> bool:
    return key == parent or key.startswith((parent + ".", parent + "["))


_Check = Callable[[dict[str, str], str, object], bool]


def _check_id(v: dict[str, str], key: str, value: object) -> bool:
    if not isinstance(value, str):
        v[key] = "must be a string"
        return False
    if not _ID_RE.fullmatch(value):
        v[key] = (
            f"{value!r} is not an id (lower-case letters, digits, '.', '_', '-', "
            "at most 128 characters)"
        )
        return False
    return True


def _check_name(v: dict[str, str], key: str, value: object) -> bool:
    if not isinstance(value, str):
        v[key] = "must be a string"
        return False
    if not _NAME_RE.fullmatch(value):
        v[key] = f"{value!r} is not a name (lower-case snake_case, at most 64 characters)"
        return False
    return True


def _check_kind(v: dict[str, str], key: str, value: object) -> bool:
    if not isinstance(value, str):
        v[key] = "must be a string"
        return False
    if value in CONTROL_KINDS:
        v[key] = (
            f"{value} is a control kind: it rides on the treaty of the record it refers to "
            "and must not be listed"
        )
        return False
    if value not in DATA_KINDS and value not in RECORD_KINDS:
        known = ", ".join(sorted(DATA_KINDS | RECORD_KINDS))
        v[key] = f"{value!r} is not a record kind (one of {known})"
        return False
    return True


def _check_text(v: dict[str, str], key: str, value: object, *, required: bool) -> str:
    if not isinstance(value, str):
        v[key] = "must be a string"
        return ""
    text = unicodedata.normalize("NFC", value.strip())
    if required and not text:
        v[key] = "required"
    elif len(text) > 4000:
        v[key] = "must be at most 4000 characters"
    elif any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
        v[key] = "must not contain control characters"
    return text


def _check_set(
    v: dict[str, str],
    key: str,
    values: object,
    check: _Check,
    *,
    allow_empty: bool = False,
) -> tuple[str, ...] | None:
    """Validate a set-like list: each element, no duplicates; returns it sorted."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        v[key] = "must be a list"
        return None
    items = list(values)
    if not items and not allow_empty:
        v[key] = "must not be empty"
        return None
    ok = True
    seen: set[str] = set()
    for n, item in enumerate(items):
        if not check(v, f"{key}[{n}]", item):
            ok = False
        elif item in seen:
            v[f"{key}[{n}]"] = f"{item!r} is listed twice"
            ok = False
        else:
            seen.add(item)
    return tuple(sorted(seen)) if ok else None


def _check_path(v: dict[str, str], key: str, value: object) -> bool:
    if not isinstance(value, str):
        v[key] = "must be a string"
        return False
    segments = value.split(".")
    if len(segments) > 16 or not all(_SEGMENT_RE.fullmatch(s) for s in segments):
        v[key] = f"{value!r} is not a dotted field path (e.g. subjects.persons.name)"
        return False
    return True


def _check_fields(
    v: dict[str, str], fields: object, kinds: tuple[str, ...] | None
) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(fields, Mapping):
        v["fields"] = "must be a mapping of kind to a list of field paths"
        return MappingProxyType({})
    out: dict[str, tuple[str, ...]] = {}
    for kind in sorted(fields, key=str):
        paths = fields[kind]
        key = f"fields.{kind}"
        if not _check_kind(v, key, kind):
            continue
        if kinds is not None and kind not in kinds:
            v[key] = f"{kind} is not among the treaty's kinds"
            continue
        if isinstance(paths, Sequence) and len(paths) > _MAX_PATHS_PER_KIND:
            v[key] = f"at most {_MAX_PATHS_PER_KIND} paths"
            continue
        checked = _check_set(v, key, paths, _check_path)
        if checked is not None:
            out[kind] = checked
    return MappingProxyType(out)


def _sub_mapping(
    v: dict[str, str], key: str, value: object, allowed: set[str]
) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        v[key] = f"must be a mapping with {', '.join(sorted(allowed))}"
        return {}
    for sub in value:
        if sub not in allowed:
            v[f"{key}.{sub}"] = "unknown key"
    for sub in sorted(allowed - set(value)):
        v[f"{key}.{sub}"] = "required"
    return value


def _as_list(v: dict[str, str], key: str, value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(value)
    v.setdefault(key, "must be a list")
    return ()


def _as_date(v: dict[str, str], key: str, value: object) -> date:
    if isinstance(value, datetime):
        v.setdefault(key, "must be a date (YYYY-MM-DD), not a date and time")
    elif isinstance(value, date):
        return value
    elif isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            v.setdefault(key, f"{value!r} is not a calendar date")
    elif value is not None:
        v.setdefault(key, "must be a date (YYYY-MM-DD)")
    return date.min


def _as_fields(v: dict[str, str], value: object) -> object:
    if not isinstance(value, Mapping):
        v.setdefault("fields", "must be a mapping of kind to a list of field paths")
        return {}
    out: dict[object, object] = {}
    for kind, paths in value.items():
        if isinstance(paths, list | tuple):
            out[kind] = tuple(paths)
        else:
            v.setdefault(f"fields.{kind}", "must be a list of field paths")
    return out


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicate keys instead of keeping the last."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable keys fail below with PyYAML's own message
        if duplicate:
            raise InvalidArgument(
                f"duplicate key {key!r} on line {key_node.start_mark.line + 1}",
                violations={str(key): "duplicate key"},
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str | bytes) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise Malformed(f"not valid YAML: {exc}") from None
