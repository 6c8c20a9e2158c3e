"""The page's routes (kbtools/web): what a hub serves at / and /static/, on a real loopback socket."""
from __future__ import annotations

import asyncio
import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

import kbtools.web


OWN_NODEINFO = {"success": True, "info": {"node_id": "d0d90d53e2d5", "node_type": "hub", "name": "hüb"},
                "child_hubs": {}, "child_leaf_nodes": {}}
Answer = tuple[int, CIMultiDict[str], bytes]


def fetch_all(requests: list[tuple[str, str]], headers: dict[str, str] | None = None) -> list[Answer]:
    """Serve only the page's routes on 127.0.0.1 and make each (method, path) request."""
    async def run() -> list[Answer]:
        app = web.Application()
        app.add_routes(kbtools.web.routes(lambda: OWN_NODEINFO))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            answers = []
            for method, path in requests:
                response = await client.request(method, path, headers=headers)
                answers.append((response.status, response.headers.copy(), await response.read()))
            return answers
    return asyncio.run(run())


def test_index_is_the_page_with_a_strict_content_security_policy():
    [(status, headers, body)] = fetch_all([("GET", "/")])
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert body == kbtools.web.INDEX_HTML.read_bytes()
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_every_file_the_page_names_is_served_with_its_type():
    html = kbtools.web.INDEX_HTML.read_text()
    names = ["app.js", "style.css", "favicon.svg"]
    for name in names:
        assert f'"static/{name}"' in html
    answers = fetch_all([("GET", f"/static/{name}") for name in names])
    for name, (status, headers, body) in zip(names, answers):
        assert status == 200, name
        assert headers["Content-Type"] == kbtools.web.STATIC_FILES[name]
        assert body == (kbtools.web.STATIC_DIR / name).read_bytes()


def test_nothing_else_in_the_package_directory_is_served():
    answers = fetch_all([("GET", "/static/__init__.py"), ("GET", "/static/..%2f__init__.py"),
                         ("GET", "/static/index.html"), ("GET", "/static/missing.js")])
    for status, headers, body in answers:
        assert status == 404
        assert b"def routes" not in body


def test_head_and_revalidation_work():
    [(status, headers, body)] = fetch_all([("HEAD", "/static/app.js")])
    assert status == 200 and body == b""
    assert headers["Cache-Control"] == "no-cache"
    [(status, _, _)] = fetch_all([("GET", "/static/app.js")], headers={"If-None-Match": headers["ETag"]})
    assert status == 304


def test_api_self_is_the_hubs_own_nodeinfo():
    [(status, headers, body)] = fetch_all([("GET", "/api/self")])
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(body) == OWN_NODEINFO


def test_api_self_may_come_from_a_coroutine():
    async def own_nodeinfo():
        return OWN_NODEINFO

    async def run() -> tuple[int, bytes]:
        app = web.Application()
        app.add_routes(kbtools.web.routes(own_nodeinfo))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            response = await client.get("/api/self")
            return response.status, await response.read()
    status, body = asyncio.run(run())
    assert status == 200 and json.loads(body) == OWN_NODEINFO
