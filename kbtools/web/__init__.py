"""The hub's web page: static files shipped in the package, and the routes that serve them.

The page is plain HTML, CSS and JavaScript with no build step and nothing fetched from elsewhere,
so it works on lab networks without internet. It talks only to the HTTP API of the hub that serves
it (spec §4, plus the kbtools routes ``/api/self`` and ``/<id>/api/dataset/<path>``).
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

STATIC_DIR: Path = Path(__file__).resolve().parent
INDEX_HTML: Path = STATIC_DIR / "index.html"

# The page's own files, served under /static/ by name. A fixed list, so that nothing else in the
# package directory (this module, __pycache__) is ever served.
STATIC_FILES: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

# Scripts and styles only from this hub; connect-src stays open because `kbucket_url=` may point
# the page at another hub's API (hubs answer with CORS `*`).
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src *; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Always revalidate (ETag / Last-Modified), so a hub upgrade never serves a stale page.
    "Cache-Control": "no-cache",
}


async def index(request: web.Request) -> web.StreamResponse:
    """``GET /``: the page; every view is chosen by the query string, in the browser."""
    return web.FileResponse(INDEX_HTML, headers={**SECURITY_HEADERS,
                                                 "Content-Type": "text/html; charset=utf-8"})


async def static_file(request: web.Request) -> web.StreamResponse:
    """``GET /static/<name>``: one of :data:`STATIC_FILES`, else a JSON 404."""
    name = request.match_info["name"]
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        return web.json_response({"error": "Not found"}, status=404)
    return web.FileResponse(STATIC_DIR / name, headers={**SECURITY_HEADERS,
                                                        "Content-Type": content_type})


NodeinfoSource = Callable[[], "Mapping[str, Any] | Awaitable[Mapping[str, Any]]"]


def self_route(own_nodeinfo: NodeinfoSource) -> web.RouteDef:
    """``GET /api/self``: the serving hub's own nodeinfo, so that ``/`` can show the hub without its id."""
    async def handler(request: web.Request) -> web.StreamResponse:
        answer = own_nodeinfo()
        if inspect.isawaitable(answer):
            answer = await answer
        # Spec §4.1: 4-space JSON and CORS `*`, like every answer of the API.
        return web.Response(text=json.dumps(answer, indent=4, ensure_ascii=False),
                            content_type="application/json", charset="utf-8",
                            headers={"Access-Control-Allow-Origin": "*"})
    return web.get("/api/self", handler)


def routes(own_nodeinfo: NodeinfoSource) -> list[web.RouteDef]:
    """The page's routes for the hub's application: ``app.add_routes(kbtools.web.routes(f))``.

    ``own_nodeinfo()`` returns (or resolves to) the hub's own nodeinfo answer, the body of
    ``/<hub id>/api/nodeinfo``; it is served at ``/api/self``.
    """
    return [web.get("/", index), web.get("/static/{name}", static_file), self_route(own_nodeinfo)]
