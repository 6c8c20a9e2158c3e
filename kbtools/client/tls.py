"""Certificate verification for every https:// and wss:// connection kbtools makes.

Which certificates are trusted, first found wins:

1. ``--ca-file FILE`` (kb-get, kb-url, kb-host), recorded with :func:`configure`;
2. ``$KBUCKET_CA_FILE``;
3. the conventions of other tools: ``$REQUESTS_CA_BUNDLE``, ``$CURL_CA_BUNDLE``, ``$SSL_CERT_FILE``;
4. the system's store (OpenSSL's default file, ``/etc/ssl/certs/ca-certificates.crt`` on Debian),
   else the certifi bundle that comes with requests.

A CA file adds nothing to the system store: it is the whole list of trusted roots (as with curl
``--cacert``), so a lab's own CA is trusted without trusting it for the rest of the world too.
Verification is never turned off: there is no option for it. A certificate that does not verify is
a :class:`kbtools.client.errors.PeerError` (exit 3) naming the host and OpenSSL's reason.
"""
from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Mapping

import requests

from kbtools.errors import UsageError

CA_FILE_ENV = "KBUCKET_CA_FILE"
#: Environment variables read after ``KBUCKET_CA_FILE``, in this order (requests, curl, OpenSSL).
CONVENTION_ENVS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")

_configured: str | None = None  # --ca-file of this process


def configure(ca_file: str | os.PathLike[str] | None, origin: str = "--ca-file") -> None:
    """Record the ``--ca-file`` of this run (checked now: a usage error when it is not a file)."""
    global _configured
    _configured = check_ca_file(str(ca_file), origin) if ca_file else None


def check_ca_file(value: str, origin: str) -> str:
    """``value`` when it names a readable file, else a :class:`UsageError` naming ``origin``."""
    path = Path(value).expanduser()
    if not path.is_file():
        what = "no such file" if not path.exists() else "not a file"
        raise UsageError(f"{origin}={value}: {what} (a PEM file of trusted CA certificates)")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{origin}={value}: not readable")
    return str(path)


def ca_file(environ: Mapping[str, str] | None = None) -> str | None:
    """The CA file chosen by the order above; None for the system store."""
    env = os.environ if environ is None else environ
    if _configured:
        return _configured
    for name in (CA_FILE_ENV, *CONVENTION_ENVS):
        value = env.get(name)
        if value:
            return check_ca_file(value, name)
    return None


def system_ca_file() -> str | None:
    """OpenSSL's default CA file when it exists (the system store on Linux), else None."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def requests_verify() -> str | bool:
    """The ``verify`` value for requests: a CA file, never False."""
    return ca_file() or system_ca_file() or True


def ssl_context() -> ssl.SSLContext:
    """A client context that verifies the peer and its host name against the chosen CAs."""
    chosen = ca_file()
    context = ssl.create_default_context(cafile=chosen) if chosen else ssl.create_default_context()
    if not chosen and system_ca_file() is None:
        import certifi  # requests' own dependency: roots for a system without a store

        context.load_verify_locations(certifi.where())
    return context


class VerifyingSession(requests.Session):
    """A requests session whose certificate check follows this module, not requests' own order
    (requests would let ``$REQUESTS_CA_BUNDLE`` override ``--ca-file``)."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None or verify is True:  # chosen per request: --ca-file may come later
            settings["verify"] = requests_verify()
        return settings


def session() -> requests.Session:
    """A new requests session that verifies as above (and sends the grant tokens taken from
    links to their private shares: kbtools.client.grants)."""
    from kbtools.client.grants import attach

    return attach(VerifyingSession())


def is_certificate_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a failed certificate check."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(current) or "certificate verify failed" in str(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return any("certificate verify failed" in str(arg) for arg in getattr(exc, "args", ()))


def certificate_reason(exc: BaseException) -> str:
    """OpenSSL's reason, as in ``certificate verify failed: unable to get local issuer certificate``."""
    text = str(exc)
    start = text.find("certificate verify failed")
    if start < 0:
        return "certificate verify failed"
    reason = text[start:]
    for stop in (" (_ssl", ")", "'", '"'):
        cut = reason.find(stop)
        if cut > 0:
            reason = reason[:cut]
    return reason.strip().rstrip(".")


def certificate_message(host: str, exc: BaseException) -> str:
    """One line: the host whose certificate did not verify, OpenSSL's reason, and the fix."""
    return (f"TLS certificate of {host} not trusted ({certificate_reason(exc)}); "
            f"give its CA with --ca-file or ${CA_FILE_ENV}")


def add_ca_option(parser: Any) -> None:
    """``--ca-file FILE`` on an argparse parser (see :func:`configure`)."""
    parser.add_argument("--ca-file", metavar="FILE",
                        help=f"PEM file of the CA certificates to trust for https:// and wss:// "
                             f"(default: ${CA_FILE_ENV}, else $REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE or "
                             f"$SSL_CERT_FILE, else the system's store)")


CA_EPILOG = (f"  {CA_FILE_ENV}    CA certificates to trust for https:// and wss:// (as --ca-file);\n"
             "                     else $REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE, $SSL_CERT_FILE, else the\n"
             "                     system's store. A certificate that does not verify fails (exit 3).\n")
