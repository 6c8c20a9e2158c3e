"""kb-url: the ``kbucket://`` URL (and optionally the ``sha1://`` pin) of a local path."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from kbtools.cli.base import Command, failure
from kbtools.cli.grant_cmds import add_grant_options, add_token_option, grant_mode, run_grant_mode
from kbtools.errors import EXIT_FINDINGS, EXIT_OK, KbError, UsageError
from kbtools.index.hashing import FileChanging
from kbtools.index.paths import NODE_DIR_NAME, UnsafePath, resolve_in_share, safe_relpath
from kbtools.index.share_index import file_record
from kbtools.node.config import CONFIG_NAME, read_node_id

URL_SCHEMES = ("kbucket://", "sha1://", "http://", "https://")


class RecordError(Exception):
    """One input failed: an error name and a message for its record."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def find_hosted_root(path: Path) -> Path | None:
    """The nearest directory at or above ``path`` holding ``.kbucket/kbnode.json``."""
    candidate = path if path.is_dir() else path.parent
    while True:
        if (candidate / NODE_DIR_NAME / CONFIG_NAME).is_file():
            return candidate
        if candidate.parent == candidate:
            return None
        candidate = candidate.parent


def local_url_record(text: str, *, with_sha1: bool = False) -> dict[str, Any]:
    """``{"path", "url"}`` (plus ``sha1`` and ``sha1_url``), then ``status``, for a local path;
    raises RecordError."""
    if text.startswith(URL_SCHEMES):
        raise RecordError("url-not-supported",
                          "resolving URLs is not available yet: give a local path")
    path = Path(text)
    if not os.path.lexists(path):
        raise RecordError("no-such-path", f"no such file or directory: {text}")
    absolute = Path(os.path.abspath(path))  # not resolved: a symlinked share keeps its name
    root = find_hosted_root(absolute)
    if root is None:
        raise RecordError("not-hosted",
                          f"not inside a hosted directory (no {NODE_DIR_NAME}/{CONFIG_NAME} above it)")
    try:
        node_id = read_node_id(root)
    except KbError as exc:
        raise RecordError("no-node-id", str(exc)) from None
    if not node_id:
        raise RecordError("no-node-id", f"{root / NODE_DIR_NAME / CONFIG_NAME} has no node id yet "
                                        "(host the directory once with kb-host)")
    relpath = "/".join(absolute.relative_to(root).parts)
    try:
        safe_relpath(relpath, allow_root=True)
        target = resolve_in_share(root, relpath, allow_root=True)
    except UnsafePath as exc:
        raise RecordError("not-shared", f"not shared by {root}: {exc}") from None
    record: dict[str, Any] = {"path": text, "url": f"kbucket://{node_id}/{relpath}"}
    if with_sha1:
        if not target.is_file():
            raise RecordError("not-a-file", "--sha1 applies to files only")
        try:
            rec = file_record(root, relpath)
        except FileChanging as exc:
            raise RecordError("file-changing", str(exc)) from None
        except OSError as exc:
            raise RecordError("unreadable", f"cannot read: {exc.strerror}") from None
        record["sha1"] = rec.sha1
        record["sha1_url"] = f"sha1://{rec.sha1}/{relpath.rsplit('/', 1)[-1]}"
    record["status"] = "ok"
    return record


def remote_url_record(text: str, hub: str | None) -> tuple[dict[str, Any], int]:
    """A URL resolved by the hub: ``{url, type, sha1, size, download_urls}`` for a file,
    ``{url, type, entries}`` for a directory (each with ``status`` ``ok``), or
    ``{url, status: error, code, message}``; with its exit code."""
    from kbtools.client import BadUrl, NotFound, PeerError, resolve  # requests: only for URLs
    from kbtools.client.errors import failure_code

    if hub is None and not text.startswith(("http://", "https://")):
        return {"url": text, **failure("no-hub", "no hub to ask: pass --hub URL or set KBUCKET_URL")}, \
            EXIT_FINDINGS
    try:
        return {**resolve(text, hub).record(), "status": "ok"}, EXIT_OK
    except (BadUrl, NotFound, PeerError) as exc:
        return {"url": text, **failure(failure_code(exc), str(exc))}, exc.exit_code


class KbUrl(Command):
    name = "kb-url"
    description = (
        "Print the kbucket://NODEID/<path> URL of local files or directories inside a hosted\n"
        "directory (the nearest one above them holding .kbucket/kbnode.json with a node id).\n"
        "One JSON record per path, with status ok; a path that fails gets\n"
        "{path, status: error, code, message}.\n"
        "A kbucket://, sha1:// or http(s):// URL is resolved by the hub (--hub, else $KBUCKET_URL):\n"
        "{url, type, sha1, size, download_urls, content_url} for a file, {url, type, entries} for a\n"
        "directory. content_url is the hub's cacheable https://HUB/sha1/SHA1/name URL of the file.\n\n"
        "Exit status: 0 ok; 1 some path failed; 2 usage; 3 hub unreachable or misbehaving, or its\n"
        "TLS certificate not trusted."
    )
    epilog = ("environment:\n"
              "  KBUCKET_URL        the hub to ask when --hub is not given\n"
              "  KBUCKET_CA_FILE    CA certificates to trust for https:// (as --ca-file); else\n"
              "                     $REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE, $SSL_CERT_FILE, else the system's store")
    output_format = "ndjson"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("paths", nargs="*", metavar="PATH", help="local paths; - reads them from stdin")
        parser.add_argument("--sha1", action="store_true",
                            help="add the content SHA-1 and a sha1://<sha1>/<name> URL (files only)")
        parser.add_argument("--hub", metavar="URL",
                            help="hub that resolves URLs, http(s)://HOST[:PORT] (default: $KBUCKET_URL)")
        parser.add_argument("--ca-file", metavar="FILE",
                            help="PEM file of the CA certificates to trust for https:// (default: "
                                 "$KBUCKET_CA_FILE, ..., else the system's store)")
        add_grant_options(parser)
        add_token_option(parser)

    def run(self) -> int:
        if grant_mode(self.args):
            return run_grant_mode(self)
        if not self.args.paths:
            raise UsageError("the following arguments are required: PATH")
        failed = 0
        remote_code = EXIT_OK
        for text in self.iter_inputs(self.args.paths):
            if text.startswith(URL_SCHEMES):
                from kbtools.client.grants import remember_configured, take_link

                remember_configured(self.args.token_file)
                text = take_link(text)  # a link's ?token= is sent as a header, never printed
                from kbtools.client import tls  # requests: only for URLs
                from kbtools.client.urls import configured_hub

                tls.configure(self.args.ca_file)
                tls.ca_file()  # a missing CA file named in the environment: usage error (2)

                # --hub / $KBUCKET_URL is read (and checked: a bad one is a usage error) only for
                # the URLs that need a hub; an http(s) URL names its own host.
                needs_hub = not text.startswith(("http://", "https://"))
                record, code = remote_url_record(text, configured_hub(self.args.hub) if needs_hub else None)
                remote_code = max(remote_code, code)
                self.emit(record)
                continue
            try:
                self.emit(local_url_record(text, with_sha1=self.args.sha1))
            except RecordError as exc:
                failed += 1
                self.emit({"path": text, **failure(exc.code, str(exc))})
        return max(remote_code, EXIT_FINDINGS if failed else EXIT_OK)


main = KbUrl.main
