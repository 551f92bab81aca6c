"""Screening declarations against what the node holds in force, and storing only the hits.

A batch of declarations (one ``ScreenDeclarations`` request) is screened
with the snapshot of :class:`~node.kinds.risk_profiles.InForce` taken for
that batch: own and received risk profiles in force, and the watch list
(identifier keys of alerts in force and GTINs of recordations in force).
Each declaration is validated again here (the client's reader already did,
but the node trusts no client): a bad one gets its errors in its answer and
the rest of the batch goes on; one larger than :data:`MAX_DECLARATION_BYTES`
is refused without being looked at.

Data minimisation: a declaration that matches nothing leaves no trace (not
even in the audit log, which records counts only). A match is stored as
risk hits (:mod:`node.kinds.risk_profiles`) holding the declaration's
reference and identifier keys only: one per matching profile, one for its
watched identifiers. All hits of a batch are written in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from intelshare import errors
from intelshare.v1 import risk_profile_pb2, risk_service_pb2
from node.kinds.risk_profiles import ProfileInfo, RiskProfiles
from node.schema.alert import ms_to_ts
from node.storage.officers import Officer
from node.storage.store import Store, now_ms
from node.targeting.declarations import Declaration, declaration_from_fields
from node.targeting.matcher import Screening

P = risk_profile_pb2
S = risk_service_pb2

#: Largest declaration screened (the line limit of the file readers).
MAX_DECLARATION_BYTES: Final = 64 * 1024
#: Most declarations in one request.
MAX_BATCH: Final = 1000

_TEXT = (
    "reference",
    "hs_code",
    "origin_country",
    "dispatch_country",
    "loading_port",
    "discharge_port",
    "transport_mode",
    "consignor_eori",
    "consignor_vat",
    "consignor_name",
    "consignee_eori",
    "consignee_vat",
    "consignee_name",
    "vessel_imo",
    "vehicle_plate",
    "vehicle_country",
)
_LISTS = ("containers", "gtins", "identifiers")
_NUMBERS = ("value", "net_mass_kg", "quantity")


def declaration_fields(d: S.Declaration) -> dict[str, object]:
    """The columns of a declaration message, as a file reader would give them."""
    row: dict[str, object] = {name: getattr(d, name) for name in _TEXT if getattr(d, name)}
    for name in _LISTS:
        values = list(getattr(d, name))
        if values:
            row[name] = values
    for name in _NUMBERS:
        if d.HasField(name):  # type: ignore[arg-type]
            row[name] = float(getattr(d, name))
    return row


def identifying_keys(d: Declaration) -> list[str]:
    """The declaration's identifying fields kept with a hit (no goods, no values)."""
    keys = [f"iso6346:{c}" for c in d.containers]
    if d.vessel_imo:
        keys.append(f"imo:{d.vessel_imo}")
    if d.vehicle:
        keys.append(d.vehicle)
    keys += list(d.consignor) + list(d.consignee) + list(d.identifiers)
    return list(dict.fromkeys(keys))


class Screener:
    """Screens batches of declarations for one node."""

    def __init__(self, *, risk: RiskProfiles, store: Store) -> None:
        self.risk = risk
        self.store = store

    def screen(
        self, officer: Officer, batch: Sequence[S.Declaration]
    ) -> list[S.DeclarationScreening]:
        if len(batch) > MAX_BATCH:
            raise errors.BatchTooLarge(
                f"a request carries at most {MAX_BATCH} declarations, this one {len(batch)}",
                violations={"declarations": f"at most {MAX_BATCH}"},
            )
        snapshot = self.risk.in_force.current()
        answers: list[S.DeclarationScreening] = []
        targeted: list[tuple[Declaration, Screening, S.DeclarationScreening]] = []
        for message in batch:
            answer = S.DeclarationScreening(line=message.line, reference=message.reference[:64])
            answers.append(answer)
            size = message.ByteSize()
            if size > MAX_DECLARATION_BYTES:
                answer.errors["declaration"] = (
                    f"{size} bytes: larger than {MAX_DECLARATION_BYTES} bytes, not screened"
                )
                continue
            try:
                declaration = declaration_from_fields(declaration_fields(message))
            except errors.InvalidArgument as exc:
                answer.errors.update(exc.violations or {"declaration": exc.message})
                continue
            result = snapshot.matcher.screen(declaration)
            if not result.targeted:
                continue
            answer.targeted = True
            for ph in result.profiles:
                info = snapshot.profiles[ph.profile_id]
                answer.profiles.add(
                    profile=info.name,
                    title=info.title,
                    action=info.action,
                    origin_agency=info.origin_agency,
                    reasons=[_reason(r) for r in ph.reasons],
                )
            for sh in result.subjects:
                answer.subjects.add(role=sh.role, key=sh.key, records=list(sh.records))
            targeted.append((declaration, result, answer))
        if targeted:
            self._store(officer, targeted, snapshot.profiles)
        return answers

    def _store(
        self,
        officer: Officer,
        targeted: list[tuple[Declaration, Screening, S.DeclarationScreening]],
        profiles: dict[str, ProfileInfo],
    ) -> None:
        at = ms_to_ts(now_ms())
        with self.store.write() as w:
            for declaration, result, answer in targeted:
                keys = identifying_keys(declaration)
                for ph in result.profiles:
                    info = profiles[ph.profile_id]
                    hit = P.RiskHit(
                        profile=info.name,
                        reference=declaration.reference,
                        reasons=[_reason(r) for r in ph.reasons],
                        identifiers=keys,
                        screen_time=at,
                        inspection=P.INSPECTION_STATE_PENDING,
                    )
                    answer.hits.append(self.risk.store_hit(w, officer, hit, info))
                if result.subjects:
                    hit = P.RiskHit(
                        reference=declaration.reference,
                        subjects=list(answer.subjects),
                        identifiers=keys,
                        screen_time=at,
                        inspection=P.INSPECTION_STATE_PENDING,
                    )
                    answer.hits.append(self.risk.store_hit(w, officer, hit, None))
            w.audit(
                "screened",
                {
                    "officer_id": officer.officer_id,
                    "targeted": len(targeted),
                    "hits": sum(len(a.hits) for _d, _r, a in targeted),
                },
            )


def _reason(r: Any) -> P.RiskReason:
    return P.RiskReason(path=r.path, field=r.field, matched=list(r.matched))
