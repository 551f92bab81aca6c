"""The TAXII 2.1 HTTP application (Starlette): endpoints, media types, status codes.

Endpoints (all ``GET``; everything that would write answers 403):

=====================================================  =====================================
``/taxii2/``                                           discovery
``/{root}/``                                           the API root (``root`` = agency id)
``/{root}/collections/``                               collections
``/{root}/collections/{id}/``                          one collection
``/{root}/collections/{id}/objects/``                  objects: added_after, limit, next, match[...]
``/{root}/collections/{id}/objects/{object_id}/``      one object
``/{root}/collections/{id}/objects/{object_id}/versions/``  its versions (one: records keep one)
``/{root}/collections/{id}/manifest/``                 manifest, paged like objects
=====================================================  =====================================

Responses are ``application/taxii+json;version=2.1``; a request whose
``Accept`` allows neither that nor a wildcard gets 406. Errors are TAXII
error messages: 400 bad parameters, 401 no or wrong token (checked before
the path is looked up, so an unknown collection is 401 too without a valid
token), 403 what the node refuses the officer or any write, 404 unknown
collection or object, 406, 503 when the node cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from intelshare import errors
from intelshare.interop.stix import ExportContext
from taxii.collections import Collection, collections_for
from taxii.config import TaxiiConfig
from taxii.nodeclients import NodeClients, token_digest, token_from_header
from taxii.paging import (
    Item,
    Match,
    Snapshot,
    Snapshots,
    envelope_json,
    stix_to_us,
    take_snapshot,
    us_to_stix,
)

log = logging.getLogger(__name__)

MEDIA_TYPE_TAXII = "application/taxii+json;version=2.1"
MEDIA_TYPE_STIX = "application/stix+json;version=2.1"
_CHALLENGE = 'Bearer realm="intelshare", Basic realm="intelshare"'

Handler = Callable[[Request], Awaitable[Response]]


class TaxiiError(Exception):
    def __init__(self, status: int, title: str, description: str = "") -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.description = description


def _taxii(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
    return Response(text, status_code=status, media_type=MEDIA_TYPE_TAXII, headers=headers)


def _error(status: int, title: str, description: str = "") -> Response:
    body: dict[str, Any] = {"title": title, "http_status": str(status)}
    if description:
        body["description"] = description
    headers = {"WWW-Authenticate": _CHALLENGE} if status == 401 else None
    return _taxii(body, status, headers)


def _acceptable(accept: str | None) -> bool:
    if not accept:
        return True
    for part in accept.split(","):
        media, *params = [p.strip().lower() for p in part.split(";")]
        if media in ("*/*", "application/*"):
            return True
        if media == "application/taxii+json":
            versions = [p.split("=", 1)[1] for p in params if p.startswith("version=")]
            if not versions or "2.1" in versions:
                return True
    return False


_STATUS = {
    errors.Unauthenticated: (401, "Unauthorized"),
    errors.PermissionDenied: (403, "Forbidden"),
    errors.NotFound: (404, "Not found"),
    errors.InvalidArgument: (400, "Bad request"),
    errors.Unavailable: (503, "The node is not reachable"),
}


def _guard(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        if not _acceptable(request.headers.get("accept")):
            return _error(406, "Not acceptable", f"this server answers {MEDIA_TYPE_TAXII}")
        try:
            return await handler(request)
        except TaxiiError as exc:
            return _error(exc.status, exc.title, exc.description)
        except errors.IntelshareError as exc:
            for cls, (status, title) in _STATUS.items():
                if isinstance(exc, cls):
                    return _error(status, title, exc.message)
            log.error("node call failed: %s [%s]", type(exc).__name__, exc.reason)
            return _error(500, "Internal error", "the request could not be completed")

    return wrapped


class TaxiiApp:
    """Routes and state of one server: config, node clients, snapshots."""

    def __init__(self, config: TaxiiConfig) -> None:
        self.config = config
        self.root = config.agency_id
        self.collections = collections_for(config.agency_id, config.treaties)
        self.clients = NodeClients(config.node, ca_pem=config.ca_pem, server_name=config.agency_id)
        self.snapshots = Snapshots(
            ttl=config.traversal_ttl_seconds, max_count=config.max_traversals
        )
        self.ctx = ExportContext(holder_agency=config.agency_id, onward_rules=config.onward_rules)

    # --- helpers --------------------------------------------------------------------

    def _token(self, request: Request) -> str:
        return token_from_header(request.headers.get("authorization"))

    async def _authenticate(self, request: Request) -> str:
        token = self._token(request)
        await run_in_threadpool(self.clients.authenticate, token)
        return token

    # Every endpoint authenticates before it looks up the root or collection, so
    # a caller without a valid token gets 401 whatever the path and cannot learn
    # from 404 versus 401 which treaties' collections this server holds.

    def _root(self, request: Request) -> None:
        if request.path_params["root"] != self.root:
            raise TaxiiError(404, "Not found", "no such API root")

    def _collection(self, request: Request) -> Collection:
        self._root(request)
        found = self.collections.get(request.path_params["cid"])
        if found is None:
            raise TaxiiError(404, "Not found", "no such collection, or not one you may read")
        return found

    def _limit(self, request: Request) -> int:
        raw = request.query_params.get("limit")
        if raw is None or raw == "":
            return self.config.default_limit
        if not raw.isdigit() or int(raw) < 1:
            raise TaxiiError(400, "Bad request", "limit must be a whole number of at least 1")
        return min(int(raw), self.config.max_limit)

    def _match(self, request: Request, *, object_id: str | None = None) -> Match:
        def values(name: str) -> frozenset[str]:
            raw = request.query_params.get(f"match[{name}]", "")
            return frozenset(v.strip() for v in raw.split(",") if v.strip())

        versions = values("version") - {"last", "first", "all"}
        ids = frozenset({object_id}) if object_id else values("id")
        return Match(values("type"), ids, versions, values("spec_version"))

    def _page(
        self,
        token: str,
        collection: Collection,
        kind: str,
        request: Request,
        match: Match,
        limit: int,
    ) -> tuple[list[Item], bool, str | None]:
        raw_after = request.query_params.get("added_after")
        added_after = stix_to_us(raw_after) if raw_after else None
        key = (collection.id, kind, added_after, match)
        owner = token_digest(token)
        next_key = request.query_params.get("next")
        client = self.clients.client(token)
        snap: Snapshot
        if next_key:
            snap = self.snapshots.get(next_key, owner=owner, request=key)
        else:
            records = take_snapshot(client, collection.sources, added_after)
            snap = self.snapshots.new(
                owner=owner, request=key, records=records, ctx=self.ctx, match=match
            )
        with snap.lock:
            items, more = snap.page(limit)
        if more:
            self.snapshots.keep(snap)
            return items, True, snap.key
        self.snapshots.drop(snap)
        return items, False, None

    @staticmethod
    def _date_headers(items: list[Item]) -> dict[str, str]:
        if not items:
            return {}
        return {
            "X-TAXII-Date-Added-First": us_to_stix(items[0].date_added_us),
            "X-TAXII-Date-Added-Last": us_to_stix(items[-1].date_added_us),
        }

    # --- endpoints ------------------------------------------------------------------

    async def discovery(self, request: Request) -> Response:
        await self._authenticate(request)
        root_url = str(request.url_for("api_root", root=self.root))
        return _taxii(
            {
                "title": self.config.title,
                "description": f"STIX 2.1 export of {self.root}'s records (read-only).",
                "default": root_url,
                "api_roots": [root_url],
            }
        )

    async def api_root(self, request: Request) -> Response:
        await self._authenticate(request)
        self._root(request)
        return _taxii(
            {
                "title": self.config.title,
                "description": "One collection per treaty, and one for our own records.",
                "versions": [MEDIA_TYPE_TAXII],
                "max_content_length": 0,  # read-only: nothing may be posted
            }
        )

    async def collections_list(self, request: Request) -> Response:
        await self._authenticate(request)
        self._root(request)
        return _taxii({"collections": [c.resource() for c in self.collections.values()]})

    async def collection(self, request: Request) -> Response:
        await self._authenticate(request)
        c = self._collection(request)
        return _taxii(c.resource())

    async def objects(self, request: Request) -> Response:
        token = await self._authenticate(request)
        c = self._collection(request)
        items, more, key = await run_in_threadpool(
            self._page, token, c, "objects", request, self._match(request), self._limit(request)
        )
        return _taxii(
            envelope_json(items, more=more, next_key=key), headers=self._date_headers(items)
        )

    async def manifest(self, request: Request) -> Response:
        token = await self._authenticate(request)
        c = self._collection(request)
        items, more, key = await run_in_threadpool(
            self._page, token, c, "manifest", request, self._match(request), self._limit(request)
        )
        body: dict[str, Any] = {"more": more}
        if key:
            body["next"] = key
        body["objects"] = [
            {
                "id": it.id,
                "date_added": us_to_stix(it.date_added_us),
                "version": it.version,
                "media_type": MEDIA_TYPE_STIX,
            }
            for it in items
        ]
        return _taxii(body, headers=self._date_headers(items))

    async def _one(self, request: Request) -> tuple[Collection, list[Item]]:
        token = await self._authenticate(request)
        c = self._collection(request)
        oid = request.path_params["oid"]
        match = self._match(request, object_id=oid)

        def find() -> list[Item]:
            found: list[Item] = []
            request_key = None
            while True:
                items, more, request_key = self._page_all(token, c, match, request_key)
                found.extend(items)
                if not more:
                    return found

        items = await run_in_threadpool(find)
        if not items:
            raise TaxiiError(404, "Not found", f"no object {oid} in this collection")
        return c, items

    def _page_all(
        self, token: str, c: Collection, match: Match, key: str | None
    ) -> tuple[list[Item], bool, str | None]:
        owner = token_digest(token)
        request = (c.id, "object", None, match)
        if key is None:
            records = take_snapshot(self.clients.client(token), c.sources, None)
            snap = self.snapshots.new(
                owner=owner, request=request, records=records, ctx=self.ctx, match=match
            )
        else:
            snap = self.snapshots.get(key, owner=owner, request=request)
        with snap.lock:
            items, more = snap.page(self.config.max_limit)
        if more:
            self.snapshots.keep(snap)
            return items, True, snap.key
        self.snapshots.drop(snap)
        return items, False, None

    async def one_object(self, request: Request) -> Response:
        _c, items = await self._one(request)
        return _taxii(
            envelope_json(items, more=False, next_key=None), headers=self._date_headers(items)
        )

    async def versions(self, request: Request) -> Response:
        _c, items = await self._one(request)
        return _taxii(
            {"more": False, "versions": sorted({it.version for it in items})},
            headers=self._date_headers(items),
        )

    async def read_only(self, request: Request) -> Response:
        await self._authenticate(request)
        self._collection(request)
        raise TaxiiError(403, "Forbidden", "this TAXII server is read-only")

    async def status(self, request: Request) -> Response:
        await self._authenticate(request)
        self._root(request)
        raise TaxiiError(404, "Not found", "no such status: this server accepts no writes")

    def routes(self) -> list[Route]:
        g = _guard
        base = "/{root}/collections/{cid}"
        return [
            Route("/taxii2/", g(self.discovery), methods=["GET"]),
            Route("/{root}/", g(self.api_root), methods=["GET"], name="api_root"),
            Route("/{root}/collections/", g(self.collections_list), methods=["GET"]),
            Route(base + "/", g(self.collection), methods=["GET"]),
            Route(base + "/objects/", g(self.objects), methods=["GET"]),
            Route(base + "/objects/", g(self.read_only), methods=["POST"]),
            Route(base + "/objects/{oid}/", g(self.one_object), methods=["GET"]),
            Route(base + "/objects/{oid}/", g(self.read_only), methods=["DELETE"]),
            Route(base + "/objects/{oid}/versions/", g(self.versions), methods=["GET"]),
            Route(base + "/manifest/", g(self.manifest), methods=["GET"]),
            Route("/{root}/status/{sid}/", g(self.status), methods=["GET"]),
        ]


def make_app(config: TaxiiConfig) -> Starlette:
    """The ASGI application for ``config``."""
    state = TaxiiApp(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        state.clients.close()

    app = Starlette(routes=state.routes(), lifespan=lifespan)
    app.state.taxii = state
    return app
