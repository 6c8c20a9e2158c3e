"""The hub (aiohttp): websocket server for children, HTTP API, tunnels, find, the web page.

`server.Hub` runs one hub; `tunnel` moves tunnelled requests over a child link; `parent` is a
hub's own link to its parent hub. The protocol decisions all come from `kbtools.protocol`.
"""
from kbtools.hub.server import Hub, HubSettings

__all__ = ["Hub", "HubSettings"]
