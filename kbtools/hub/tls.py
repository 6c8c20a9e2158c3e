"""kb-hub's TLS and public URL settings, checked before the hub starts (bad ones: exit 2)."""
from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from kbtools.errors import UsageError


def server_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server context for ``--tls-cert``/``--tls-key`` (both or neither), else None."""
    if not cert and not key:
        return None
    if not cert or not key:
        raise UsageError("--tls-cert and --tls-key go together")
    for option, value in (("--tls-cert", cert), ("--tls-key", key)):
        path = Path(value)
        if not path.is_file():
            raise UsageError(f"{option} {value}: {'not a file' if path.exists() else 'no such file'}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except PermissionError as e:
        raise UsageError(f"cannot read {e.filename or cert}: permission denied") from None
    except (ssl.SSLError, ValueError, OSError) as e:
        reason = getattr(e, "reason", None) or str(e)
        raise UsageError(f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its "
                         f"matching private key ({reason})") from None
    return context


def public_url_setting(value: str | None) -> str:
    """``--public-url``: an http(s) URL of a host (a path prefix allowed), without trailing /."""
    if not value:
        return ""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - ValueError for a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.query or parts.fragment or any(c.isspace() for c in value.strip()):
        raise UsageError(f"--public-url {value!r}: expected http(s)://HOST[:PORT][/PREFIX], "
                         "for example https://hub.example.org")
    return value.strip().rstrip("/")


def trusted_proxies(values: list[str]) -> tuple[str, ...]:
    """``--trusted-proxy``: IP addresses, normalised as aiohttp reports a peer."""
    import ipaddress

    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_address(value.strip())))
        except ValueError:
            raise UsageError(f"--trusted-proxy {value!r}: not an IP address") from None
    return tuple(out)
