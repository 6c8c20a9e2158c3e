"""kb-hub: run a KBucket hub for a directory (websocket server for children, HTTP API, web page)."""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any, TextIO, cast

from kbtools.cli.base import Command
from kbtools.errors import RuntimeFailure, UsageError
from kbtools.node.config import (
    ask_questions, load_user_settings, node_questions, parent_hub_url, prepare_node,
    resolve_auto, resolve_parent_hub_passcode, save_config, save_user_settings,
)
from kbtools.protocol.hubconn import HubLimits

DEFAULT_BIND = "127.0.0.1"
MIB = 1024 * 1024


def hub_port(config: dict[str, Any]) -> int:
    """`listen_port` of kbnode.json; 0 means a free port."""
    value = str(config.get("listen_port") or "").strip()
    if not value.isdigit() or int(value) > 65535:
        raise UsageError(f"listen_port must be a port number (0 for any free port), not {value!r}")
    return int(value)


class KbHub(Command):
    name = "kb-hub"
    description = ("Run a KBucket hub for DIR: shares and child hubs connect to it by websocket; it "
                   "answers the HTTP API (nodeinfo, find, tunnelled downloads) and serves the web page.\n"
                   "stdout: one JSON line once listening, then one JSON event per line.")
    epilog = ("The parent hub passcode comes from $KBUCKET_HUB_PASSCODE, --passcode-file or "
              "kbnode.json, never from the command line.")
    output_format = "ndjson"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        # No abbreviations: `--passcode SECRET` must never be taken for `--passcode-file`.
        parser.allow_abbrev = False
        parser.add_argument("dir", nargs="?", default=".", help="the hub's directory (default: .)")
        parser.add_argument("--auto", action="store_true",
                            help="take every answer from .kbucket/kbnode.json; ask nothing")
        parser.add_argument("--bind", default=DEFAULT_BIND, metavar="ADDR",
                            help=f"interface to listen on (default {DEFAULT_BIND}; "
                                 "0.0.0.0 to accept children from other machines)")
        parser.add_argument("--passcode-file", type=Path, metavar="FILE",
                            help="read the parent hub passcode from FILE")
        parser.add_argument("--max-leaves", type=int, default=1000, metavar="N",
                            help="most shares connected at once (default 1000)")
        parser.add_argument("--max-child-hubs", type=int, default=10, metavar="N",
                            help="most child hubs connected at once (default 10)")
        parser.add_argument("--fast-window", dest="fast_window_mib", type=float, default=8.0,
                            metavar="MIB",
                            help="bytes a kbtools share may send ahead per download on the fast "
                                 "tunnel, in MiB (default 8): the hub holds at most this much per "
                                 "download; more is faster on busy machines")
        parser.add_argument("--timestamp-window", type=float, default=600.0, metavar="SECONDS",
                            help="refuse child frames whose timestamp is further than this from "
                                 "our clock (default 600; 0 accepts any, as the original)")

    def run(self) -> int:
        from kbtools.hub.server import Hub, HubSettings

        node_dir = Path(self.args.dir)
        if not node_dir.is_dir():
            raise UsageError(f"not a directory: {node_dir}")
        prepared = prepare_node(node_dir, "hub")
        for line in prepared.messages:
            self.say(line)
        config = prepared.config
        questions = node_questions("hub", prepared.node_dir, config, settings=load_user_settings())
        if self.args.auto:
            resolve_auto(questions, config)
        else:
            if not self.input_file.isatty() and self.input_file is sys.stdin:
                self.say("answering the questions from stdin (use --auto to take kbnode.json as is)")
            ask_questions(questions, config, cast(TextIO, self.input_file), cast(TextIO, self.error_file))
            save_user_settings(str(config.get("owner", "")), str(config.get("owner_email", "")))
        save_config(prepared.node_dir, config)
        if self.args.max_leaves < 0 or self.args.max_child_hubs < 0 or self.args.timestamp_window < 0:
            raise UsageError("limits must not be negative")
        if not 0.0625 <= self.args.fast_window_mib <= 1024:
            raise UsageError("--fast-window must be between 0.0625 and 1024 MiB")
        settings = HubSettings(
            node_dir=prepared.node_dir, config=config, identity=prepared.identity,
            bind=self.args.bind, port=hub_port(config),
            parent_passcode=resolve_parent_hub_passcode(config, passcode_file=self.args.passcode_file),
            limits=HubLimits(max_leaves=self.args.max_leaves, max_child_hubs=self.args.max_child_hubs,
                             freshness_window=self.args.timestamp_window or None,
                             fast_window=int(self.args.fast_window_mib * MIB)),
        )
        if not self.args.verbose:
            # A client that goes away mid-download is normal; aiohttp would log it with a traceback.
            import logging
            logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
        hub = Hub(settings, on_event=self.emit)
        return asyncio.run(self._serve(hub))

    async def _serve(self, hub: Any) -> int:
        stop = asyncio.Event()
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
        return 0


main = KbHub.main

if __name__ == "__main__":
    sys.exit(main())
