"""kb-hub: run a KBucket hub for a directory (websocket server for children, HTTP API, web page)."""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from kbtools.cli.base import Command, quiet_server_logs
from kbtools.errors import RuntimeFailure, UsageError
from kbtools.node.config import (
    CHILD_PASSCODE_ENV, PASSCODE_ENV, add_answer_options, answers_from_args, configure,
    hub_listen_port, parent_hub_url, prepare_node, resolve_parent_hub_passcode,
)
from kbtools.protocol.hubconn import HubLimits

DEFAULT_BIND = "127.0.0.1"
MIB = 1024 * 1024


class KbHub(Command):
    name = "kb-hub"
    description = (
        "Run a KBucket hub for DIR (created if missing): shares and child hubs connect to it by\n"
        "websocket; it answers the HTTP API (nodeinfo, find, tunnelled downloads) and serves the web\n"
        "page. stdout: one JSON line once listening, then one JSON event per line, `stopped` last.\n\n"
        "Set-up: the first run asks the original KBucket questions on the terminal and keeps the\n"
        "answers in DIR/.kbucket/kbnode.json; later runs ask nothing (--reconfigure asks again).\n"
        "Without a terminal the options below answer them: kb-hub DIR --owner NAME --email EMAIL --agree")
    epilog = (f"Secrets never come from the command line: this hub's own passcode (the one children "
              f"present) from ${CHILD_PASSCODE_ENV} or kbnode.json; the parent hub's from "
              f"${PASSCODE_ENV}, --passcode-file or kbnode.json. Exit status: 0 stopped; 2 usage or "
              f"configuration error; 3 runtime failure, or a parent hub that refuses this hub for good "
              f"(wrong passcode; --retry-forever keeps trying).")
    output_format = "ndjson"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        # No abbreviations: `--passcode SECRET` must never be taken for `--passcode-file`.
        parser.allow_abbrev = False
        parser.add_argument("dir", nargs="?", default=".", help="the hub's directory (default: .)")
        parser.add_argument("--auto", action="store_true",
                            help="ask nothing, even on a terminal: every answer from the options and "
                                 ".kbucket/kbnode.json")
        parser.add_argument("--reconfigure", action="store_true",
                            help="ask the questions again on the terminal")
        parser.add_argument("--bind", default=DEFAULT_BIND, metavar="ADDR",
                            help=f"interface to listen on (default {DEFAULT_BIND}; "
                                 "0.0.0.0 to accept children from other machines)")
        parser.add_argument("--passcode-file", type=Path, metavar="FILE",
                            help="read the parent hub passcode from FILE")
        parser.add_argument("--retry-forever", action="store_true",
                            help="keep retrying even when the parent hub refuses for good")
        parser.add_argument("--max-leaves", type=int, default=1000, metavar="N",
                            help="most shares connected at once (default 1000)")
        parser.add_argument("--max-child-hubs", type=int, default=10, metavar="N",
                            help="most child hubs connected at once (default 10)")
        parser.add_argument("--fast-window", dest="fast_window_mib", type=float, default=8.0,
                            metavar="MIB",
                            help="bytes a kbtools share may send ahead per download on the fast "
                                 "tunnel, in MiB (default 8): the hub holds at most this much per "
                                 "download; more is faster on busy machines")
        parser.add_argument("--no-data-connections", action="store_true",
                            help="keep every download body on the share's websocket (by default a "
                                 "kbtools share sends a large body on a connection of its own to "
                                 "this hub's URL, relayed with fewer copies)")
        parser.add_argument("--max-index-mib", type=float, default=512.0, metavar="MIB",
                            help="most memory the children's file indexes may take together, in "
                                 "MiB (default 512, about 8 million files); a report past it is "
                                 "refused")
        parser.add_argument("--timestamp-window", type=float, default=600.0, metavar="SECONDS",
                            help="refuse child frames whose timestamp is further than this from "
                                 "our clock (default 600; 0 accepts any, as the original)")
        parser.add_argument("--tls-cert", metavar="FILE",
                            help="serve HTTPS and WSS with this PEM certificate (chain) ...")
        parser.add_argument("--tls-key", metavar="FILE", help="... and this PEM private key")
        parser.add_argument("--public-url", metavar="URL",
                            help="the URL clients use, e.g. https://hub.example.org behind a reverse "
                                 "proxy: every URL the hub hands out starts with it (default: the "
                                 "listen_url of kbnode.json)")
        parser.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                            help="a reverse proxy in front of the hub (e.g. 127.0.0.1): its "
                                 "X-Real-IP / X-Forwarded-For header names the client (repeatable)")
        add_answer_options(parser, "hub")

    def run(self) -> int:
        from kbtools.hub.server import Hub, HubSettings

        node_dir = Path(self.args.dir)
        if node_dir.exists() and not node_dir.is_dir():
            raise UsageError(f"not a directory: {node_dir}")
        try:
            node_dir.mkdir(parents=True, exist_ok=True)  # as `git init DIR` does
        except OSError as e:
            raise RuntimeFailure(f"cannot create {node_dir}: {e.strerror or e}") from None
        prepared = prepare_node(node_dir, "hub")
        for line in prepared.messages:
            self.say(line)
        own_passcode = os.environ.get(CHILD_PASSCODE_ENV)
        secrets = [name for name, given in (
            ("passcode", own_passcode),
            ("parent_hub_passcode", self.args.passcode_file or os.environ.get(PASSCODE_ENV))) if given]
        configure(prepared, answers_from_args(self.args, "hub"), auto=self.args.auto,
                  reconfigure=self.args.reconfigure, secrets=secrets)
        config = dict(prepared.config)
        if own_passcode:
            config["passcode"] = own_passcode  # used, never written into kbnode.json
        if self.args.max_leaves < 0 or self.args.max_child_hubs < 0 or self.args.timestamp_window < 0:
            raise UsageError("limits must not be negative")
        if not 0.0625 <= self.args.fast_window_mib <= 1024:
            raise UsageError("--fast-window must be between 0.0625 and 1024 MiB")
        if not self.args.max_index_mib > 0:
            raise UsageError("--max-index-mib must be more than 0")
        from kbtools.hub.tls import public_url_setting, server_ssl_context, trusted_proxies

        ssl_context = server_ssl_context(self.args.tls_cert, self.args.tls_key)
        public_url = public_url_setting(self.args.public_url)
        settings = HubSettings(
            node_dir=prepared.node_dir, config=config, identity=prepared.identity,
            bind=self.args.bind, port=hub_listen_port(config),
            parent_passcode=resolve_parent_hub_passcode(config, passcode_file=self.args.passcode_file),
            limits=HubLimits(max_leaves=self.args.max_leaves, max_child_hubs=self.args.max_child_hubs,
                             freshness_window=self.args.timestamp_window or None,
                             fast_window=int(self.args.fast_window_mib * MIB),
                             allow_data_connections=not self.args.no_data_connections,
                             max_index_bytes=int(self.args.max_index_mib * MIB)),
            retry_forever=self.args.retry_forever,
            ssl_context=ssl_context, public_url=public_url,
            trusted_proxies=trusted_proxies(self.args.trusted_proxy),
        )
        quiet_server_logs(self.args.verbose)
        self._refusal: str | None = None
        self._stop: asyncio.Event | None = None
        hub = Hub(settings, on_event=self._event)
        return asyncio.run(self._serve(hub))

    def _event(self, event: dict[str, Any]) -> None:
        self.emit(event)
        if event["event"] == "parent_refused" and event.get("retry_in") is None:
            self._refusal = str(event.get("reason"))  # the parent link gave up: so does the hub
            if self._stop is not None:
                self._stop.set()

    async def _serve(self, hub: Any) -> int:
        stop = self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (in-process tests): stop by cancelling
        try:
            await hub.start()
        except OSError as e:
            raise RuntimeFailure(f"cannot listen on {self.args.bind}:{hub.settings.port}: "
                                 f"{e.strerror or e}") from None
        parent = parent_hub_url(hub.config)
        self.emit({"event": "listening", "node_id": hub.node_id, "name": hub.config.get("name"),
                   "url": hub.url, "listen_url": hub.listen_url,
                   "browse_url": f"{hub.listen_url}/?node_id={hub.node_id}",
                   "parent_hub_url": parent})
        self.say(f"hub {hub.config.get('name')} ({hub.node_id}) listening on {hub.url}; "
                 f"web page: {hub.listen_url}/")
        if self.args.bind == "127.0.0.1":
            self.say("listening on 127.0.0.1 only; use --bind 0.0.0.0 to accept other machines")
        try:
            await stop.wait()
        finally:
            await hub.stop()
            self.emit({"event": "stopped", "node_id": hub.node_id})
            self.say("stopped")
        if self._refusal is not None:
            raise RuntimeFailure(f"parent hub {parent} refused this hub for good: {self._refusal} "
                                 "(fix the passcode or the answers; --retry-forever keeps trying)")
        return 0


main = KbHub.main

if __name__ == "__main__":
    sys.exit(main())
