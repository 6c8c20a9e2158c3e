"""A private share under a hub that forwards blindly, as the original does (spec §3.1): every client
header (`authorization` too) and the query string as a `query` object in `http.initiate_request`,
on the compatible path. The share alone decides; its hub learns nothing but its id.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbtools.cli.grant_cmds import make_grant
from kbtools.node.config import load_config, prepare_node, save_config
from kbtools.protocol.canonical import canonical_json
from kbtools.protocol.hubconn import ChildRegistered, NodeDataUpdated, ResponseEnd, ResponseHeaders
from kbtools.protocol.messages import EndRequest, InitiateRequest
from tests.conftest import validate
from tests.share.test_link import ScriptedHub, host, share_dir, wait_for  # noqa: F401 (fixture)


def original_request(rid: str, path: str, headers: dict[str, str], query: dict[str, str]) -> list[str]:
    """The frames an original hub sends: headers as the client gave them, `query` filled in."""
    return [canonical_json(InitiateRequest(rid, "GET", path, headers, query).to_fields()),
            canonical_json(EndRequest(rid).to_fields())]


def test_a_private_share_under_a_blind_hub(share_dir: Path) -> None:  # noqa: F811
    (share_dir / "data").mkdir()
    (share_dir / "data" / "a.txt").write_bytes(b"granted\n")
    node = prepare_node(share_dir, "leaf")
    config = load_config(share_dir)
    config["private"] = "yes"
    save_config(share_dir, config)
    nid = node.node_id
    good = make_grant(str(share_dir / "data"), "1d", "for Carol")["token"]
    wide = make_grant(str(share_dir), "1d", "")["token"]
    frames = [
        *original_request("NoToken1", f"{nid}/download/data/a.txt", {}, {}),
        *original_request("Query001", f"{nid}/download/data/a.txt", {}, {"token": good}),
        *original_request("Bearer01", f"{nid}/download/data/a.txt", {"authorization": f"Bearer {good}"}, {}),
        *original_request("Header01", f"{nid}/download/data/a.txt", {"x-kbucket-token": good}, {}),
        *original_request("Outside1", f"{nid}/download/one.txt", {}, {"token": good}),
        *original_request("Travers1", f"{nid}/download/data/../one.txt", {}, {"token": good}),
        *original_request("Spoof001", f"{nid}/download/data/a.txt",
                          {"x-kbtools-tunnel": "guess GET"}, {"token": good}),
        *original_request("ListRoot", f"{nid}/api/readdir/", {}, {"token": good}),
        *original_request("ListData", f"{nid}/api/readdir/data", {}, {"token": good}),
        *original_request("InfoNone", f"{nid}/api/nodeinfo", {}, {}),
        *original_request("QueryArr", f"{nid}/download/data/a.txt", {}, {"token": [good]}),  # type: ignore[dict-item]
        *original_request("Wide0001", f"{nid}/download/one.txt", {}, {"token": wide}),
    ]
    hub = ScriptedHub([frames], fast=False).start()
    events: list = []
    h = host(share_dir, hub, events, fast=False)
    try:
        wait_for(lambda: len(hub.of(ResponseEnd)) == len(frames) // 2, what="not every request answered")
        registered = hub.of(ChildRegistered)[0]
        info = registered.info if hasattr(registered, "info") else {}
        for field in ("name", "description", "owner", "owner_email", "listen_url"):
            assert info.get(field, "") == "", field
        status = {e.request_id: e.status for e in hub.of(ResponseHeaders)}
        assert status.pop("Travers1") in (400, 403)  # `..` refused, or resolved to outside the grant
        assert status == {"NoToken1": 401, "Query001": 200, "Bearer01": 200, "Header01": 200,
                          "Outside1": 403, "Spoof001": 200, "ListRoot": 403,
                          "ListData": 200, "InfoNone": 401, "QueryArr": 401, "Wide0001": 200}
        assert hub.bodies["Query001"] == b"granted\n"
        for rid in ("NoToken1", "Outside1", "Travers1", "ListRoot", "InfoNone"):
            assert good.encode() not in bytes(hub.bodies.get(rid, b""))
        headers = {e.request_id: e.headers for e in hub.of(ResponseHeaders)}
        assert headers["Query001"]["cache-control"] == "private, max-age=0"
        wait_for(lambda: any(True for _ in hub.of(NodeDataUpdated)), what="no node data")
        for update in hub.of(NodeDataUpdated):
            assert update.data == {"files_by_sha1": {}}
        served = [e for e in events if e.get("event") == "served"]
        assert {(e["path"], e["route"], e["grant_label"]) for e in served} == {
            ("data/a.txt", "tunnel", "for Carol"), ("one.txt", "tunnel", "")}
        assert len(served) == 5  # the spoofed tunnel header changed nothing
        for event in served:
            validate(event, "kb-host-event")
        assert good not in json.dumps(events)
    finally:
        h.stop()
        hub.stop()
