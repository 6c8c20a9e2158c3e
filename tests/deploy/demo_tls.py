"""`make demo-tls`: the TLS deployment on loopback, step by step (docs/deploy/README.md).

A throwaway CA and a certificate for localhost; a kb-hub serving HTTPS and WSS itself
(--tls-cert/--tls-key); a kb-host connected to it by wss://, verifying it with KBUCKET_CA_FILE; kb-get
downloading over https:// (verified, from the hub's content URL); and the same kb-get refused,
exit 3, when it trusts another CA. Everything runs in a temporary directory and is stopped at the end.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.deploy.pki import TestCA
from tests.netfixtures import ROOT, Network, free_port


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kbtools-demo-tls-") as tmp:
        root = Path(tmp)
        step("a throwaway CA, and a certificate for localhost")
        ca = TestCA(root / "pki")
        cert, key = ca.issue("hub", ["localhost"])
        print(f"CA: {ca.cert_file}\ncertificate: {cert}")
        with Network(root / "net") as net:
            port = free_port()
            step("kb-hub --tls-cert --tls-key: HTTPS and WSS on one port")
            hub = net.hub("hub", port=port, listen_url=f"https://localhost:{port}",
                          args=("--tls-cert", str(cert), "--tls-key", str(key)))
            print(hub.ready)
            step("kb-host under https://localhost: connects by wss://, verified with KBUCKET_CA_FILE")
            data = os.urandom(3 * 1024 * 1024)
            share = net.share("share", parent=f"https://localhost:{port}",
                              files={"dataset1/raw.bin": data}, start=False)
            share.env["KBUCKET_CA_FILE"] = str(ca.cert_file)
            share.start()
            print(share.ready)
            sha1 = hashlib.sha1(data).hexdigest()
            deadline = time.monotonic() + 30
            while not requests.get(f"https://localhost:{port}/find/{sha1}/", verify=str(ca.cert_file),
                                   timeout=10).json().get("found"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            env = {**os.environ, "KBUCKET_CACHE_DIR": str(root / "cache"), "KBUCKET_CA_FILE": str(ca.cert_file)}
            url = f"https://localhost:{port}/sha1/{sha1}/raw.bin"
            step(f"kb-url, then kb-get over https:// ({url})")
            subprocess.run([sys.executable, str(ROOT / "bin" / "kb-url"), f"kbucket://{share.node_id}/dataset1/raw.bin",
                            "--hub", f"https://localhost:{port}"], env=env, check=True)
            subprocess.run([sys.executable, str(ROOT / "bin" / "kb-get"), url, "-o", str(root / "raw.bin")],
                           env=env, check=True)
            assert (root / "raw.bin").read_bytes() == data
            step("the same kb-get trusting another CA: refused, exit 3")
            other = TestCA(root / "other", name="another CA")
            refused = subprocess.run([sys.executable, str(ROOT / "bin" / "kb-get"), url, "--no-cache",
                                      "-o", str(root / "x.bin"), "--ca-file", str(other.cert_file)], env=env)
            print(f"exit status {refused.returncode}")
            assert refused.returncode == 3
        step("done: hub and share stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
