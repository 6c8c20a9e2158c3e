"""A hosted share: its HTTP server, its index kept fresh, and its link to the parent hub.

    host = ShareHost(prepared_node, hub_url, passcode, bind="127.0.0.1", port=2000,
                     listen_url="http://127.0.0.1:2000", on_event=print, say=print)
    host.start()      # listening and indexing; the link connects in the background
    ...
    host.stop()

Events (dicts, `event` first) go to `on_event` from background threads: `registered`,
`disconnected`, `refused` (with `retry_in` None: the link gave up), `request_cancelled`,
`reachability` (the hub's probe of the listen_url), `index`, `stdin`. They are the NDJSON lines of kb-host
(schemas/kb-host-event.json).
"""
from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from kbtools.index.share_index import IndexDelta, ShareIndex
from kbtools.node.config import PreparedNode
from kbtools.protocol.envelope import Signer
from kbtools.protocol.leafconn import ParentLink, register_info
from kbtools.protocol.objecthash import object_hash
from kbtools.share.access import AccessPolicy
from kbtools.share.api import ShareApi, ShareContext, ShareServer
from kbtools.share.indexer import IndexKeeper, NodeData, read_index_records
from kbtools.share.link import HubLink

MAX_LISTED_CHANGES = 20
# What a private share tells its hub: its id and nothing else (no names, no files, no address).
PRIVATE_NODE_DATA = NodeData({"files_by_sha1": {}}, object_hash({"files_by_sha1": {}}), 0)
PRIVATE_HIDDEN_FIELDS = ("name", "description", "owner", "owner_email")


def is_private(config: dict[str, Any]) -> bool:
    """`"private": "yes"` in kbnode.json (kb-host --private)."""
    return str(config.get("private", "")).strip().lower() == "yes"


class ShareHost:
    def __init__(self, node: PreparedNode, hub_url: str, passcode: str, *, bind: str, port: int,
                 listen_url: str, on_event: Callable[[dict[str, Any]], None],
                 say: Callable[[str], None], fast_path: bool = True,
                 refresh_interval: float | None = None, max_retry: float | None = None,
                 stall_timeout: float | None = None, retry_forever: bool = False,
                 data_connections: bool = True) -> None:
        self.node = node
        self.hub_url = hub_url.rstrip("/")
        self.on_event = on_event
        self.say = say
        self.index = ShareIndex(node.node_dir)
        self.private = is_private(node.config)
        self.ctx = ShareContext(Path(node.node_dir), node.node_id, node.config,
                                node.identity.public_pem, self.index, listen_url)
        self.ctx.tunnel_key = secrets.token_hex(16)
        self.ctx.on_served = self.on_event
        if self.private:
            self.ctx.access = AccessPolicy(Path(node.node_dir), node.node_id,
                                           node.identity.public_pem)
        api = ShareApi(self.ctx)
        self.server = ShareServer(api, bind, port)
        kwargs = {"interval": refresh_interval} if refresh_interval else {}
        self.keeper = IndexKeeper(self.index, self._index_changed, **kwargs)
        registered_config = dict(node.config)
        if self.private:
            registered_config.update({k: "" for k in PRIVATE_HIDDEN_FIELDS})
        link = ParentLink(Signer(node.identity),
                          register_info(registered_config, "" if self.private else listen_url,
                                        "leaf", fast_path=fast_path,
                                        data_connections=fast_path and data_connections),
                          passcode)
        link_kwargs = {k: v for k, v in (("max_retry", max_retry), ("stall_timeout", stall_timeout))
                       if v}
        node_data = (lambda: PRIVATE_NODE_DATA) if self.private else self.keeper.node_data
        self.link = HubLink(link, self.hub_url, self.server.local_url, node_data,
                            self._link_event, say, local_file=api.download_target,
                            retry_forever=retry_forever, **link_kwargs)
        self.link.tunnel_key = self.ctx.tunnel_key
        self._link_thread = threading.Thread(target=self.link.run, name="kb-host-link", daemon=True)
        self._started = False

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def start(self) -> None:
        """Listen (OSError if the port is taken), start indexing, connect in the background."""
        self.server.start()
        self._started = True
        self.keeper.start()
        self._link_thread.start()

    def read_stdin_records(self, stream: Iterable[str]) -> None:
        """Read kb-index records from `stream` in a background thread."""
        threading.Thread(target=read_index_records, args=(stream, self.keeper, self.on_event),
                         name="kb-host-stdin", daemon=True).start()

    def stop(self) -> None:
        self.link.stop()
        if self._link_thread.is_alive():
            self._link_thread.join(15)
        if self._started:
            self.keeper.stop()
            self.server.stop()
        self.index.close()

    # -- events

    def _link_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "registered":
            self.ctx.parent_hub_info = event.get("parent_hub")
            self.ctx.metrics.bump("parent_hub_connections")
        elif event.get("event") == "disconnected":
            self.ctx.parent_hub_info = None
        elif event.get("event") == "request_cancelled":
            self.ctx.metrics.bump("num_tunnel_cancels")
        self.on_event(event)

    def _index_changed(self, delta: IndexDelta, refreshes: int) -> None:
        event: dict[str, Any] = {"event": "index", "files": delta.files, "bytes": delta.bytes,
                                 "hashed": delta.hashed, "added": len(delta.added),
                                 "changed": len(delta.changed), "removed": len(delta.removed),
                                 "errors": len(delta.errors)}
        if refreshes > 1:  # name what changed (not the whole share on the first scan)
            for key in ("added", "changed", "removed"):
                names = getattr(delta, key)[:MAX_LISTED_CHANGES]
                if names:
                    event[f"{key}_paths"] = names
        self.on_event(event)
