"""The hub's HTTP API: unsafe paths and hidden files refused with JSON 4xx before any routing, no
stack traces, CORS, methods, the web page routes."""
from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
import requests

from tests.hub.children import FileChild, HubNode, write_random


@pytest.fixture
def net(lt, tmp_path):
    hub = HubNode(lt, tmp_path / "hub")
    files = tmp_path / "files"
    write_random(files / "ok.txt", 10)
    write_random(files / ".hidden", 10)
    write_random(files / "sub" / ".git" / "config", 10)
    child = FileChild(lt, tmp_path / "share", files, hub.url).connect()
    return hub, child


def raw_get(url_base: str, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    """A request with the path sent exactly as written (no client-side normalisation)."""
    parts = urlsplit(url_base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


UNSAFE = ["download/.hidden", "download/sub/.git/config", "download/.kbucket/private.pem",
          "download/%2Ekbucket/private.pem", "download/../../etc/passwd", "download/%2e%2e/%2e%2e/etc/passwd",
          "download/sub/..%2F..%2Fetc%2Fpasswd", "download//etc/passwd", "download/a%00b", "prv/.hidden",
          "prv/sub/../../x", "api/readdir/.kbucket", "api/readdir/sub/.git", "download/node_modules/x",
          "api/dataset/..%2F..", "download/~/x/.ssh"]


@pytest.mark.parametrize("rest", UNSAFE)
def test_unsafe_paths_get_a_json_4xx_and_never_reach_the_share(net, rest):
    hub, child = net
    status, headers, body = raw_get(hub.url, f"/{child.node_id}/{rest}")
    assert 400 <= status < 500, (status, body)
    assert headers["Content-Type"].startswith("application/json")
    answer = json.loads(body)
    assert "error" in answer and "Traceback" not in body.decode()
    assert child.requests_seen == []


def test_safe_paths_are_tunnelled(net):
    hub, child = net
    status, _, body = raw_get(hub.url, f"/{child.node_id}/download/ok.txt")
    assert status == 200 and len(body) == 10
    status, _, _ = raw_get(hub.url, f"/{child.node_id}/download/sub/not%20there.txt")
    assert status == 404  # the share's answer, passed through


def test_unknown_routes_methods_and_ids(net):
    hub, child = net
    for path in ("/nothing", f"/{hub.node_id}/api/unknown", f"/{child.node_id}/hdf5/x", "/find"):
        status, headers, body = raw_get(hub.url, path)
        assert status == 404 and json.loads(body)["error"] == "Not found"
    status, _, body = raw_get(hub.url, f"/{child.node_id}/download/ok.txt", method="POST")
    assert status == 405 and "error" in json.loads(body)
    status, _, body = raw_get(hub.url, "/abcdefabcdef/download/x.txt")
    assert status == 500 and json.loads(body) == {"error": "Unable to locate node with id: abcdefabcdef"}


def test_cors_preflight_and_headers(net):
    hub, child = net
    r = requests.options(f"{hub.url}/{child.node_id}/download/ok.txt", timeout=10,
                         headers={"Origin": "http://x", "Access-Control-Request-Method": "GET",
                                  "Access-Control-Request-Headers": "range"})
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Headers"] == "range"
    r = requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == "*" and r.headers["Server"] == "kbtools"
    assert r.text.startswith('{\n    "success": true')  # 4-space JSON, as the original


def test_nodeinfo_is_case_insensitive_and_ignores_a_trailing_slash(net):
    hub, _ = net
    for path in (f"/{hub.node_id}/api/nodeinfo/", f"/{hub.node_id}/API/NodeInfo"):
        status, _, body = raw_get(hub.url, path)
        assert status == 200 and json.loads(body)["info"]["node_id"] == hub.node_id


def test_the_web_page_and_its_self_route(net):
    hub, _ = net
    r = requests.get(f"{hub.url}/", timeout=10)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    me = requests.get(f"{hub.url}/api/self", timeout=10).json()
    assert me["info"]["node_id"] == hub.node_id and "child_leaf_nodes" in me
    assert requests.get(f"{hub.url}/static/server.py", timeout=10).status_code == 404


def test_no_absolute_paths_in_answers(net, tmp_path):
    hub, child = net
    bodies = [requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", timeout=10).text,
              requests.get(f"{hub.url}/find/{'a' * 40}/", timeout=10).text,
              raw_get(hub.url, f"/{child.node_id}/download/.kbucket/private.pem")[2].decode()]
    for body in bodies:
        assert str(tmp_path) not in body
