"""kb-host: host a directory on the KBucket network as a share (leaf)."""
from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import sys
import time
from pathlib import Path
from typing import Any

from kbtools.cli.base import Command, quiet_server_logs
from kbtools.client import tls
from kbtools.errors import RuntimeFailure, UsageError
from kbtools.node.config import (
    PASSCODE_ENV, add_answer_options, answers_from_args, configure, parent_hub_url, prepare_node,
    resolve_listen_url, resolve_parent_hub_passcode, share_listen_port,
)

DEFAULT_BIND = "127.0.0.1"
# Seconds the connected line waits for a kbtools hub's probe of the listen_url (the hub gives up
# after 3 s); past it the line says null and a `reachability` line follows.
REACH_WAIT = 5.0


def first_line(node_id: str, hub_url: str, listen_url: str, name: str,
               parent_info: dict[str, Any] | None, reachable: bool | None = None,
               reachable_reason: str | None = None) -> dict[str, Any]:
    """The line printed once the share is connected."""
    hub = hub_url.rstrip("/")
    return {"event": "connected", "node_id": node_id, "name": name, "parent_hub_url": hub,
            "parent_hub_id": (parent_info or {}).get("node_id"),
            "parent_hub_name": (parent_info or {}).get("name"),
            "kbucket_url": f"kbucket://{node_id}/", "browse_url": f"{hub}/?node_id={node_id}",
            "listen_url": listen_url, "reachable": reachable, "reachable_reason": reachable_reason}


def reach_message(reachable: bool | None, reason: str, listen_url: str) -> str:
    if reachable:
        return f"the parent hub reached this share at its listen_url ({reason}): clients can " \
               "download directly"
    if reachable is False:
        return f"the parent hub could not reach this share's listen_url {listen_url} ({reason}): " \
               "clients download through the hub (see --bind and --listen-url)"
    return f"the parent hub could not tell whether {listen_url} is reachable ({reason})"


class KbHost(Command):
    name = "kb-host"
    description = (
        "Host DIR (default: .) on the KBucket network as a share: connect outward to the parent hub\n"
        "by websocket and stay up, so that anyone can find its files by SHA-1 and download them\n"
        "through the hub. The node id (from DIR/.kbucket/public.pem) survives restarts.\n\n"
        "Set-up: the first run asks the original KBucket questions on the terminal (never on stdin)\n"
        "and keeps the answers in DIR/.kbucket/kbnode.json; later runs ask nothing (--reconfigure\n"
        "asks again). Without a terminal (cron, systemd, make), the options below answer them:\n"
        "  kb-host DIR --hub URL --owner NAME --email EMAIL --agree\n\n"
        "stdout: one JSON line once connected (node_id, parent hub, kbucket:// URL, browse URL,\n"
        "whether the hub reached the listen_url directly),\n"
        "then one JSON line per event (reconnections, refusals, index updates), `stopped` last.\n"
        "kb-index records on stdin are used when stdin is not a terminal: `kb-index . | kb-host .`\n\n"
        "The parent hub passcode comes from --passcode-file, else $KBUCKET_HUB_PASSCODE, else\n"
        "kbnode.json; never from the command line. The share's port is the one of its listen_url,\n"
        "else the first free one in $HEMLOCK_LEAF_PORT_RANGE (default 2000-3000).\n\n"
        "An https:// hub is reached by wss:// (spec §2.1), its certificate verified against --ca-file,\n"
        "else $KBUCKET_CA_FILE, $REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE or $SSL_CERT_FILE, else the system's\n"
        "store; a certificate that does not verify stops kb-host (exit 3), never a fall-back.\n\n"
        "Exit status: 0 stopped (SIGTERM, Ctrl-C); 2 usage or configuration error (missing answers,\n"
        "a broken kbnode.json, a missing CA file); 3 runtime failure, a hub certificate that does not\n"
        "verify, or a refusal by the hub that retrying cannot heal (wrong passcode; --retry-forever\n"
        "keeps trying)."
    )
    output_format = "ndjson"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        # No abbreviations: `--passcode SECRET` must never be taken for `--passcode-file`.
        parser.allow_abbrev = False
        parser.add_argument("dir", nargs="?", default=".", help="the directory to share (default: .)")
        parser.add_argument("--auto", action="store_true",
                            help="ask nothing, even on a terminal: every answer from the options and "
                                 ".kbucket/kbnode.json")
        parser.add_argument("--reconfigure", action="store_true",
                            help="ask the questions again on the terminal")
        parser.add_argument("--bind", metavar="ADDR", default=DEFAULT_BIND,
                            help=f"interface to listen on (default {DEFAULT_BIND}; 0.0.0.0 for all)")
        parser.add_argument("--passcode-file", metavar="FILE", type=Path,
                            help="read the parent hub passcode from FILE")
        parser.add_argument("--retry-forever", action="store_true",
                            help="keep retrying even when the hub refuses for good (wrong passcode)")
        parser.add_argument("--no-fast-path", action="store_true",
                            help="never negotiate the binary tunnel with a kbtools hub")
        tls.add_ca_option(parser)
        add_answer_options(parser, "leaf")
        privacy = parser.add_mutually_exclusive_group()
        privacy.add_argument("--private", action="store_true",
                             help="serve nothing without a grant (kb-url --grant); kept in kbnode.json")
        privacy.add_argument("--public", action="store_true",
                             help="undo --private: serve everyone again")

    def run(self) -> int:
        args = self.args
        root = Path(args.dir)
        if not root.is_dir():
            raise UsageError(f"not a directory: {args.dir}")
        node = prepare_node(root, "leaf")
        for message in node.messages:
            self.say(message)
        secrets = ["parent_hub_passcode"] if args.passcode_file or os.environ.get(PASSCODE_ENV) else []
        read_first: list[str] = []  # stdin lines read before the questions
        if args.private or args.public:
            node.config["private"] = "yes" if args.private else "no"
        configure(node, answers_from_args(args, "leaf"), auto=args.auto,
                  reconfigure=args.reconfigure, secrets=secrets,
                  before_asking=None if self.input_is_terminal() else
                  lambda: self.wait_for_upstream(read_first))
        hub_url = parent_hub_url(node.config)
        if hub_url is None:
            raise UsageError("no parent hub: pass --hub URL (or set parent_hub_url in "
                             ".kbucket/kbnode.json)")
        passcode = resolve_parent_hub_passcode(node.config, passcode_file=args.passcode_file)
        tls.configure(args.ca_file)
        tls.ca_file()  # a missing CA file named in the environment: usage error (2)
        port = share_listen_port(node.config, args.bind)
        listen_url = resolve_listen_url(str(node.config.get("listen_url") or ""), port)
        events: queue.Queue[dict[str, Any]] = queue.Queue()

        from kbtools.share.host import ShareHost  # the network stack loads only when hosting

        quiet_server_logs(args.verbose)
        host = ShareHost(node, hub_url, passcode, bind=args.bind, port=port, listen_url=listen_url,
                         on_event=events.put, say=self.say, fast_path=not args.no_fast_path,
                         retry_forever=args.retry_forever)
        try:
            host.start()
        except OSError as exc:
            host.stop()
            raise RuntimeFailure(f"cannot listen on {args.bind}:{port}: {exc.strerror or exc}") from None
        self.say(f"sharing {node.node_dir} as {node.node_id}, listening on {args.bind}:{port} "
                 f"({listen_url}); connecting to parent hub {hub_url}")
        if not self.input_is_terminal():
            host.read_stdin_records(itertools.chain(read_first, self.input_file))
        try:
            self.serve(host, events, hub_url, listen_url)
        except KeyboardInterrupt:
            self.say("stopping")
        finally:
            host.stop()
            self.emit({"event": "stopped", "node_id": host.node_id})
        return 0

    def wait_for_upstream(self, lines: list[str]) -> None:
        """`kb-index . | kb-host .`: kb-index draws its progress bar on the terminal where the
        questions are asked; ask once it is done (its summary record, or the end of stdin)."""
        self.say("waiting for the command before kb-host in the pipeline to finish ...")
        for line in self.input_file:
            lines.append(line)
            try:
                if json.loads(line).get("type") == "summary":
                    return
            except (ValueError, AttributeError):
                pass

    def input_is_terminal(self) -> bool:
        try:
            return bool(self.input_file.isatty())
        except (AttributeError, ValueError):
            return False

    def serve(self, host: Any, events: "queue.Queue[dict[str, Any]]", hub_url: str,
              listen_url: str) -> None:
        connected = False
        early: list[dict[str, Any]] = []  # index and stdin events from before the first line
        waiting: list[dict[str, Any]] = []  # the connected line, while it waits for the hub's probe
        deadline = 0.0

        def connected_line() -> None:
            self.emit(waiting.pop())
            for past in early:
                self.emit(past)
            early.clear()

        while True:
            if waiting and time.monotonic() >= deadline:
                connected_line()
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                continue
            kind = event.get("event")
            if kind == "reachability":
                reachable, reason = event.get("reachable"), str(event.get("reason") or "")
                self.say(reach_message(reachable, reason, listen_url))
                if waiting:
                    waiting[0].update(reachable=reachable, reachable_reason=reason)
                    connected_line()
                elif connected:
                    self.emit(event)
                continue
            if waiting and kind not in ("index", "stdin"):
                connected_line()  # anything else is printed after the connected line
            if kind == "registered":
                parent = event.get("parent_hub") or {}
                if not connected:
                    connected = True
                    self.say(f"connected to parent hub {parent.get('name')} ({hub_url}); "
                             f"browse: {hub_url.rstrip('/')}/?node_id={host.node_id}")
                    waiting.append(first_line(host.node_id, hub_url, listen_url,
                                              str(host.node.config.get("name", "")), parent))
                    deadline = time.monotonic() + (REACH_WAIT if event.get("reachability_pending")
                                                   else 0.0)
                    if not event.get("reachability_pending"):
                        connected_line()
                else:
                    self.say(f"reconnected to parent hub {parent.get('name')}")
                    self.emit({"event": "reconnected", "parent_hub_url": hub_url.rstrip("/"),
                               "fast_path": event.get("fast_path"),
                               "connections": event.get("connections")})
                continue
            if kind == "refused":
                self.emit(event)  # before or after the first line: a script waiting for one sees it
                if event.get("retry_in") is None and str(event.get("reason")).startswith("TLS "):
                    raise RuntimeFailure(str(event.get("reason")))
                if event.get("retry_in") is None:
                    raise RuntimeFailure(
                        f"parent hub {hub_url} refused this share for good: {event.get('reason')} "
                        "(fix the passcode or the answers; --retry-forever keeps trying)")
                continue
            if kind == "index":
                self.say(f"indexed {event['files']} files ({event['added']} added, "
                         f"{event['changed']} changed, {event['removed']} removed, "
                         f"{event['errors']} errors)")
            if connected and not waiting:
                self.emit(event)
            elif kind in ("index", "stdin"):
                early.append(event)


main = KbHost.main

if __name__ == "__main__":
    sys.exit(main())
