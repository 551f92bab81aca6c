"""What the two IPR kinds share: names, JSON forms, the recordations a node holds, events.

:mod:`node.kinds.recordations` and :mod:`node.kinds.detentions` do not
import each other (kinds are independent); a detention needs to know the
recordations this node holds (to suggest them, to check that a confirmed
one is in force, to tell which are a holder's, to name them in a report),
so the reading of ``node_recordations`` lives here, below both.

Names. A recordation is ``recordations/{id}`` with the id its grantor gave
it, on the granting node and on every node holding a copy, so that a
detention or a report naming it means the same thing everywhere
(``node_recordations.origin_name``). Only when a second grantor's copy
arrives with an id this node already uses does the copy get a local id,
its generic record id; reports still name it by its grantor's id.

Events. IPR events ride on the node's event log under the names an
officer reads on every feed and webhook: ``recordation.<change>``
(``recordation.granted``, ``.extended``, ``.withdrawn`` ...),
``detention.<change>`` (``detention.created``, ``.moved``,
``.deadline_due`` ...) and ``detention_report.<change>``, as alerts are
``alert.<change>`` and cases ``case.<change>``. (Before migration 0009
they were stored as ``record.ipr.<name>``; the migration renamed them.)
For detention events the log's ``record_id`` is the detention id; for
recordation and report events it is the generic record id.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, TypeVar

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.message import Message
from sqlalchemy import Connection, Row, select

from intelshare import errors
from intelshare.v1 import recordation_pb2
from node.ipr import deadlines as dl
from node.schema import names
from node.schema.alert import ms_to_ts
from node.storage import tables as t
from node.storage.officers import Officer
from node.storage.store import Store, Writer, now_ms

R = recordation_pb2
M = TypeVar("M", bound=Message)

RECORDATION_KIND: Final = "recordation"
REPORT_KIND: Final = "detention_report"
RECORDATIONS: Final = "recordations"
DETENTIONS: Final = "detentions"
REPORTS: Final = "detentionReports"
#: The data category IPR records are shared under (treaties must permit it).
IPR_CATEGORY: Final = "counterfeit_goods"
#: The families of IPR event types in the event log (see the module docstring).
EVENT_FAMILIES: Final = ("recordation.", "detention.", "detention_report.")
#: The officer the node acts as for moves of its own (expiry, deadlines passed).
SYSTEM_OFFICER: Final = Officer(officer_id="system", name="system", role="system")

ISSUED: Final = "issued"
RECEIVED: Final = "received"
IN_FORCE_STATES: Final = ("granted", "extended")

DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 500


def event(w: Writer, type_: str, record_id: str, agency_id: str | None = None) -> None:
    """An IPR event (``detention.moved``, ...) in this transaction."""
    if not type_.startswith(EVENT_FAMILIES):
        raise ValueError(f"not an IPR event type: {type_!r}")
    w.event(type_, record_id=record_id, agency_id=agency_id)


def now() -> datetime:
    return datetime.now(UTC)


def to_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


# --- JSON forms ---------------------------------------------------------------------------


def to_json(message: Message) -> dict[str, Any]:
    """A message's JSON form: proto field names (what treaty allow-lists name), enums by name."""
    return MessageToDict(message, preserving_proto_field_name=True)


def from_json(record: Mapping[str, Any], message_type: type[M], what: str) -> M:
    """Parse a stored or received JSON form (Malformed when it is not one)."""
    out = message_type()
    try:
        ParseDict(dict(record), out)
    except (ParseError, TypeError, ValueError, AttributeError) as exc:
        raise errors.Malformed(f"not a {what}: {str(exc)[:300]}") from None
    return out


def dumps_message(message: Message) -> str:
    return json.dumps(to_json(message), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads_message(text: str, message_type: type[M], what: str) -> M:
    return from_json(json.loads(text), message_type, what)


# --- names ----------------------------------------------------------------------------------


def parse_name(name: str, collection: str, field: str = "name") -> str:
    """The id of ``{collection}/{id}`` (INVALID_ARGUMENT naming ``field`` otherwise)."""
    prefix = f"{collection}/"
    ident = name[len(prefix) :] if name.startswith(prefix) else ""
    if not ident or "/" in ident or len(ident) > 64:
        raise errors.NameInvalid(
            f"{field} must look like {prefix}{{id}}, got {name!r}",
            violations={field: f"expected {prefix}{{id}}"},
        )
    return ident


def check_new_id(ident: str, field: str) -> None:
    """A client-chosen id (the one rule of :mod:`node.schema.names`)."""
    names.check_client_id(ident, field)


# --- page tokens ---------------------------------------------------------------------------


def encode_token(store: Store, officer: Officer, position: list[Any], listing: str) -> str:
    """An IPR listing's next-page token (sealed by the node: :mod:`intelshare.pagetokens`).

    ``listing`` holds the request's filters; the token is bound to them and
    to the officer, as every listing's token is.
    """
    return store.page_tokens.issue(
        listing="ipr", filters=listing, caller=officer.officer_id, position=position
    )


def decode_token(store: Store, officer: Officer, token: str, listing: str) -> list[Any] | None:
    """The position a token carries, if it is this officer's token of this very listing."""
    return store.page_tokens.read(
        token, listing="ipr", filters=listing, caller=officer.officer_id, size=None
    )


def page_size(size: int) -> int:
    if size < 0:
        raise errors.PageSizeInvalid(
            "page_size must not be negative", violations={"page_size": ">= 0"}
        )
    return min(size or DEFAULT_PAGE, MAX_PAGE)


# --- the recordations this node holds --------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """A recordation as this node holds it (granted here or received), with its facts."""

    record_id: str
    recordation_id: str
    origin_name: str
    origin_agency: str
    direction: str
    holder_key: str
    state: str
    grant_ms: int
    expire_ms: int
    #: the generic record's state: "active" or "withdrawn" (received withdrawals)
    record_state: str
    message: recordation_pb2.Recordation

    @property
    def name(self) -> str:
        return f"{RECORDATIONS}/{self.recordation_id}"

    def in_force(self, at_ms: int) -> bool:
        return (
            self.record_state == "active"
            and self.state in IN_FORCE_STATES
            and self.grant_ms <= at_ms < self.expire_ms
        )


_HELD = select(
    t.recordations,
    t.records.c.record,
    t.records.c.state.label("record_state"),
    t.records.c.revision,
    t.records.c.update_ms,
).join(t.records, t.records.c.record_id == t.recordations.c.record_id)


def held_query() -> Any:
    """``node_recordations`` joined with its generic record (for filters and ordering)."""
    return _HELD


def held_from_row(row: Row[Any]) -> Held:
    """The recordation of a :func:`held_query` row, its output-only fields filled in."""
    if row.full_record is not None:
        message = loads_message(row.full_record, R.Recordation, "recordation")
    else:
        message = loads_message(row.record, R.Recordation, "recordation")
    message.name = f"{RECORDATIONS}/{row.recordation_id}"
    message.origin_agency = row.origin_agency
    message.direction = (
        R.RECORDATION_DIRECTION_ISSUED
        if row.direction == ISSUED
        else R.RECORDATION_DIRECTION_RECEIVED
    )
    state = "withdrawn" if row.record_state == "withdrawn" else row.state
    message.state = R.RecordationState.Value(f"RECORDATION_STATE_{state.upper()}")
    message.create_time.CopyFrom(ms_to_ts(row.create_ms))
    message.update_time.CopyFrom(ms_to_ts(row.update_ms))
    message.revision = row.revision
    return Held(
        record_id=row.record_id,
        recordation_id=row.recordation_id,
        origin_name=row.origin_name,
        origin_agency=row.origin_agency,
        direction=row.direction,
        holder_key=row.holder_key or "",
        state=state,
        grant_ms=row.grant_ms,
        expire_ms=row.expire_ms,
        record_state=row.record_state,
        message=message,
    )


def held_by_names(conn: Connection, ids: Collection[str]) -> dict[str, Held]:
    """The recordations with these local ids (``recordations/{id}``'s id), by id."""
    if not ids:
        return {}
    rows = conn.execute(_HELD.where(t.recordations.c.recordation_id.in_(sorted(ids)))).all()
    return {r.recordation_id: held_from_row(r) for r in rows}


def held_by_keys(conn: Connection, keys: Iterable[tuple[str, str]], *, at_ms: int) -> list[Held]:
    """The recordations in force at ``at_ms`` that any of ``keys`` (kind, key) points to."""
    wanted = sorted(set(keys))
    if not wanted:
        return []
    k = t.recordation_keys
    ids: set[str] = set()
    for key_type, key in wanted:
        ids.update(
            conn.execute(
                select(k.c.record_id).where(k.c.key_type == key_type, k.c.key == key)
            ).scalars()
        )
    if not ids:
        return []
    rows = conn.execute(_HELD.where(t.recordations.c.record_id.in_(sorted(ids)))).all()
    return [h for h in map(held_from_row, rows) if h.in_force(at_ms)]


def holder_names(conn: Connection, holder_key: str) -> frozenset[str]:
    """The local names (``recordations/{id}``) of the recordations of one holder."""
    if not holder_key:
        return frozenset()
    ids = conn.execute(
        select(t.recordations.c.recordation_id).where(t.recordations.c.holder_key == holder_key)
    ).scalars()
    return frozenset(f"{RECORDATIONS}/{i}" for i in ids)


def holder_sees(
    conn: Connection,
    holder_key: str,
    *,
    detention_ids: Collection[str] = (),
    record_ids: Collection[str] = (),
) -> tuple[frozenset[str], frozenset[str]]:
    """Of these detentions and recordations (by generic record id), those the holder may see.

    A detention: when one of the recordations it falls under is the
    holder's (what :func:`node.ipr.views.check_holder_may_see` decides on a
    loaded detention); a recordation: when it is the holder's own. For feeds
    and webhooks, which decide for many events at once.
    """
    if not holder_key:
        return frozenset(), frozenset()
    r = t.recordations
    seen_detentions: frozenset[str] = frozenset()
    seen_records: frozenset[str] = frozenset()
    if detention_ids:
        links = t.detention_recordations
        seen_detentions = frozenset(
            conn.execute(
                select(links.c.detention_id)
                .distinct()
                .join(r, r.c.recordation_id == links.c.recordation_id)
                .where(
                    links.c.detention_id.in_(sorted(detention_ids)), r.c.holder_key == holder_key
                )
            ).scalars()
        )
    if record_ids:
        seen_records = frozenset(
            conn.execute(
                select(r.c.record_id).where(
                    r.c.record_id.in_(sorted(record_ids)), r.c.holder_key == holder_key
                )
            ).scalars()
        )
    return seen_detentions, seen_records


def recordation_summary(
    conn: Connection, record_id: str, holder_key: str | None
) -> dict[str, Any] | None:
    """What an event's webhook POST says of a recordation (None: not the holder's, or gone)."""
    r = t.recordations
    row = conn.execute(
        select(r.c.recordation_id, r.c.holder_key, r.c.state, r.c.expire_ms).where(
            r.c.record_id == record_id
        )
    ).first()
    if row is None or (holder_key is not None and row.holder_key != holder_key):
        return None
    return {
        "resource": f"{RECORDATIONS}/{row.recordation_id}",
        "recordation": {
            "name": f"{RECORDATIONS}/{row.recordation_id}",
            "state": row.state,
            "expire_time": ms_to_ts(row.expire_ms).ToJsonString(),
        },
    }


def require_in_force_now(held: Held) -> None:
    """RECORDATION_EXPIRED unless ``held`` is in force now (its expiry, or not, in the words)."""
    if held.in_force(now_ms()):
        return
    why = held.state
    if held.state in IN_FORCE_STATES and held.record_state == "active":
        why = "expired" if now_ms() >= held.expire_ms else "not in force yet"
    raise errors.RecordationExpired(
        f"{held.name} is {why}: customs no longer act on it",
        metadata={"recordation": held.name, "state": why},
    )


# --- the detaining agency's calendar -------------------------------------------------------


def calendar_provider(
    country: Callable[[], str],
    *,
    subdivision: str = "",
    time_zone: str = "",
    closed_days: Iterable[date] = (),
) -> Callable[[], dl.Calendar]:
    """The working-day calendar of this agency's country, looked up once it is known.

    ``subdivision`` is the node's ``holiday_subdivision`` (ISO 3166-2,
    ``DE-BY``), ``time_zone`` its ``deadline_time_zone`` and
    ``closed_days`` its ``deadline_closed_days``. They are checked here, when
    the node is built (ConfigError naming the setting: a subdivision or zone
    the libraries do not know); that the subdivision lies in the country the
    directory names is checked when the country is known (and by
    :func:`check_calendar` at start).
    """
    region, _, sub = subdivision.strip().upper().partition("-")
    closed = frozenset(closed_days)
    if region or time_zone.strip():
        try:  # any country will do to check a zone alone
            dl.calendar_for(region or "DE", sub, time_zone or "UTC", closed)
        except errors.ConfigError as exc:
            setting = "deadline_time_zone" if "time_zone" in exc.metadata else "holiday_subdivision"
            raise errors.ConfigError(
                f"node.{setting}: {exc.message}", metadata=exc.metadata
            ) from None

    @functools.lru_cache(maxsize=4)
    def for_country(code: str) -> dl.Calendar:
        if region and region != code:
            raise errors.ConfigError(
                f"node.holiday_subdivision: {region}-{sub} is not in {code}, this agency's "
                "country in the federation directory",
                metadata={"country": code, "subdivision": f"{region}-{sub}"},
            )
        if not time_zone.strip() and code not in dl.COUNTRY_ZONES:
            raise errors.ConfigError(
                f"no default time zone for {code}: set node.deadline_time_zone",
                metadata={"country": code},
            )
        return dl.calendar_for(code, sub, time_zone, closed)

    def calendar() -> dl.Calendar:
        code = country().strip().upper()
        if not code:
            raise errors.CountryUnknown(
                "this agency's country is not known yet (the federation directory names it)"
            )
        return for_country(code)

    return calendar
