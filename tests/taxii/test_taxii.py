"""The TAXII 2.1 server read with taxii2-client, against a real node with seeded alerts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests
from taxii2client.v21 import Collection, Server, as_pages

from intelshare.interop import ExportContext, alert_objects
from intelshare.v1 import alert_pb2
from node.cli.client import NodeClient
from taxii.collections import collections_for
from tests.node.api.ipr_fixtures import holder_token
from tests.node.conftest import expire_in

from .conftest import AGENCY, CUSTOMS, PARTNER, TASKFORCE, World

TAXII = "application/taxii+json;version=2.1"
SHARED_TYPES = {"marking-definition", "extension-definition"}


def _to_partner(description: str) -> alert_pb2.Alert:
    """A narcotics alert to the partner under the customs treaty."""
    return alert_pb2.Alert(
        kind=alert_pb2.ALERT_KIND_NARCOTICS,
        description=description,
        handling=1,
        tlp=3,
        expire_time=expire_in(timedelta(days=3)),
        recipients=[alert_pb2.AlertRecipient(agency_id=PARTNER, treaty_id=CUSTOMS)],
    )


def _collections(world: World, token: str) -> dict[str, Any]:
    server = Server(world.discovery, user="officer", password=token)
    root = server.api_roots[0]
    return {c.alias: c for c in root.collections}


def _own(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects that belong to one alert (not agency identities, markings, definitions)."""
    return [
        o
        for o in objs
        if o["type"] not in SHARED_TYPES
        and not (
            o["type"] == "identity"
            and o.get("identity_class") == "organization"
            and "created_by_ref" not in o
        )
    ]


def _expected_ids(world: World, token: str, treaty: str) -> set[str]:
    rules = {
        tid: world.cluster.fed.signed_treaty(tid).treaty.onward_sharing.value
        for tid in (CUSTOMS, TASKFORCE)
    }
    ctx = ExportContext(holder_agency=AGENCY, onward_rules=rules)
    node = world.node
    # A long deadline: 5,000 alerts read on a loaded machine's SQLite node.
    with NodeClient(
        node.target, ca_pem=node.ca_pem, server_name=node.agency, token=token, timeout=300
    ) as client:
        alerts = client.list_all(treaty_id=treaty)
    ids: set[str] = set()
    for a in alerts:
        rec = alert_objects(a, ctx)
        ids.update(o.id for o in rec.own)
        ids.update(o.id for o in rec.shared)
    return ids


@pytest.mark.slow
# Four traversals of 5,000 alerts (objects, our export, manifest, own reports)
# with node, gateway and server in one process: past 300 s on a loaded machine.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_paging_through_5000_alerts_has_no_duplicates_or_gaps(
    world_factory: Callable[..., World],
) -> None:
    world = world_factory(5000)
    token = world.node.tokens["analyst"]
    collections = _collections(world, token)
    assert set(collections) == {"own", CUSTOMS, TASKFORCE}
    customs = collections[CUSTOMS]
    assert customs.can_read
    assert not customs.can_write
    assert customs.media_types == ["application/stix+json;version=2.1"]

    seen: list[str] = []
    pages = 0
    for envelope in as_pages(customs.get_objects, per_request=1000):
        seen.extend(o["id"] for o in envelope.get("objects", []))
        pages += 1
    assert len(seen) == len(set(seen)), "an object came twice"
    expected = _expected_ids(world, token, CUSTOMS)
    assert set(seen) == expected, "objects missing or extra"
    assert len(seen) >= 5000 * 4  # report, person, container, company per alert
    assert pages >= 20

    # The manifest pages the same objects, in date_added order.
    manifest: list[dict[str, Any]] = []
    for envelope in as_pages(customs.get_manifest, per_request=1000):
        manifest.extend(envelope.get("objects", []))
    assert [m["id"] for m in manifest] == seen
    dates = [m["date_added"] for m in manifest]
    assert dates == sorted(dates)

    # The own collection holds the issued half, every one a report of ours.
    own = collections["own"]
    reports = [
        o["id"]
        for env in as_pages(own.get_objects, per_request=1000, type="report")
        for o in env.get("objects", [])
    ]
    assert len(reports) == 2500


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_added_after_resumes_where_a_client_stopped(world_factory: Callable[..., World]) -> None:
    world = world_factory(300)
    token = world.node.tokens["analyst"]
    url = world.collection_url(_collections(world, token)[CUSTOMS].id) + "objects/"
    auth = {"Authorization": f"Bearer {token}", "Accept": TAXII}
    everything = requests.get(url, headers=auth, params={"limit": 1000}, timeout=60).json()
    assert everything["more"] is True
    first = requests.get(url, headers=auth, params={"limit": 50}, timeout=60)
    assert first.status_code == 200
    assert first.headers["content-type"] == TAXII
    page = first.json()
    assert page["more"] is True
    assert len(page["objects"]) <= 50
    last = first.headers["X-TAXII-Date-Added-Last"]
    assert first.headers["X-TAXII-Date-Added-First"] <= last
    # A client that stopped here resumes later with added_after.
    rest: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000, "added_after": last}
    while True:
        r = requests.get(url, headers=auth, params=params, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        rest.extend(body["objects"])
        if not body["more"]:
            break
        params = {"limit": 1000, "added_after": last, "next": body["next"]}
    resumed = _own(page["objects"]) + _own(rest)
    ids = [o["id"] for o in resumed]
    assert len(ids) == len(set(ids)), "an alert's object came twice"
    all_ids = {o["id"] for o in _own(_all(url, auth))}
    assert set(ids) == all_ids, "a gap: objects neither on the first page nor after it"

    # New alerts issued afterwards come with the next added_after poll, and only they.
    high = max(m["date_added"] for m in _all(url.replace("/objects/", "/manifest/"), auth))
    with world.node.client("liaison") as client:
        new = [client.create_alert(_to_partner(f"new alert {n}")) for n in range(3)]
    polled = _all(url, auth, added_after=high)
    reports = [o for o in polled if o["type"] == "report"]
    assert sorted(r["external_references"][0]["external_id"] for r in reports) == sorted(
        a.name for a in new
    )


def _all(url: str, auth: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 1000, **params}
    while True:
        body = requests.get(url, headers=auth, params=query, timeout=60).json()
        out.extend(body["objects"])
        if not body["more"]:
            return out
        query = {"limit": 1000, **params, "next": body["next"]}


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_who_may_read_what(world_factory: Callable[..., World]) -> None:
    world = world_factory(20)
    token = world.node.tokens["analyst"]
    collections = _collections(world, token)
    customs = collections[CUSTOMS]

    # A wrong token: 401 with a challenge, on every endpoint.
    with pytest.raises(requests.HTTPError) as err:
        Server(world.discovery, user="officer", password="not-a-token").refresh()
    assert err.value.response.status_code == 401
    assert "Basic" in err.value.response.headers["WWW-Authenticate"]
    bad = Collection(customs.url, user="officer", password="not-a-token")
    with pytest.raises(requests.HTTPError) as err:
        bad.get_objects()
    assert err.value.response.status_code == 401
    r = requests.get(customs.url + "objects/", headers={"Accept": TAXII}, timeout=30)
    assert r.status_code == 401
    assert r.headers["content-type"] == TAXII
    assert r.json()["http_status"] == "401"
    # The token as a Bearer token works as well as Basic.
    r = requests.get(
        customs.url, headers={"Accept": TAXII, "Authorization": f"Bearer {token}"}, timeout=30
    )
    assert r.status_code == 200
    assert r.json()["id"] == customs.id

    # A collection this node does not serve (another agency's, a treaty it holds
    # no file for) is 404, as is an object that is not in the collection.
    other = world.collection_url("9a0e3b4c-5d6e-5f70-8a9b-0c1d2e3f4a5b")
    r = requests.get(
        other + "objects/", auth=("officer", token), headers={"Accept": TAXII}, timeout=30
    )
    assert r.status_code == 404
    with pytest.raises(requests.HTTPError) as err:
        customs.get_object("report--00000000-0000-5000-8000-000000000000")
    assert err.value.response.status_code == 404

    # Read-only: writes are 403.
    r = requests.post(
        customs.url + "objects/",
        auth=("officer", token),
        headers={"Accept": TAXII, "Content-Type": TAXII},
        data='{"objects": []}',
        timeout=30,
    )
    assert r.status_code == 403
    assert customs.can_write is False

    # Media types: 406 for what we cannot answer.
    r = requests.get(
        customs.url, auth=("officer", token), headers={"Accept": "application/xml"}, timeout=30
    )
    assert r.status_code == 406
    r = requests.get(
        customs.url,
        auth=("officer", token),
        headers={"Accept": "application/taxii+json;version=2.0"},
        timeout=30,
    )
    assert r.status_code == 406

    # Bad parameters are 400 in TAXII's words.
    r = requests.get(
        customs.url + "objects/",
        auth=("officer", token),
        params={"added_after": "yesterday"},
        timeout=30,
    )
    assert r.status_code == 400
    assert "RFC 3339" in r.json()["description"]
    r = requests.get(
        customs.url + "objects/", auth=("officer", token), params={"next": "forged"}, timeout=30
    )
    assert r.status_code == 400
    # A 'next' is bound to the token that made it.
    first = requests.get(
        customs.url + "objects/", auth=("officer", token), params={"limit": 5}, timeout=30
    )
    key = first.json()["next"]
    liaison = world.node.tokens["liaison"]
    r = requests.get(
        customs.url + "objects/",
        auth=("officer", liaison),
        params={"limit": 5, "next": key},
        timeout=30,
    )
    assert r.status_code == 400

    # One object by id, and its versions.
    report = next(o for o in customs.get_objects(type="report")["objects"])
    got = customs.get_object(report["id"])
    assert got["objects"] == [report]
    versions = customs.object_versions(report["id"])
    assert versions["versions"] == [report["modified"]]


def _refused(status: int, call: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """The TAXII error message ``call(*args)`` got, once its status and media type are checked."""
    with pytest.raises(requests.HTTPError) as err:
        call(*args)
    response = err.value.response
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == TAXII
    body: dict[str, Any] = response.json()
    assert body["http_status"] == str(status)
    assert body["title"]
    return body


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_collection_the_caller_may_not_read(world_factory: Callable[..., World]) -> None:
    world = world_factory(6)
    token = world.node.tokens["analyst"]
    customs = _collections(world, token)[CUSTOMS]

    # The caller reads what it may: the treaty's collection, issued and received alerts.
    served = customs.get_objects(type="report")["objects"]
    assert len(served) == 6

    # Collections this server does not serve, as taxii2-client asks for them:
    # de-customs' own (another agency's id), and one for a treaty nl-customs
    # has no file for. Both 404, whether the client first reads the collection
    # or goes straight to its objects with what it kept from an earlier listing.
    unheld = dataclasses.replace(
        world.cluster.fed.signed_treaty(CUSTOMS).treaty, id="customs-pilot-2027"
    )
    elsewhere = [
        *collections_for(PARTNER, ()),
        *(c.id for c in collections_for(AGENCY, (unheld,)).values() if c.alias == unheld.id),
    ]
    assert len(elsewhere) == 2
    assert customs.id not in elsewhere
    for cid in elsewhere:
        url = world.collection_url(cid)
        body = _refused(404, Collection(url, user="officer", password=token).refresh)
        assert "no such collection" in body["description"]
        kept = Collection(
            url,
            user="officer",
            password=token,
            collection_info={
                "id": cid,
                "title": customs.title,
                "can_read": True,
                "can_write": False,
                "media_types": customs.media_types,
            },
        )
        _refused(404, kept.get_objects)
        _refused(404, kept.get_manifest)
        _refused(404, kept.get_object, served[0]["id"])
        _refused(404, kept.object_versions, served[0]["id"])
        # Without a valid token it is 401, as on every path: a stranger does not
        # learn from the status which collections the server holds.
        stranger = Collection(url, user="officer", password="not-a-token")
        _refused(401, stranger.refresh)

    # A rights holder's token: the node lets it read no alerts, so the treaty's
    # collection serves it none of them (its own recordations only, here none).
    holder = _collections(world, holder_token(world.node))[CUSTOMS]
    assert holder.id == customs.id
    assert holder.get_objects(limit=1000).get("objects", []) == []
    assert holder.get_manifest(limit=1000).get("objects", []) == []
    _refused(404, holder.get_object, served[0]["id"])


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_received_records_state_the_treaty_onward_rule(world_factory: Callable[..., World]) -> None:
    world = world_factory(10)
    token = world.node.tokens["analyst"]
    customs = _collections(world, token)[CUSTOMS]
    objects = customs.get_objects(limit=1000)["objects"]
    statements = [o for o in objects if o.get("definition_type") == "statement"]
    assert len(statements) == 1  # one treaty, one origin: one statement, served once
    text = statements[0]["definition"]["statement"]
    assert f"Received by {AGENCY} from {PARTNER} under treaty {CUSTOMS}" in text
    assert f"only with the consent of {PARTNER}" in text
    received = [
        o
        for o in objects
        if o["type"] == "report"
        and o["extensions"]["extension-definition--f9531d72-f763-4b2c-b69c-cf63faea47fd"][
            "direction"
        ]
        == "received"
    ]
    assert len(received) == 5
    assert all(statements[0]["id"] in r["object_marking_refs"] for r in received)
    issued = [o for o in objects if o["type"] == "report" and o not in received]
    assert issued
    assert not any(statements[0]["id"] in r["object_marking_refs"] for r in issued)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_added_after_brings_updated_and_revoked_alerts_as_new_versions(
    world_factory: Callable[..., World],
) -> None:
    world = world_factory(40)
    token = world.node.tokens["analyst"]
    customs = _collections(world, token)[CUSTOMS]
    with world.node.client("liaison") as client:
        mine = [client.create_alert(_to_partner(f"alert {n} to change")) for n in range(2)]

    # The first poll: everything, and where it ended.
    first: list[dict[str, Any]] = []
    last = ""
    for envelope in as_pages(customs.get_objects, per_request=100):
        first.extend(envelope.get("objects", []))
    for envelope in as_pages(customs.get_manifest, per_request=1000):
        last = max([last, *(m["date_added"] for m in envelope.get("objects", []))])
    before = {o["id"]: o for o in first if o["type"] == "report"}
    assert len(before) == 42

    # One alert is updated, the other revoked, after that poll.
    with world.node.client("liaison") as client:
        changed = alert_pb2.Alert(name=mine[0].name, description="now via Antwerp")
        client.update_alert(changed, ["description"])
        client.revoke_alert(mine[1].name, "was a false lead")

    polled: list[dict[str, Any]] = []
    for envelope in as_pages(customs.get_objects, per_request=100, added_after=last):
        polled.extend(envelope.get("objects", []))
    reports = {
        o["external_references"][0]["external_id"]: o for o in polled if o["type"] == "report"
    }
    assert set(reports) == {mine[0].name, mine[1].name}, "only the changed alerts come again"
    updated, revoked = reports[mine[0].name], reports[mine[1].name]
    assert updated["description"] == "now via Antwerp"
    assert updated["modified"] > before[updated["id"]]["modified"]
    assert updated["created"] == before[updated["id"]]["created"]
    assert revoked["revoked"] is True
    assert revoked["modified"] > before[revoked["id"]]["modified"]
    # Their other objects come as new versions too (same ids, newer modified).
    again = {o["id"] for o in _own(polled)}
    assert again <= {o["id"] for o in _own(first)}
    # The object endpoint serves the new version.
    assert customs.get_object(updated["id"])["objects"][0]["modified"] == updated["modified"]
    assert customs.object_versions(updated["id"])["versions"] == [updated["modified"]]
    # Nothing else changed: a poll after the new versions is empty.
    newest = max(m["date_added"] for m in customs.get_manifest(added_after=last)["objects"])
    assert customs.get_manifest(added_after=newest).get("objects", []) == []
