"""kb-hub serving HTTPS and WSS itself (--tls-cert/--tls-key); kb-host, kb-get and kb-url verifying
its certificate against a throwaway CA (--ca-file, $KBUCKET_CA_FILE, the requests/OpenSSL
conventions); a certificate that does not verify is exit 3, never a fall-back to plain text."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from kbtools.cli.kb_get import KbGet
from kbtools.cli.kb_hub import KbHub
from kbtools.cli.kb_url import KbUrl
from tests.conftest import run_cli, validate
from tests.netfixtures import ROOT, free_port

DATA = b"tls bytes\n" * 5000


def tls_hub(network, pki, name="hub"):
    port = free_port()
    return network.hub(name, port=port, listen_url=f"https://localhost:{port}",
                       args=("--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])))


def tls_share(network, hub, name="share", env=None, args=()):
    port = free_port()
    share = network.share(name, parent=f"https://localhost:{hub.ready['url'].rsplit(':', 1)[1]}",
                          files={"d/a.bin": DATA}, port=port, args=args, start=False)
    share.env.update(env or {})
    return share


def test_hub_share_and_clients_over_tls(network, pki, tmp_path, monkeypatch):
    hub = tls_hub(network, pki)
    assert hub.ready["url"].startswith("https://127.0.0.1:")
    assert hub.ready["listen_url"].startswith("https://localhost:")
    share = tls_share(network, hub, env={"KBUCKET_CA_FILE": str(pki["ca"])}).start()
    assert share.ready["event"] == "connected"
    assert share.ready["parent_hub_url"].startswith("https://localhost:")
    # the hub's page and API over HTTPS, verified
    assert requests.get(f"{hub.ready['listen_url']}/", verify=str(pki["ca"])).status_code == 200
    sha1 = hashlib.sha1(DATA).hexdigest()
    url = f"kbucket://{share.node_id}/d/a.bin"
    out = tmp_path / "a.bin"
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "cache"))
    got = run_cli(KbGet, url, "--hub", hub.ready["listen_url"], "--ca-file", pki["ca"], "-o", out)
    assert got.code == 0, got.stderr
    assert out.read_bytes() == DATA
    assert got.records[0]["sha1"] == sha1
    # kb-url: the same, through $KBUCKET_CA_FILE, with the hub's content URL
    monkeypatch.setenv("KBUCKET_CA_FILE", str(pki["ca"]))
    resolved = run_cli(KbUrl, url, "--hub", hub.ready["listen_url"])
    assert resolved.code == 0, resolved.stderr
    record = resolved.records[0]
    validate(record, "kb-url")
    assert record["content_url"] == f"{hub.ready['listen_url']}/sha1/{sha1}/a.bin"
    assert all(u.startswith(("https://localhost:", "http://127.0.0.1:")) for u in record["download_urls"])
    # fsspec (and so pandas, SpikeInterface, h5py) through the same verification
    from kbtools.client.fsspec_fs import KbucketFileSystem

    fs = KbucketFileSystem(hub=hub.ready["listen_url"], skip_instance_cache=True, local_cache="off")
    assert fs.cat_file(url) == DATA


def test_wrong_certificate_is_exit_3_everywhere(network, pki, tmp_path, monkeypatch):
    hub = tls_hub(network, pki)
    monkeypatch.setenv("KBUCKET_CACHE_DIR", str(tmp_path / "cache"))
    url = f"sha1://{'0' * 40}/x"
    for args in (("--ca-file", str(pki["other_ca"])), ()):  # another CA; the system store
        got = run_cli(KbGet, url, "--hub", hub.ready["listen_url"], "-o", tmp_path / "x", *args)
        assert got.code == 3, got.stderr
        assert "TLS certificate of https://localhost:" in got.stderr
        assert "certificate verify failed" in got.stderr
        assert "Traceback" not in got.stderr
        resolved = run_cli(KbUrl, url, "--hub", hub.ready["listen_url"], *args)
        assert resolved.code == 3
        assert resolved.records[0]["code"] == "untrusted-certificate"
        validate(resolved.records[0], "kb-url")
    # the conventions of other tools are honoured too, after KBUCKET_CA_FILE
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki["other_ca"]))
    assert run_cli(KbUrl, url, "--hub", hub.ready["listen_url"]).code == 3
    monkeypatch.setenv("KBUCKET_CA_FILE", str(pki["ca"]))
    found = run_cli(KbUrl, url, "--hub", hub.ready["listen_url"])
    assert found.records[0]["code"] == "not-found"  # verified: the hub answered
    # kb-host under another CA: a clear refusal, exit 3, no retry as plain text
    monkeypatch.delenv("KBUCKET_CA_FILE")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    share = tls_share(network, hub, "badshare", env={"SSL_CERT_FILE": str(pki["other_ca"])})
    share.start(wait=False)
    assert share.process.wait(30) == 3
    assert "TLS certificate of wss://localhost:" in share.stderr()
    refused = [e for e in share.events() if e.get("event") == "refused"]
    assert refused and refused[0]["retry_in"] is None
    validate(refused[0], "kb-host-event")


def test_original_share_scheme_rule(network, pki):
    """Spec §2.1: an https:// parent is spoken to by wss:// (the original share's rule), and the
    hub's TLS port accepts it; plain ws:// on the TLS port is refused by the handshake."""
    from kbtools.node.config import websocket_url

    hub = tls_hub(network, pki)
    assert websocket_url(hub.ready["listen_url"]).startswith("wss://localhost:")
    with pytest.raises(requests.ConnectionError):
        requests.get(hub.ready["url"].replace("https:", "http:"), timeout=5)


@pytest.mark.parametrize("args, message", [
    (("--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"),
     "--tls-cert /nonexistent.pem: no such file"),
    (("--tls-cert", "CERT"), "--tls-cert and --tls-key go together"),
    (("--tls-cert", "KEY", "--tls-key", "KEY"), "not a PEM certificate and its matching private key"),
    (("--public-url", "ftp://x"), "--public-url 'ftp://x': expected http(s)://HOST"),
])
def test_kb_hub_bad_tls_settings_are_usage_errors(tmp_path, pki, args, message):
    args = tuple(str(pki["cert"]) if a == "CERT" else str(pki["key"]) if a == "KEY" else a
                 for a in args)
    got = run_cli(KbHub, tmp_path / "h", "--auto", "--owner", "x", "--email", "x@example.org",
                  "--agree", *args)
    assert got.code == 2, got.stderr
    assert message in got.stderr
    assert len([l for l in got.stderr.splitlines() if l.startswith("kb-hub:")]) >= 1


@pytest.mark.parametrize("command", [KbGet, KbUrl])
def test_missing_ca_file_is_a_usage_error(command, tmp_path, monkeypatch):
    got = run_cli(command, f"sha1://{'0' * 40}", "--hub", "https://localhost:1",
                  "--ca-file", tmp_path / "missing.pem")
    assert got.code == 2
    assert "--ca-file=" in got.stderr and "no such file" in got.stderr
    monkeypatch.setenv("KBUCKET_CA_FILE", str(tmp_path))
    got = run_cli(command, f"sha1://{'0' * 40}", "--hub", "https://localhost:1")
    assert got.code == 2
    assert "KBUCKET_CA_FILE=" in got.stderr and "not a file" in got.stderr


def test_no_option_turns_verification_off():
    for command in ("kb-get", "kb-url", "kb-host", "kb-hub"):
        text = subprocess.run([sys.executable, str(ROOT / "bin" / command), "--help"],
                              capture_output=True, text=True, check=True).stdout
        for word in ("--no-verify", "--insecure", "verify=False", "--no-check"):
            assert word not in text
