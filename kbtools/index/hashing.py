"""Content digests of a file in one read pass: SHA-1, the ``head1000`` SHA-1 and optional extras.

``hashlib`` releases the GIL on large buffers, so threads use both cores: a pool hashes several
files at once, and on one big file with extra digests a helper thread computes the extras while
the calling thread computes SHA-1 and reads the next block.
"""
from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

#: Digests that ``--digest`` may ask for, besides the SHA-1 that is always computed.
EXTRA_DIGESTS = ("sha256", "md5")
#: The ``.prv`` ``original_fcs`` is the SHA-1 of this many first bytes (spec §5.2).
HEAD_SIZE = 1000
FCS_PREFIX = "head1000-"
BLOCK_SIZE = 1 << 20
#: Block size when a helper thread computes the extra digests of a big file.
PARALLEL_BLOCK_SIZE = 8 << 20
#: Below this size a helper thread costs more than it saves.
PARALLEL_MIN_SIZE = 16 << 20


class FileChanging(Exception):
    """The file changed while it was read: its digests describe no real content."""


class Cancelled(Exception):
    """Hashing was stopped by the caller."""


@dataclass
class Digests:
    size: int
    sha1: str
    #: SHA-1 hex of the first 1000 bytes (without the ``head1000-`` prefix).
    head_sha1: str
    extra: dict[str, str] = field(default_factory=dict)


def check_digest_names(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Deduplicate and validate ``--digest`` names (ValueError on an unknown one)."""
    out: list[str] = []
    for name in names:
        if name not in EXTRA_DIGESTS:
            raise ValueError(f"unknown digest {name!r} (known: {', '.join(EXTRA_DIGESTS)})")
        if name not in out:
            out.append(name)
    return tuple(out)


_local = threading.local()


def _thread_buffers() -> list[memoryview]:
    """A read buffer per thread, made once: zeroing a fresh 1 MiB per small file would cost
    more than hashing it."""
    views = getattr(_local, "views", None)
    if views is None:
        views = _local.views = [memoryview(bytearray(BLOCK_SIZE))]
    return views


def hash_fd(fd: int, extra: tuple[str, ...] = (), *, limit: int | None = None,
            cancel: threading.Event | None = None,
            on_block: Callable[[int], None] | None = None) -> Digests:
    """Hash what is readable from ``fd`` (from its current offset, at most ``limit`` bytes)
    in one pass.

    ``limit`` keeps a file that grows while it is read from being chased forever.
    ``on_block(nbytes)`` is called after each block read (for progress).
    """
    sha1 = hashlib.sha1()
    extras = {name: hashlib.new(name) for name in extra}
    parallel = bool(extras) and (limit or 0) >= PARALLEL_MIN_SIZE
    if parallel:
        # Big blocks and a ring of three: fewer hand-overs to the helper thread, which matters
        # when the machine is busy and each wake-up of a thread waits for a core.
        views = [memoryview(bytearray(PARALLEL_BLOCK_SIZE)) for _ in range(3)]
        helper: ThreadPoolExecutor | None = ThreadPoolExecutor(1, thread_name_prefix="kb-hash-extra")
    else:
        views = _thread_buffers()
        helper = None
    block = len(views[0])
    in_flight: list[Future[None] | None] = [None] * len(views)
    head = bytearray()
    total = 0
    which = 0

    def update_extras(chunk: memoryview) -> None:
        for h in extras.values():
            h.update(chunk)

    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            pending = in_flight[which]
            if pending is not None:  # the helper may still be reading this buffer
                pending.result()
                in_flight[which] = None
            want = block if limit is None else min(block, limit - total)
            n = os.readv(fd, [views[which][:want]]) if want > 0 else 0
            if n == 0:
                break
            chunk = views[which][:n]
            total += n
            if len(head) < HEAD_SIZE:
                head += chunk[: HEAD_SIZE - len(head)]
            if helper is not None:
                in_flight[which] = helper.submit(update_extras, chunk)
            else:
                update_extras(chunk)
            sha1.update(chunk)
            which = (which + 1) % len(views)
            if on_block is not None:
                on_block(n)
        for pending in in_flight:
            if pending is not None:
                pending.result()
    finally:
        if helper is not None:
            helper.shutdown(wait=True, cancel_futures=True)
    return Digests(total, sha1.hexdigest(), hashlib.sha1(head).hexdigest(),
                   {name: h.hexdigest() for name, h in extras.items()})


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def hash_file(path: str | os.PathLike[str], extra: tuple[str, ...] = (), *,
              cancel: threading.Event | None = None,
              on_block: Callable[[int], None] | None = None) -> tuple[Digests, os.stat_result]:
    """Hash a file and return its digests with the stat they belong to.

    The file is stat-ed before and after the read (through the open descriptor and through the
    path); any difference in size, mtime, ctime or inode raises :class:`FileChanging`, so a digest
    is never returned for content that was not there.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        before = os.fstat(fd)
        digests = hash_fd(fd, extra, limit=before.st_size, cancel=cancel, on_block=on_block)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        now = os.stat(path)
    except FileNotFoundError:
        raise FileChanging("file removed while it was read") from None
    key = _stat_key(before)
    if _stat_key(after) != key or _stat_key(now)[:3] != key[:3] or digests.size != before.st_size:
        raise FileChanging("file changed while it was read")
    return digests, before
