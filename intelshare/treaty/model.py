"""The treaty model: :class:`Treaty`, its drafting format, canonical form and API view."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp

from intelshare.errors import InvalidArgument, Malformed
from intelshare.treaty.markings import (
    Handling,
    OnwardSharing,
    Tlp,
    _parse_handling,
    _parse_onward,
    _parse_tlp,
)
from intelshare.treaty.timestamps import _aware, _timestamp
from intelshare.treaty.validation import (
    _as_date,
    _as_fields,
    _as_list,
    _check_fields,
    _check_id,
    _check_kind,
    _check_name,
    _check_set,
    _check_text,
    _covers,
    _load_yaml,
    _sub_mapping,
    _summary,
)
from intelshare.v1 import treaty_pb2

_TOP_KEYS: Final = frozenset(
    {
        "id",
        "version",
        "title",
        "parties",
        "valid",
        "kinds",
        "categories",
        "max_handling",
        "fields",
        "retention_days",
        "purpose",
        "onward_sharing",
        "review_required_for",
    }
)
_REQUIRED_KEYS: Final = frozenset(
    {
        "id",
        "title",
        "parties",
        "valid",
        "kinds",
        "categories",
        "max_handling",
        "retention_days",
        "onward_sharing",
    }
)


@dataclass(frozen=True, kw_only=True)
class Treaty:
    """A validated treaty.

    Sets (parties, kinds, categories, field paths, review_required_for) are
    kept sorted, so two treaties that say the same thing compare equal and
    serialize to the same bytes. ``valid_from``/``valid_until`` are inclusive
    UTC dates. Construction validates everything and raises
    :class:`~intelshare.errors.InvalidArgument` whose ``violations`` are keyed
    by the field paths of the drafting format (``valid.until``,
    ``fields.alert[2]``, ...).
    """

    id: str
    version: int
    title: str
    parties: tuple[str, ...]
    valid_from: date
    valid_until: date
    kinds: tuple[str, ...]
    categories: tuple[str, ...]
    max_handling: Handling
    max_tlp: Tlp
    retention_days: int
    onward_sharing: OnwardSharing
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    purpose: str = ""
    review_required_for: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        v: dict[str, str] = {}
        _check_id(v, "id", self.id)
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            v["version"] = "must be an integer"
        elif not 1 <= self.version <= 2**32 - 1:
            v["version"] = "must be between 1 and 4294967295"
        title = _check_text(v, "title", self.title, required=True)
        purpose = _check_text(v, "purpose", self.purpose, required=False)
        parties = _check_set(v, "parties", self.parties, _check_id)
        if parties is not None and len(parties) < 2:
            v["parties"] = "a treaty needs at least two parties"
        for key, value in (("valid.from", self.valid_from), ("valid.until", self.valid_until)):
            if isinstance(value, datetime) or not isinstance(value, date):
                v[key] = "must be a date (YYYY-MM-DD)"
        if "valid.from" not in v and "valid.until" not in v and self.valid_until < self.valid_from:
            v["valid.until"] = (
                f"{self.valid_until.isoformat()} is before valid.from {self.valid_from.isoformat()}"
            )
        kinds = _check_set(v, "kinds", self.kinds, _check_kind)
        categories = _check_set(v, "categories", self.categories, _check_name)
        handling = _parse_handling(self.max_handling)
        if handling is None:
            v["max_handling.code"] = f"{self.max_handling!r} is not one of H0, H1, H2, H3"
        tlp = _parse_tlp(self.max_tlp)
        if tlp is None:
            v["max_handling.tlp"] = (
                f"{self.max_tlp!r} is not one of CLEAR, GREEN, AMBER, AMBER_STRICT, RED"
            )
        fields = _check_fields(v, self.fields, kinds)
        if isinstance(self.retention_days, bool) or not isinstance(self.retention_days, int):
            v["retention_days"] = "must be an integer number of days"
        elif not 1 <= self.retention_days <= 36500:
            v["retention_days"] = "must be between 1 and 36500 days"
        onward = _parse_onward(self.onward_sharing)
        if onward is None:
            v["onward_sharing"] = (
                f"{self.onward_sharing!r} is not one of forbidden, with_originator_consent, "
                "within_treaty"
            )
        review = _check_set(
            v, "review_required_for", self.review_required_for, _check_name, allow_empty=True
        )
        if v:
            raise InvalidArgument(_summary("invalid treaty", v), violations=v)
        set_ = object.__setattr__
        set_(self, "title", title)
        set_(self, "purpose", purpose)
        set_(self, "parties", parties)
        set_(self, "kinds", kinds)
        set_(self, "categories", categories)
        set_(self, "max_handling", handling)
        set_(self, "max_tlp", tlp)
        set_(self, "fields", fields)
        set_(self, "onward_sharing", onward)
        set_(self, "review_required_for", review)

    def __hash__(self) -> int:
        return hash(self.canonical_bytes())

    def __copy__(self) -> Treaty:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Treaty:
        return self  # immutable (and MappingProxyType cannot be deep-copied)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        # Pickle (e.g. into a worker process) through the canonical form,
        # which is also re-validated on the way back in.
        return (Treaty.from_canonical, (self.canonical_bytes(),))

    @property
    def label(self) -> str:
        """``"<id> v<version>"``, how decisions and messages name the treaty."""
        return f"{self.id} v{self.version}"

    # --- parsing ---------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Treaty:
        """Parse the drafting format (the demo YAML's shape), validating everything.

        Unknown keys are refused: a misspelt key (``categorie``) would
        otherwise be ignored and the treaty would mean less than its authors
        think. ``version`` defaults to 1, ``purpose`` to "", ``fields`` and
        ``review_required_for`` to empty.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgument(
                "a treaty must be a mapping", violations={"": "expected a mapping of keys"}
            )
        v: dict[str, str] = {}
        for key in data:
            if key not in _TOP_KEYS:
                v[str(key)] = "unknown key"
        for key in sorted(_REQUIRED_KEYS - set(data)):
            v[key] = "required"
        valid = _sub_mapping(v, "valid", data.get("valid"), {"from", "until"})
        max_h = _sub_mapping(v, "max_handling", data.get("max_handling"), {"code", "tlp"})
        kwargs: dict[str, Any] = {
            "id": data.get("id", ""),
            "version": data.get("version", 1),
            "title": data.get("title", ""),
            "parties": _as_list(v, "parties", data.get("parties", ())),
            "valid_from": _as_date(v, "valid.from", valid.get("from")),
            "valid_until": _as_date(v, "valid.until", valid.get("until")),
            "kinds": _as_list(v, "kinds", data.get("kinds", ())),
            "categories": _as_list(v, "categories", data.get("categories", ())),
            "max_handling": max_h.get("code", ""),
            "max_tlp": max_h.get("tlp", ""),
            "fields": _as_fields(v, data.get("fields", {})),
            "retention_days": data.get("retention_days", 0),
            "purpose": data.get("purpose", ""),
            "onward_sharing": data.get("onward_sharing", ""),
            "review_required_for": _as_list(
                v, "review_required_for", data.get("review_required_for", ())
            ),
        }
        try:
            treaty = cls(**kwargs)
        except InvalidArgument as exc:
            # A structural problem already reported for a key (or its parent)
            # makes the constructor's complaint about the placeholder noise.
            for key, text in exc.violations.items():
                if not any(_covers(known, key) for known in v):
                    v[key] = text
        else:
            if not v:
                return treaty
        raise InvalidArgument(_summary("invalid treaty", v), violations=v)

    @classmethod
    def from_yaml(cls, text: str | bytes) -> Treaty:
        """Parse one treaty from YAML (a single treaty mapping)."""
        data = _load_yaml(text)
        return cls.from_mapping(data)

    @classmethod
    def from_canonical(cls, document: bytes) -> Treaty:
        """Parse a signed document, refusing anything but the canonical bytes.

        Re-serializing and comparing is the simplest proof of canonicality: it
        rejects duplicate keys, whitespace, escapes, unsorted sets, omitted
        defaults and aliases alike, so a signature covers exactly one meaning.
        """
        try:
            data = json.loads(document.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Malformed(f"treaty document is not UTF-8 JSON: {exc}") from None
        if not isinstance(data, dict):
            raise Malformed("treaty document is not a JSON object")
        try:
            treaty = cls.from_mapping(data)
        except Malformed:
            raise
        except InvalidArgument as exc:
            # A signed document that is not a valid treaty is malformed input,
            # whoever drafted it; the violations still say what is wrong.
            raise Malformed(f"treaty document: {exc.message}", violations=exc.violations) from None
        if treaty.canonical_bytes() != document:
            raise Malformed(
                f"treaty document {treaty.label} is not in canonical form",
                metadata={"treaty_id": treaty.id},
            )
        return treaty

    # --- serialization ---------------------------------------------------------

    def to_mapping(self) -> dict[str, Any]:
        """The drafting-format mapping, every key present, sets sorted."""
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "parties": list(self.parties),
            "valid": {"from": self.valid_from.isoformat(), "until": self.valid_until.isoformat()},
            "kinds": list(self.kinds),
            "categories": list(self.categories),
            "max_handling": {"code": self.max_handling.name, "tlp": self.max_tlp.name},
            "fields": {kind: list(paths) for kind, paths in self.fields.items()},
            "retention_days": self.retention_days,
            "purpose": self.purpose,
            "onward_sharing": self.onward_sharing.value,
            "review_required_for": list(self.review_required_for),
        }

    def canonical_bytes(self) -> bytes:
        """The canonical JSON document that parties sign (see the package docstring)."""
        return json.dumps(
            self.to_mapping(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")

    def to_proto(self) -> treaty_pb2.Treaty:
        """The API view. ``valid_until`` is the last nanosecond of the inclusive day."""
        return treaty_pb2.Treaty(
            treaty_id=self.id,
            version=self.version,
            title=self.title,
            parties=self.parties,
            valid_from=_timestamp(self.valid_start),
            valid_until=Timestamp(seconds=int(self.valid_end.timestamp()) - 1, nanos=999_999_999),
            kinds=self.kinds,
            categories=self.categories,
            max_handling=self.max_handling.name,
            max_tlp=self.max_tlp.name,
            fields={k: treaty_pb2.FieldAllowList(paths=p) for k, p in self.fields.items()},
            retention_days=self.retention_days,
            purpose=self.purpose,
            onward_sharing=self.onward_sharing.value,
            review_required_for=self.review_required_for,
        )

    # --- time ------------------------------------------------------------------

    @property
    def valid_start(self) -> datetime:
        """First instant of validity (00:00 UTC of ``valid_from``)."""
        return datetime.combine(self.valid_from, time.min, tzinfo=UTC)

    @property
    def valid_end(self) -> datetime:
        """First instant *after* validity (00:00 UTC of the day after ``valid_until``)."""
        return datetime.combine(self.valid_until + timedelta(days=1), time.min, tzinfo=UTC)

    def valid_at(self, at: datetime) -> bool:
        """True when ``at`` (timezone-aware) is within the inclusive validity dates."""
        return self.valid_start <= _aware(at, "at") < self.valid_end

    def is_party(self, agency_id: str) -> bool:
        return agency_id in self.parties


def treaties_from_yaml(text: str | bytes) -> list[Treaty]:
    """Every treaty in a YAML text: one mapping, a list, or a ``treaties:`` list.

    The last form is the federation file of the demo (agencies and treaties
    together). Violations of the n-th treaty are prefixed ``treaties[n].``.
    """
    data = _load_yaml(text)
    if isinstance(data, Mapping) and "treaties" in data:
        data = data["treaties"]
    if isinstance(data, Mapping):
        return [Treaty.from_mapping(data)]
    if not isinstance(data, list) or not data:
        raise InvalidArgument(
            "expected a treaty, a list of treaties or a 'treaties:' list",
            violations={"treaties": "expected a non-empty list of treaty mappings"},
        )
    out: list[Treaty] = []
    v: dict[str, str] = {}
    for n, item in enumerate(data):
        try:
            out.append(Treaty.from_mapping(item))
        except InvalidArgument as exc:
            for key, text_ in exc.violations.items():
                v[f"treaties[{n}].{key}" if key else f"treaties[{n}]"] = text_
    if v:
        raise InvalidArgument(_summary("invalid treaties", v), violations=v)
    return out
