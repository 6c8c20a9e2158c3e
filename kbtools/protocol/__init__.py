"""Sans-I/O core of the KBucket protocol (docs/spec/kbucket-protocol.md): no sockets, threads or asyncio.

Callers feed received frame texts in and send the frames the core returns. Modules:
canonical (JS-identical JSON, RSA sign/verify), envelope (signed child frames), objecthash,
jsondiff (jsondiffpatch patch/diff), messages (wire message dataclasses), hubconn (hub side of one
child link), leafconn (child side of the link to the parent), routing (tunnel requests, find,
nodeinfo), fastpath (binary tunnel between two kbtools peers).
"""
