"""kb-url's grant commands, run on the share owner's machine (they read `.kbucket/private.pem`).

    kb-url --grant PATH [--expires 30d] [--label TEXT]   a read-only link to PATH and below
    kb-url --grants [DIR]                                 the grants of the share, one line each
    kb-url --revoke ID [DIR]                              end one grant at once

Records: schemas/kb-grant.json. The token is printed once, by --grant, and never stored.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kbtools.cli.base import failure
from kbtools.errors import EXIT_FINDINGS, EXIT_OK, RuntimeFailure, UsageError
from kbtools.index.paths import UnsafePath, resolve_in_share, safe_relpath
from kbtools.node.config import load_config, read_node_id
from kbtools.node.grants import (
    GRANT_ID_RE, TOKEN_ENV, GrantStore, iso_time, new_grant_id, parse_expiry, sign_grant, status_of,
)

DEFAULT_EXPIRY = "30d"


def add_grant_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("grants of a private share (kb-host --private), on the owner's machine")
    group.add_argument("--grant", action="store_true",
                       help="print a read-only link to PATH and below (one PATH), with its token")
    group.add_argument("--expires", metavar="WHEN", default=None,
                       help=f"with --grant: a duration (30d, 12h, 90m, 2w) or a date YYYY-MM-DD "
                            f"(default {DEFAULT_EXPIRY})")
    group.add_argument("--label", metavar="TEXT", default="",
                       help="with --grant: who it is for (shown in the share's served events)")
    group.add_argument("--grants", action="store_true",
                       help="list the grants of the share holding PATH (default .)")
    group.add_argument("--revoke", metavar="ID",
                       help="revoke grant ID of the share holding PATH (default .) at once")


def add_token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", metavar="FILE",
                        help=f"read a grant token (or a link holding one) from FILE, for a private "
                             f"share (default: ${TOKEN_ENV}); a link's own ?token= works too")


def grant_mode(args: argparse.Namespace) -> bool:
    if args.expires is not None and not args.grant:
        raise UsageError("--expires goes with --grant")
    chosen = [flag for flag, on in (("--grant", args.grant), ("--grants", args.grants),
                                    ("--revoke", args.revoke is not None)) if on]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} cannot go together")
    return bool(chosen)


def _share_of(text: str) -> tuple[Path, str, str]:
    """(hosted root, node id, share-relative path) of a local path; UsageError when not hosted."""
    from kbtools.cli.kb_url import find_hosted_root

    path = Path(text)
    if not os.path.lexists(path):
        raise UsageError(f"no such file or directory: {text}")
    absolute = Path(os.path.abspath(path))
    root = find_hosted_root(absolute)
    if root is None:
        raise UsageError(f"{text} is not inside a hosted directory (no .kbucket/kbnode.json above "
                         "it): grants are made on the share owner's machine")
    node_id = read_node_id(root)
    if not node_id or not (root / ".kbucket" / "private.pem").is_file():
        raise UsageError(f"{root} has no node id or key yet (host it once with kb-host)")
    relpath = "/".join(absolute.relative_to(root).parts)
    try:
        safe_relpath(relpath, allow_root=True)
        resolve_in_share(root, relpath, allow_root=True)
    except UnsafePath as exc:
        raise UsageError(f"not shared by {root}: {exc}") from None
    return root, node_id, relpath


def run_grant_mode(command: Any) -> int:
    args = command.args
    paths = list(command.iter_inputs(args.paths)) or ["."]
    if args.grant:
        if len(paths) != 1:
            raise UsageError("--grant takes one PATH")
        command.emit(make_grant(paths[0], args.expires or DEFAULT_EXPIRY, args.label))
        return EXIT_OK
    if len(paths) != 1:
        raise UsageError("--grants and --revoke take one share directory")
    root, node_id, _ = _share_of(paths[0])
    store = GrantStore(root)
    now = time.time()
    if args.grants:
        for record in sorted(store.records().values(), key=lambda r: str(r.get("created", ""))):
            command.emit(listed(record, now))
        return EXIT_OK
    if not GRANT_ID_RE.match(args.revoke):
        raise UsageError(f"--revoke: not a grant id (16 hex digits): {args.revoke[:40]!r}")
    try:
        revoked = store.revoke(args.revoke, now)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {store.path}: {exc.strerror}") from None
    if revoked is None:
        command.emit({"grant_id": args.revoke,
                      **failure("no-such-grant", f"share {node_id} has no grant {args.revoke}")})
        return EXIT_FINDINGS
    command.emit(listed(revoked, now))
    return EXIT_OK


def listed(record: dict[str, Any], now: float) -> dict[str, Any]:
    return {**record, "state": status_of(record, now), "status": "ok"}


def make_grant(text: str, expires_text: str, label: str, now: float | None = None) -> dict[str, Any]:
    """Sign a grant for the local path ``text`` and add it to the share's list; its record with
    the token and the links."""
    from kbtools.node.identity import load_identity

    root, node_id, relpath = _share_of(text)
    now = time.time() if now is None else now
    try:
        expires = parse_expiry(expires_text, now)
    except ValueError as exc:
        raise UsageError(f"--expires: {exc}") from None
    if len(label) > 200 or any(ord(c) < 32 for c in label):
        raise UsageError("--label: at most 200 characters, no control characters")
    identity = load_identity(root)
    grant_id = new_grant_id()
    token = sign_grant(identity.private_key(), node_id, relpath, expires, grant_id, int(now))
    record: dict[str, Any] = {"grant_id": grant_id, "node_id": node_id, "path": relpath,
                              "label": label, "created": iso_time(now), "expires": iso_time(expires),
                              "expires_unix": expires, "revoked": None}
    try:
        GrantStore(root).add(record)
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {root}/.kbucket/grants.json: {exc.strerror}") from None
    url = f"kbucket://{node_id}/{relpath}"
    out = {**record, "state": "active", "status": "ok", "kbucket_url": f"{url}?token={token}",
           "token": token}
    hub = str(load_config(root).get("parent_hub_url") or "").rstrip("/")
    if hub:
        page = f"{hub}/?node_id={node_id}" + (f"&path={quote(relpath, safe='/')}" if relpath else "")
        out["browse_url"] = f"{page}#token={token}"
    return out
