"""IPR webhooks of officers and rights holders, through real processes.

The node (``intelshare node serve``), a real ``intelshare worker`` on a
private Redis, and a real HTTP receiver (:mod:`tests.node.notify.conftest`).
At be-police two holders each have a recordation; each registers its own
webhook through the API, and so does a liaison officer. Detentions naming
one holder's recordation reach that holder's webhook with the holder's
view (its own recordation only, no parties, no transport), never the other
holder's; the officer's webhook gets both. The attack: a detention first
naming ACME's recordation is changed, while no worker runs, to name only
the other holder's: when the worker fans it out, ACME's webhook receives
nothing of it. A holder cannot register for more than its own IPR events,
nor see or remove another officer's webhook.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intelshare import errors
from intelshare.v1 import detention_pb2
from node.cli.ipr_client import IprClient
from node.storage.officers import OfficerRegistry
from tests.node.api.ipr_fixtures import ACME_KEY, OTHER_KEY, acme, shoes
from tests.node.conftest import wait_for
from tests.node.notify.conftest import NotifyWorld, Route

pytestmark = [pytest.mark.slow, pytest.mark.redis]

D = detention_pb2
AGENCY = "be-police"
OTHER_GTIN = "5901234123457"


def _client(world: NotifyWorld, token: str) -> IprClient:
    return IprClient(
        f"127.0.0.1:{world.nodes[AGENCY].port}",
        ca_pem=world.fed.ca_file.read_bytes(),
        server_name=AGENCY,
        token=token,
        timeout=15.0,
    )


def _holder(world: NotifyWorld, key: str) -> str:
    engine = world.engine(AGENCY)
    try:
        return OfficerRegistry(engine).add(f"holder {key} {id(world)}", "rights_holder", key)[1]
    finally:
        engine.dispose()


def _hook(world: NotifyWorld, c: IprClient, path: str, events: list[str]) -> Route:
    route = Route()
    made = c.create_webhook(world.receiver.url(path), events)
    assert made.secret.startswith("whsec_")
    assert made.webhook.name.startswith("iprWebhooks/")
    route.secret = made.secret
    world.receiver.routes[path] = route
    return route


def _bodies(route: Route) -> list[dict[str, Any]]:
    with route.lock:
        return list(route.bodies.values())


def _has(route: Route, type_: str, resource: str) -> bool:
    return any(b["type"] == type_ and b.get("resource") == resource for b in _bodies(route))


def test_holders_webhooks_receive_only_their_own_detentions(world: NotifyWorld) -> None:
    acme_token = _holder(world, ACME_KEY)
    other_token = _holder(world, OTHER_KEY)
    grant = datetime.now(UTC) - timedelta(days=1)
    with _client(world, world.tokens[AGENCY]["liaison"]) as officer:
        mine = officer.create_recordation(acme(agencies=[], grant=grant)).name
        theirs = officer.create_recordation(
            acme(eori=OTHER_KEY.removeprefix("eori:"), gtin=OTHER_GTIN, mark="OTHR", agencies=[])
        ).name
        officer_route = _hook(world, officer, "/ipr-officer", ["detention.*"])

    with _client(world, acme_token) as holder:
        acme_route = _hook(world, holder, "/ipr-acme", ["detention.*", "recordation.*"])
        # a holder's webhook takes its own IPR events only
        for wanted in (["*"], ["alert.*"], ["detention_report.*"], ["case.entry_added"]):
            with pytest.raises(errors.InvalidArgument) as refused:
                holder.create_webhook(world.receiver.url("/nope"), wanted)
            assert refused.value.reason == "FIELD_INVALID"
        listed = holder.list_webhooks().webhooks
        assert [w.url for w in listed] == [world.receiver.url("/ipr-acme")]
    with _client(world, other_token) as other:
        other_route = _hook(world, other, "/ipr-other", ["detention.*", "recordation.*"])
        # it neither sees nor removes ACME's webhook
        assert [w.url for w in other.list_webhooks().webhooks] == [world.receiver.url("/ipr-other")]
        with pytest.raises(errors.NotFound):
            other.delete_webhook(listed[0].name)

    with _client(world, world.tokens[AGENCY]["liaison"]) as officer:
        d_acme = officer.create_detention(shoes(mine)).name
        d_other = officer.create_detention(shoes(theirs, gtin=OTHER_GTIN)).name
        officer.move_detention(d_acme, D.DETENTION_STATE_HOLDER_NOTIFIED, "holder notified")
        # the attack: created for ACME, then changed to the other holder before any fan-out
        changing = shoes(mine, container="MSCU1234566")
        d_moved = officer.create_detention(changing).name
        changed = shoes(theirs, gtin=OTHER_GTIN)
        changed.name = d_moved
        officer.update_detention(changed, ["recordations", "goods"])
        # each holder's recordation changes: each holder hears of its own only
        for name in (mine, theirs):
            officer.move_recordation("suspend", name, "costs unpaid")

    world.start_worker(AGENCY)
    wait_for(
        lambda: (
            _has(acme_route, "detention.moved", d_acme)
            and _has(other_route, "detention.updated", d_moved)
            and _has(officer_route, "detention.updated", d_moved)
        ),
        90,
        "the webhooks' deliveries",
    )
    wait_for(
        lambda: (
            _has(acme_route, "recordation.suspended", mine)
            and _has(other_route, "recordation.suspended", theirs)
        ),
        30,
        "the recordations' events",
    )

    acme_seen = _bodies(acme_route)
    assert {b.get("resource") for b in acme_seen} == {mine, d_acme}
    assert not any(b.get("resource") in (d_other, d_moved, theirs) for b in acme_seen)
    other_seen = {b.get("resource") for b in _bodies(other_route)}
    assert d_other in other_seen
    assert d_moved in other_seen
    assert d_acme not in other_seen
    assert mine not in other_seen
    assert theirs in other_seen
    officer_seen = {b.get("resource") for b in _bodies(officer_route)}
    assert {d_acme, d_other, d_moved} <= officer_seen
    assert all(b["type"].startswith("detention.") for b in _bodies(officer_route))

    # what a holder's POST says: the holder's view, in a few fields
    moved = next(b for b in acme_seen if b["type"] == "detention.moved")
    summary = moved["detention"]
    assert set(summary) == {"name", "state", "recordations", "deadlines"}
    assert summary["recordations"] == [mine]
    assert summary["state"] in ("holder_notified", "deadline_passed")
    kinds = {d["kind"] for d in summary["deadlines"]}
    assert "holder_answer" in kinds
    for body in _bodies(acme_route) + _bodies(other_route):
        text = str(body)
        assert "Hans Muster" not in text  # the declarant (personal data, not disclosed)
        assert "MSCU1234566" not in text  # the transport
        assert "CSQU3054383" not in text
    # the officer's own POSTs summarise the detention as officers see it
    officer_moved = next(b for b in _bodies(officer_route) if b["type"] == "detention.updated")
    assert officer_moved["detention"]["recordations"] == [theirs]

    # removing its webhook stops it
    with _client(world, acme_token) as holder:
        holder.delete_webhook(holder.list_webhooks().webhooks[0].name)
        assert list(holder.list_webhooks().webhooks) == []
