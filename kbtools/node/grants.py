"""Grants of a private share: read-only, expiring, revocable access to one path and below.

A grant is a token signed by the share's own RSA key (``.kbucket/private.pem``)::

    kbt1.<payload>.<signature>

``payload`` is the base64url (no padding) of a canonical JSON object (sorted keys, no spaces,
ASCII) with exactly the fields ``v`` (1), ``node`` (the share's node id), ``path`` (share-relative,
``""`` for the whole share), ``exp`` (expiry, Unix seconds, the share's clock), ``iat`` (issued at)
and ``id`` (16 hex digits, the grant's id). ``signature`` is the base64url of the RSA PKCS#1 v1.5
SHA-256 signature of ``kbucket-grant-v1\\n`` + the payload text. Anything else is refused: another
prefix, padding, non-canonical base64 or JSON, a missing or extra field, a field of the wrong type,
an unsafe path, a token longer than :data:`MAX_TOKEN_LENGTH`.

Anyone with the share's public key can check the signature (a kbtools hub does, to refuse early);
only the share checks the rest: that the grant is for its node id, that its id is in the share's
grant list (``.kbucket/grants.json``, so a grant it never issued, or one whose list was lost, is
refused) and not revoked, that it has not expired by the share's own clock (so the downloader's
clock never matters), and that the requested path is the grant's path or below it.

This module does no I/O except :class:`GrantStore`, the grant list in ``.kbucket/`` (written
atomically, under a lock, mode 0600). No message it produces contains a token.
"""
from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kbtools.atomic import write_atomic
from kbtools.index.paths import UnsafePath, safe_relpath

PREFIX = "kbt1"
SIGNED_PREFIX = b"kbucket-grant-v1\n"
MAX_TOKEN_LENGTH = 4096
TOKEN_RE = re.compile(r"kbt1\.[A-Za-z0-9_-]{1,2000}\.[A-Za-z0-9_-]{1,2000}\Z")  # \Z: no "\n" after
GRANT_ID_RE = re.compile(r"[0-9a-f]{16}\Z")
FIELDS = frozenset({"v", "node", "path", "exp", "iat", "id"})
#: the query parameter and the request header that carry a token
QUERY_PARAMETER = "token"
HEADER = "X-Kbucket-Token"
#: the environment variable kb-get and kb-url read a token from
TOKEN_ENV = "KBUCKET_TOKEN"
GRANTS_FILE = "grants.json"

# HTTP statuses (RFC 6750): no usable token 401, a good token that does not cover the path 403.
UNAUTHORIZED = 401
FORBIDDEN = 403


class GrantError(Exception):
    """A request a grant does not allow; ``status`` is its HTTP status. The text never holds a token."""

    def __init__(self, text: str, status: int = UNAUTHORIZED) -> None:
        super().__init__(text)
        self.status = status


@dataclass(frozen=True)
class Grant:
    """The checked content of a token."""

    grant_id: str
    node_id: str
    path: str
    expires: int
    issued: int

    def covers(self, relpath: str) -> bool:
        """True when ``relpath`` (already a safe share-relative path) is the grant's path or below."""
        return covers(self.path, relpath)


def covers(grant_path: str, relpath: str) -> bool:
    """``relpath`` is ``grant_path`` or below it, segment by segment (``data`` never covers ``data2``)."""
    if grant_path == "":
        return True
    return relpath == grant_path or relpath.startswith(grant_path + "/")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url without padding: the only encoding of its bytes, else ValueError."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("bad base64") from None
    if _b64encode(data) != text:
        raise ValueError("non-canonical base64")
    return data


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def new_grant_id() -> str:
    return secrets.token_hex(8)


def sign_grant(private_key: rsa.RSAPrivateKey, node_id: str, path: str, expires: int,
               grant_id: str, issued: int) -> str:
    """The token of a grant (see the module docstring)."""
    path = safe_relpath(path, allow_root=True)
    if not GRANT_ID_RE.match(grant_id):
        raise ValueError("a grant id is 16 hex digits")
    payload = _b64encode(_canonical({"v": 1, "node": node_id, "path": path, "exp": int(expires),
                                     "iat": int(issued), "id": grant_id}))
    signature = private_key.sign(SIGNED_PREFIX + payload.encode("ascii"), padding.PKCS1v15(),
                                 hashes.SHA256())
    return f"{PREFIX}.{payload}.{_b64encode(signature)}"


def read_token(token: Any, public_key: rsa.RSAPublicKey) -> Grant:
    """The grant a token holds once its form and signature are checked (nothing else), or
    :class:`GrantError` (401). What a hub may check with the share's public key."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not TOKEN_RE.match(token):
        raise GrantError("Invalid grant: not a kbucket grant token")
    _, payload_text, signature_text = token.split(".")
    try:
        payload = _b64decode(payload_text)
        signature = _b64decode(signature_text)
    except ValueError:
        raise GrantError("Invalid grant: not a kbucket grant token") from None
    try:
        public_key.verify(signature, SIGNED_PREFIX + payload_text.encode("ascii"),
                          padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise GrantError("Invalid grant: the signature does not match this share's key") from None
    try:
        obj = json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise GrantError("Invalid grant: malformed content") from None
    if not isinstance(obj, dict) or set(obj) != FIELDS or _canonical(obj) != payload:
        raise GrantError("Invalid grant: malformed content")
    ints = [obj[k] for k in ("v", "exp", "iat")]
    if any(not isinstance(x, int) or isinstance(x, bool) for x in ints) or obj["v"] != 1:
        raise GrantError("Invalid grant: malformed content")
    if not isinstance(obj["node"], str) or not isinstance(obj["path"], str) \
            or not isinstance(obj["id"], str) or not GRANT_ID_RE.match(obj["id"]):
        raise GrantError("Invalid grant: malformed content")
    try:
        safe_relpath(obj["path"], allow_root=True)
    except UnsafePath:
        raise GrantError("Invalid grant: malformed content") from None
    return Grant(obj["id"], obj["node"], obj["path"], obj["exp"], obj["iat"])


def check_grant(token: Any, public_key: rsa.RSAPublicKey, node_id: str,
                records: Mapping[str, Mapping[str, Any]], now: float | None = None) -> Grant:
    """The grant of ``token`` if the share ``node_id`` honours it now, else :class:`GrantError`.

    ``records`` is the share's grant list (:meth:`GrantStore.records`); ``now`` its clock.
    """
    grant = read_token(token, public_key)
    if grant.node_id != node_id:
        raise GrantError("Invalid grant: it was issued for another share")
    record = records.get(grant.grant_id)
    if not isinstance(record, Mapping) or record.get("path") != grant.path \
            or record.get("expires_unix") != grant.expires:
        raise GrantError(f"Invalid grant {grant.grant_id}: this share has no record of it")
    if record.get("revoked"):
        raise GrantError(f"Grant {grant.grant_id} was revoked")
    now = time.time() if now is None else now
    if now >= grant.expires:
        raise GrantError(f"Grant {grant.grant_id} expired at {iso_time(grant.expires)}")
    return grant


def check_scope(grant: Grant, relpath: str) -> None:
    """:class:`GrantError` 403 unless ``relpath`` (a safe share-relative path) is within the grant."""
    if not grant.covers(relpath):
        raise GrantError(f"Grant {grant.grant_id} does not cover this path", FORBIDDEN)


def iso_time(unix: float) -> str:
    return datetime.fromtimestamp(int(unix), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_DURATION_RE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str, now: float) -> int:
    """``30d``, ``12h``, ``90m``, ``2w``, ``3600s``, or a date ``2026-01-31`` (its end, UTC), or a
    time ``2026-01-31T12:00:00Z``: the Unix time it ends. ValueError with a reason otherwise."""
    text = text.strip()
    match = _DURATION_RE.match(text)
    if match:
        seconds = int(match[1]) * _UNITS[match[2]]
        if seconds <= 0:
            raise ValueError("the duration must be positive")
        return int(now) + seconds
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp() + 86400
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            moment = parsed.timestamp()
    except ValueError:
        raise ValueError(f"not a duration (30d, 12h, 90m, 2w) or a date (YYYY-MM-DD): {text!r}") from None
    if moment <= now:
        raise ValueError(f"{text} is in the past")
    return int(moment)


def token_from(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The token a request carries: the ``X-Kbucket-Token`` header, ``Authorization: Bearer``, or
    the ``token`` query parameter, in that order; None when there is none."""
    value = headers.get(HEADER)
    if value:
        return value.strip()
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return query.get(QUERY_PARAMETER) or None  # as sent: only header values lose their spaces


def split_link(url: str) -> tuple[str, str | None]:
    """``kbucket://ID/path?token=T`` -> (``kbucket://ID/path``, T); a URL without one -> (url, None).

    Only a trailing ``?token=`` is taken: a file name may itself hold ``?``."""
    match = re.search(r"[?&]token=(kbt1\.[A-Za-z0-9_.-]+)$", url)
    if not match:
        return url, None
    return url[:match.start()], match[1]


def redact(text: str) -> str:
    """``text`` with every token in it replaced by ``kbt1.…`` (for anything logged or printed)."""
    return re.sub(r"kbt1\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*)?", "kbt1.…", text)


# ---------------------------------------------------------------- the grant list in .kbucket/

class GrantStore:
    """``.kbucket/grants.json``: ``{"grants": {id: record}}``, records as kb-url prints them
    (without the token). Re-read when the file changes; written atomically under a lock."""

    def __init__(self, node_dir: Path) -> None:
        self.kbucket = Path(node_dir) / ".kbucket"
        self.path = self.kbucket / GRANTS_FILE
        self._stamp: tuple[int, int] | None = None
        self._records: dict[str, dict[str, Any]] = {}

    def records(self) -> dict[str, dict[str, Any]]:
        """The grant list now (an empty list when the file is missing or unreadable)."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp, self._records = None, {}
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._records = self._read()
            self._stamp = stamp
        return self._records

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            obj = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        grants = obj.get("grants") if isinstance(obj, dict) else None
        if not isinstance(grants, dict):
            return {}
        return {k: v for k, v in grants.items() if isinstance(v, dict) and GRANT_ID_RE.match(k)}

    @contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.kbucket.mkdir(exist_ok=True)
        with open(self.kbucket / "grants.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            records = self._read()
            yield records
            write_atomic(self.path, json.dumps({"grants": records}, indent=2, ensure_ascii=False)
                         + "\n", mode=0o600)

    def add(self, record: Mapping[str, Any]) -> None:
        with self._locked() as records:
            records[str(record["grant_id"])] = dict(record)

    def revoke(self, grant_id: str, now: float) -> dict[str, Any] | None:
        """Mark one grant revoked (at once: the share re-reads the list on its next request);
        its record, or None when there is no such grant."""
        with self._locked() as records:
            record = records.get(grant_id)
            if record is None:
                return None
            if not record.get("revoked"):
                record["revoked"] = iso_time(now)
            return dict(record)


def status_of(record: Mapping[str, Any], now: float) -> str:
    """``active``, ``expired`` or ``revoked``."""
    if record.get("revoked"):
        return "revoked"
    expires = record.get("expires_unix")
    if not isinstance(expires, int) or now >= expires:
        return "expired"
    return "active"
