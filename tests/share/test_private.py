"""A private share's own port: nothing without a grant, exactly the grant's path with one.

The share's HTTP API with every route and hostile tokens (tampered, expired, revoked, for another
share or path, `..` tricks, wrong encodings). The grant module itself: tests/node/test_grants.py.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kbtools.cli.grant_cmds import make_grant
from kbtools.node.grants import GrantStore
from kbtools.node.identity import create_identity
from kbtools.share.access import AccessPolicy
from kbtools.share.api import ShareContext
from tests.conftest import validate
from tests.share.conftest import Served, serving


@pytest.fixture
def private(tmp_path: Path) -> Iterator[tuple[Served, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []

    def link_out(root: Path) -> None:  # inside the grant, leads out
        (root / "dataset1" / "link-out").symlink_to(root / "one.txt")

    def make_private(ctx: ShareContext) -> None:
        ctx.access = AccessPolicy(ctx.root, ctx.node_id, ctx.public_pem)
        ctx.on_served = events.append

    with serving(tmp_path, link_out, make_private) as share:
        yield share, events


def grant(served: Served, path: str = "dataset1", expires: str = "30d", label: str = "for Bob",
          now: float | None = None) -> dict[str, Any]:
    target = served.root / path if path else served.root
    record = make_grant(str(target), expires, label, now=now)
    validate(record, "kb-grant")
    return record


def routes(node_id: str, rel: str) -> list[str]:
    q = quote(rel)
    return [f"/{node_id}/api/nodeinfo", f"/{node_id}/api/readdir/{q}", f"/{node_id}/download/{q}",
            f"/{node_id}/prv/{q}", f"/{node_id}/api/dataset/{q}"]


def status_of(served: Served, path: str, token: str | None, how: str = "header") -> int:
    headers = {}
    if token is not None and how == "header":
        headers["X-Kbucket-Token"] = token
    elif token is not None and how == "bearer":
        headers["Authorization"] = f"Bearer {token}"
    elif token is not None:
        path += ("&" if "?" in path else "?") + "token=" + quote(token, safe="")
    status, head, body = served.get(path, headers=headers)
    if status >= 400:
        assert head["cache-control"] == "private, max-age=0"
        if token and len(token) > 12:
            assert token.encode() not in body
    return status


# ---------------------------------------------------------------- the grant module

# ---------------------------------------------------------------- the share's own port

def test_nothing_without_a_grant(private: tuple[Served, list[dict[str, Any]]]) -> None:
    served, events = private
    nid = served.ctx.node_id
    for rel in ("", "one.txt", "dataset1", "dataset1/raw.mda", "no-such", "../etc/passwd", ".kbucket/private.pem"):
        for path in routes(nid, rel):
            status, head, body = served.get(path)
            assert status == 401, (path, status, body)
            answer = json.loads(body)
            assert answer == {"success": False,
                              "error": "This share is private: a grant is needed (a link with ?token=…)"}
            assert head["cache-control"] == "private, max-age=0"
    assert events == []


@pytest.mark.parametrize("how", ["header", "bearer", "query"])
def test_a_grant_serves_its_path_and_below_only(private: tuple[Served, list[dict[str, Any]]],
                                                 how: str) -> None:
    served, events = private
    nid = served.ctx.node_id
    token = grant(served)["token"]
    assert status_of(served, f"/{nid}/api/nodeinfo", token, how) == 200
    for rel in ("dataset1", "dataset1/raw.mda"):
        ok = [p for p in routes(nid, rel)[1:] if not (rel.endswith(".mda") and "readdir" in p)]
        for path in ok:
            want = 400 if "download/dataset1" == path.split("/", 2)[2] else 200
            if path.endswith("dataset/dataset1/raw.mda") or path.endswith("prv/dataset1"):
                continue
            assert status_of(served, path, token, how) == want, path
    for rel in ("", "one.txt", "d/two.txt", "dataset10", "dataset1/link-out", "in-link.txt"):
        for path in routes(nid, rel)[1:]:
            assert status_of(served, path, token, how) in (403, 400), path
    for rel in ("dataset1/../one.txt", "dataset1/./raw.mda", "dataset1//raw.mda", "dataset1/.kbucket",
                "dataset1/%2e%2e/one.txt"):
        status, _, _ = served.get(f"/{nid}/download/{rel}", headers={"X-Kbucket-Token": token})
        assert status in (400, 403, 404), rel
    listing = json.loads(served.get(f"/{nid}/api/readdir/dataset1",
                                    headers={"X-Kbucket-Token": token})[2])
    assert {f["name"] for f in listing["files"]} == {"raw.mda", "geom.csv", "params.json"}
    status, head, body = served.get(f"/{nid}/download/dataset1/params.json",
                                    headers={"X-Kbucket-Token": token, "Range": "bytes=0-3"})
    assert status == 206 and head["cache-control"] == "private, max-age=0"
    served_events = [e for e in events if e["path"] == "dataset1/params.json" and e["status"] == 206]
    assert served_events and served_events[-1]["grant_label"] == "for Bob"
    assert served_events[-1]["route"] == "direct" and served_events[-1]["bytes"] == 4
    for event in events:
        validate(event, "kb-host-event")
        assert token not in json.dumps(event)


def test_expired_revoked_unknown_and_foreign_grants(private: tuple[Served, list[dict[str, Any]]],
                                                   tmp_path: Path) -> None:
    served, _ = private
    nid = served.ctx.node_id
    path = f"/{nid}/download/dataset1/params.json"
    old = grant(served, expires="1s", now=time.time() - 10)["token"]
    status, _, body = served.get(path, headers={"X-Kbucket-Token": old})
    assert status == 401 and b"expired at" in body
    record = grant(served)
    assert status_of(served, path, record["token"]) == 200
    GrantStore(served.root).revoke(record["grant_id"], time.time())
    status, _, body = served.get(path, headers={"X-Kbucket-Token": record["token"]})
    assert status == 401 and b"was revoked" in body
    # a grant the share has no record of (its list lost) is refused, though well signed
    record = grant(served)
    (served.root / ".kbucket" / "grants.json").unlink()
    status, _, body = served.get(path, headers={"X-Kbucket-Token": record["token"]})
    assert status == 401 and b"no record" in body
    # a grant of another share, on this one
    other_root = tmp_path / "other"
    other_root.mkdir()
    other = create_identity(other_root)
    (other_root / ".kbucket" / "kbnode.json").write_text(
        json.dumps({"node_type": "leaf", "node_id": other.node_id}))
    (other_root / "dataset1").mkdir()
    foreign = make_grant(str(other_root / "dataset1"), "1d", "")["token"]
    status, _, body = served.get(path, headers={"X-Kbucket-Token": foreign})
    assert status == 401 and b"signature" in body


_TOKEN_CHARS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_tokens(private: tuple[Served, list[dict[str, Any]]], data: st.DataObject) -> None:
    """Random edits of a good token, and random strings: never a 2xx, never the token echoed."""
    served, _ = private
    nid = served.ctx.node_id
    token = _hostile_base(served)
    kind = data.draw(st.sampled_from(["flip", "cut", "append", "random", "case"]))
    if kind == "flip":
        i = data.draw(st.integers(5, len(token) - 1))
        c = data.draw(st.sampled_from("AZaz09-_."))
        bad = token[:i] + c + token[i + 1:]
    elif kind == "cut":
        bad = token[:data.draw(st.integers(0, len(token) - 1))]
    elif kind == "append":
        bad = token + data.draw(_TOKEN_CHARS.filter(bool))
    elif kind == "case":
        bad = token.swapcase()
    else:
        bad = data.draw(_TOKEN_CHARS)
    if bad == token:
        return
    path = f"/{nid}/download/dataset1/params.json"
    how = data.draw(st.sampled_from(["query", "header"]))
    if how == "header" and not all(32 <= ord(c) < 127 for c in bad):
        how = "query"
    status = status_of(served, path, bad, how)
    assert status in (400, 401), (bad, status)


def test_a_token_is_taken_exactly_as_it_was_made(private: tuple[Served, list[dict[str, Any]]]) -> None:
    served, _ = private
    token = _hostile_base(served)
    path = f"/{served.ctx.node_id}/download/dataset1/params.json"
    assert status_of(served, path, token, "query") == 200
    for spelt in (token + "\n", token + "\r", " " + token, token + " "):
        assert status_of(served, path, spelt, "query") in (400, 401), repr(spelt[-3:])


_BASE: dict[str, str] = {}


def _hostile_base(served: Served) -> str:
    key = str(served.root)
    if key not in _BASE:
        _BASE[key] = grant(served)["token"]
    return _BASE[key]
