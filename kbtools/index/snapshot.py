"""A snapshot of a share's digests in one file: ``DIR/.kbucket/index-snapshot.bin``.

The SQLite cache (:mod:`kbtools.index.cache`) stays the record kept while hashing; loading its
100,000 rows costs more than the stat walk itself, so a completed scan also writes every record
into one ``marshal`` blob, grouped by directory, which loads in a few milliseconds. A directory
whose files all still have the size, mtime (ns) and inode of the snapshot, whose names are the
same and which holds nothing else, is then taken whole (no per-file Python work), with text a
caller rendered for it last time (``kb-index`` keeps its output lines there).

Safety: the file is written under a temporary name and renamed, and carries its length and
CRC-32; a torn, damaged or foreign file is ignored (the SQLite rows are used instead). Every
record is still checked against the file's stat and the racily-clean rule before it is used, as
a SQLite row is; a file whose stat does not match falls back to the SQLite row, else is hashed.
"""
from __future__ import annotations

import marshal
import os
import zlib
from pathlib import Path
from typing import Any

from kbtools.atomic import atomic_path
from kbtools.index.paths import NODE_DIR_NAME

SNAPSHOT_FILE_NAME = "index-snapshot.bin"
MAGIC = b"kbtools index snapshot 2\n"
#: After the magic: payload length (8 bytes) and CRC-32 (4 bytes), big-endian.
HEADER_SIZE = len(MAGIC) + 12

# One directory of the snapshot: a list indexed by these (marshal keeps lists and tuples as is).
NAMES = 0        #: file names in walk (sorted) order
KEYS = 1         #: (size, mtime_ns, ino) of each file
#: True when no record of the directory is racily clean: it may be taken whole.
WHOLE = 2
#: Extra digests every record of the directory has.
HAVE = 3
#: ``{renderer key: text}`` rendered by a caller for the whole directory.
TEXTS = 4
#: ``marshal`` bytes of the digest columns below, decoded only when the records are needed.
COLUMNS = 5
SHA1, HEAD_SHA1, SHA256, MD5, HASHED_AT = range(5)

Snapshot = dict[str, list[Any]]


def snapshot_path(root: Path | str) -> Path:
    return Path(root) / NODE_DIR_NAME / SNAPSHOT_FILE_NAME


def read_snapshot(root: Path | str) -> Snapshot | None:
    """The snapshot ``{directory relpath ("" for the root): entry}``, or None when there is none
    or it is not intact."""
    try:
        with open(snapshot_path(root), "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
        return None
    length = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "big")
    crc = int.from_bytes(data[len(MAGIC) + 8:HEADER_SIZE], "big")
    payload = memoryview(data)[HEADER_SIZE:]
    if len(payload) != length or zlib.crc32(payload) != crc:
        return None
    try:
        snapshot = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return snapshot if isinstance(snapshot, dict) else None


def write_snapshot(root: Path | str, snapshot: Snapshot) -> None:
    """Replace the snapshot atomically (OSError when it cannot be written)."""
    path = snapshot_path(root)
    payload = marshal.dumps(snapshot)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(MAGIC + len(payload).to_bytes(8, "big")
                 + zlib.crc32(payload).to_bytes(4, "big"))
        fh.write(payload)


def remove_snapshot(root: Path | str) -> None:
    try:
        os.unlink(snapshot_path(root))
    except FileNotFoundError:
        pass
