"""Private shares on a real loopback network: kb-hub processes (a top hub and a child hub) and
kb-host processes, one private share under the child hub on the fast tunnel, one directly under the
top hub on the compatible path (`--no-fast-path`: the JSON frames an original hub speaks; the hub
makes no grant check, it forwards blindly, so only the share's own check stands).

Without a grant every route refuses (direct, tunnel, find, /sha1/, readdir, prv, dataset, nodeinfo,
the page's APIs); with one kb-get fetches exactly what it covers, verified, and the share's served
events say who fetched what. The share's handling of an original hub's request frames (the token
in `query`, an `authorization` header) is in tests/share/test_link.py's style below.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import pytest
import requests

from kbtools.cli.kb_get import KbGet
from kbtools.cli.kb_url import KbUrl
from kbtools.client import grants as client_grants
from kbtools.formats.sample import write_sample_study

from ..conftest import run_cli, validate
from ..netfixtures import Network, NodeProcess

SECRET = b"lab notes, unpublished\n"


def share_files(root: Path) -> dict[str, bytes]:
    root.mkdir(parents=True, exist_ok=True)
    write_sample_study(root)
    (root / "notes.txt").write_bytes(SECRET)
    (root / "dataset10").mkdir()
    (root / "dataset10" / "other.txt").write_bytes(b"next door\n")
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class PrivateNet:
    def __init__(self, net: Network) -> None:
        self.net = net
        self.top = net.hub("top", passcode="toppass")
        self.child = net.hub("child", passcode="childpass", parent=self.top, parent_passcode="toppass")
        self.contents: dict[str, dict[str, bytes]] = {}
        self.fast = self._share("fast", self.child, "childpass", ())
        self.compat = self._share("compat", self.top, "toppass", ("--no-fast-path",))

    def _share(self, name: str, parent: NodeProcess, passcode: str, args: tuple[str, ...]) -> NodeProcess:
        self.contents[name] = share_files(self.net.root / name)
        share = self.net.share(name, parent=parent, passcode=passcode, args=("--private", *args))
        share.wait_event(lambda e: e["event"] == "index" and e["files"] >= len(self.contents[name])
                         and e["hashed"] + e["errors"] >= 0, timeout=60)
        return share

    def grant(self, share: NodeProcess, path: str, label: str, expires: str = "30d") -> dict[str, Any]:
        result = run_cli(KbUrl, "--grant", share.node_dir / path if path else share.node_dir,
                         "--expires", expires, "--label", label)
        assert result.code == 0, result.stderr
        record = result.json
        validate(record, "kb-grant")
        return record


@pytest.fixture(scope="module")
def pnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNet]:
    with Network(tmp_path_factory.mktemp("private") / "net") as net:
        yield PrivateNet(net)


@pytest.fixture(autouse=True)
def no_tokens() -> Iterator[None]:
    client_grants.forget_all()
    yield
    client_grants.forget_all()


def share_routes(node_id: str, rel: str) -> list[str]:
    q = quote(rel)
    return [f"{node_id}/api/nodeinfo", f"{node_id}/api/readdir/{q}", f"{node_id}/download/{q}",
            f"{node_id}/prv/{q}", f"{node_id}/api/dataset/{q}"]


def wait_prv(base: str, node_id: str, rel: str, token: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while requests.get(f"{base}/{node_id}/prv/{quote(rel)}", headers={"X-Kbucket-Token": token},
                       timeout=10).status_code != 200:
        assert time.monotonic() < deadline, rel
        time.sleep(0.2)


@pytest.mark.parametrize("which", ["fast", "compat"])
def test_nothing_without_a_grant_by_any_route(pnet: PrivateNet, which: str) -> None:
    share = getattr(pnet, which)
    nid = share.node_id
    files = pnet.contents[which]
    bases = [pnet.top.url, pnet.child.url, share.url]
    bad_tokens = ["", "kbt1.x.y", "Bearer", "kbt1." + "A" * 40 + "." + "B" * 40]
    for base in bases:
        for rel in ("", "dataset1", "dataset1/raw.mda", "notes.txt"):
            for route in share_routes(nid, rel):
                for token in bad_tokens:
                    r = requests.get(f"{base}/{route}", headers={"X-Kbucket-Token": token} if token else {},
                                     timeout=20)
                    assert r.status_code in (401, 404, 500, 400), (base, route, r.status_code, r.text)
                    assert r.status_code != 200
                    if r.status_code == 401:
                        assert r.headers["Cache-Control"] == "private, max-age=0"
                        assert "private" in r.json()["error"] or "Invalid grant" in r.json()["error"]
    # content-addressed routes never reach a private share's files
    for data in files.values():
        sha1 = hashlib.sha1(data).hexdigest()
        for base in (pnet.top.url, pnet.child.url):
            assert requests.get(f"{base}/find/{sha1}/", timeout=20).json()["found"] is False
            assert requests.get(f"{base}/{nid}/api/find/{sha1}/", timeout=20).json()["found"] is False
            r = requests.get(f"{base}/sha1/{sha1}/x", timeout=20)
            assert r.status_code >= 400 and SECRET not in r.content
    # the hubs' listings: the id, and nothing else
    for hub in (pnet.top, pnet.child):
        info = requests.get(f"{hub.url}/{hub.node_id}/api/nodeinfo", timeout=10).json()
        listed = info.get("child_leaf_nodes", {})
        if nid in listed:
            assert listed[nid] == {"name": "", "listen_url": ""}
        assert "test share" not in json.dumps(info)


@pytest.mark.parametrize("which", ["fast", "compat"])
def test_a_grant_fetches_exactly_what_it_covers(pnet: PrivateNet, which: str, tmp_path: Path) -> None:
    share = getattr(pnet, which)
    nid = share.node_id
    files = pnet.contents[which]
    record = pnet.grant(share, "dataset1", label=f"for Bob ({which})")
    token, link = record["token"], record["kbucket_url"]
    assert link == f"kbucket://{nid}/dataset1?token={token}"
    assert record["browse_url"].endswith(f"/?node_id={nid}&path=dataset1#token={token}")
    for name in ("raw.mda", "geom.csv", "params.json"):
        wait_prv(share.url, nid, f"dataset1/{name}", token)

    out = tmp_path / "got"
    result = run_cli(KbGet, link, "-o", out, "--hub", pnet.top.url, "--no-cache")
    assert result.code == 0, result.stderr
    assert token not in result.stdout + result.stderr
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    want = {k.split("/", 1)[1]: v for k, v in files.items() if k.startswith("dataset1/")}
    assert {k.split("/", 1)[-1]: v for k, v in got.items()} == want
    for rec in result.records:
        validate(rec, "kb-get-record")
        assert rec["status"] == "ok"

    # the token from a file or the environment: nothing in argv
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    result = run_cli(KbGet, f"kbucket://{nid}/dataset1/params.json", "--token-file", token_file,
                     "--hub", pnet.top.url, "--no-cache", "-o", tmp_path / "params.json")
    assert result.code == 0, result.stderr
    assert (tmp_path / "params.json").read_bytes() == files["dataset1/params.json"]

    # outside the grant: refused (the neighbour with a common prefix too)
    for outside in ("notes.txt", "dataset10/other.txt", "dataset1/../notes.txt"):
        client_grants.forget_all()
        result = run_cli(KbGet, f"kbucket://{nid}/{outside}?token={token}", "-o", tmp_path / "no",
                         "--hub", pnet.top.url)
        assert result.code != 0, outside
        assert token not in result.stdout + result.stderr
        assert not (tmp_path / "no" / "notes.txt").exists()

    # kb-url resolves the link: the URL it prints has no token
    client_grants.forget_all()
    result = run_cli(KbUrl, f"kbucket://{nid}/dataset1/params.json?token={token}", "--hub", pnet.top.url)
    assert result.code == 0, result.stderr
    assert result.json["sha1"] == hashlib.sha1(files["dataset1/params.json"]).hexdigest()
    assert token not in result.stdout

    # who fetched what: the share's served events, through the tunnel, with the grant's label
    served = share.wait_event(lambda e: e["event"] == "served" and e["path"] == "dataset1/raw.mda")
    assert served["route"] == "tunnel" and served["grant_label"] == f"for Bob ({which})"
    assert served["grant_id"] == record["grant_id"]
    for event in share.events()[1:]:
        validate(event, "kb-host-event")
    assert token not in share.out_path.read_text() + share.stderr()
    assert token not in pnet.top.out_path.read_text() + pnet.top.stderr()
    assert token not in pnet.child.out_path.read_text() + pnet.child.stderr()

    # a browser link (?token= in the URL) through the hub, as the page makes them
    r = requests.get(f"{pnet.top.url}/{nid}/download/dataset1/params.json?token={token}", timeout=20)
    assert r.status_code == 200 and r.content == files["dataset1/params.json"]
    assert "private" in r.headers["Cache-Control"]

    # revoked: refused at once, on every route
    result = run_cli(KbUrl, "--revoke", record["grant_id"], share.node_dir)
    assert result.code == 0 and result.json["state"] == "revoked"
    validate(result.json, "kb-grant")
    for base in (pnet.top.url, share.url):
        r = requests.get(f"{base}/{nid}/download/dataset1/params.json",
                         headers={"X-Kbucket-Token": token}, timeout=20)
        assert r.status_code == 401 and "revoked" in r.json()["error"]
    listing = run_cli(KbUrl, "--grants", share.node_dir)
    assert listing.code == 0 and token not in listing.stdout
    assert {r["grant_id"]: r["state"] for r in listing.records}[record["grant_id"]] == "revoked"


def test_a_grant_is_useless_on_another_share(pnet: PrivateNet) -> None:
    token = pnet.grant(pnet.fast, "", label="whole share")["token"]
    wait_prv(pnet.fast.url, pnet.fast.node_id, "notes.txt", token)
    nid = pnet.compat.node_id
    for base in (pnet.top.url, pnet.compat.url):
        for route in share_routes(nid, "notes.txt"):
            r = requests.get(f"{base}/{route}", headers={"X-Kbucket-Token": token}, timeout=20)
            assert r.status_code == 401 and "signature" in r.json()["error"]
    r = requests.get(f"{pnet.top.url}/{pnet.fast.node_id}/download/notes.txt",
                     headers={"X-Kbucket-Token": token}, timeout=20)
    assert r.status_code == 200 and r.content == SECRET


def test_fsspec_and_spikeinterface_read_a_private_dataset_by_its_link(pnet: PrivateNet) -> None:
    import fsspec

    from kbtools.client.fsspec_fs import KbucketFileSystem
    from kbtools.spikeinterface import read_recording

    share = pnet.fast
    nid = share.node_id
    files = pnet.contents["fast"]
    record = pnet.grant(share, "dataset1", label="for the notebook")
    token, link = record["token"], record["kbucket_url"]
    wait_prv(share.url, nid, "dataset1/raw.mda", token)
    client_grants.forget_all()
    with pytest.raises(OSError):  # no grant: nothing to read
        KbucketFileSystem(hub=pnet.top.url, skip_instance_cache=True).cat_file(
            f"kbucket://{nid}/dataset1/params.json")
    with fsspec.open(f"kbucket://{nid}/dataset1/params.json?token={token}", hub=pnet.top.url,
                     skip_instance_cache=True) as f:
        assert f.read() == files["dataset1/params.json"]
    client_grants.forget_all()
    recording = read_recording(link, hub=pnet.top.url, storage_options={"skip_instance_cache": True})
    assert recording.get_num_channels() == 4
    assert recording._kwargs["url"] == link  # worker processes get the token too
    assert recording.get_traces(start_frame=0, end_frame=10).shape == (10, 4)
