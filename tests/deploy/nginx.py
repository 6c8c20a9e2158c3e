"""Debian's nginx on loopback ports, running the checked-in docs/deploy/ configuration.

    site = render_site(port=..., http_port=..., upstream="127.0.0.1:PORT", cert=..., key=..., cache=...)
    with Nginx(tmp_path / "nginx", site) as nginx:   # started; stopped (and waited for) at the end
        ...

nginx is installed by `make test-deps` (apt-get install nginx-light); a missing nginx fails the
test, it is never skipped.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.netfixtures import ROOT

SITE = ROOT / "docs" / "deploy" / "nginx-kbucket-hub.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def render_site(*, port: int, http_port: int, upstream: str, cert: Path, key: Path,
                cache: Path) -> str:
    """docs/deploy/nginx-kbucket-hub.conf with the loopback ports and the test's files."""
    text = SITE.read_text(encoding="utf-8")
    for old, new in (("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;"),
                     ("listen 80;", f"listen 127.0.0.1:{http_port};"),
                     ("server 127.0.0.1:3240;", f"server {upstream};"),
                     ("ssl_certificate     /etc/ssl/kbucket/hub.crt;", f"ssl_certificate {cert};"),
                     ("ssl_certificate_key /etc/ssl/kbucket/hub.key;", f"ssl_certificate_key {key};"),
                     ("proxy_cache_path /var/cache/nginx/kbucket ", f"proxy_cache_path {cache} ")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


class Nginx:
    def __init__(self, root: Path, site: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "site.conf").write_text(site, encoding="utf-8")
        temp = self.root / "temp"
        temp.mkdir(exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers read the test's files
        (self.root / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {self.root}/nginx.pid;\n"
            f"error_log {self.root}/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"  access_log {self.root}/access.log;\n"
            f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n"
            f"  scgi_temp_path {temp}/scgi;\n"
            "  types { text/html html; }\n  default_type application/octet-stream;\n"
            f"  include {self.root}/site.conf;\n"
            "}\n", encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def check(self) -> None:
        """`nginx -t` of the configuration (raises with nginx's message)."""
        result = subprocess.run([NGINX, "-t", "-p", str(self.root), "-c", str(self.root / "nginx.conf")],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr

    def start(self, port: int) -> "Nginx":
        if not Path(NGINX).exists():
            raise AssertionError("nginx is missing: run `make test-deps` (apt-get install nginx-light)")
        self.check()
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(self.root / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=open(self.root / "stderr.log", "wb"),
            start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"nginx did not start: {self.log()}")
                time.sleep(0.05)

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        p = self.process
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGQUIT)  # graceful: workers finish, then the master exits
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)

    def __enter__(self) -> "Nginx":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
