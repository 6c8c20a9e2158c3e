"""A child's node data as a hub keeps it: compact arrays instead of a dict per file.

A share's report is `{"files_by_sha1": {<sha1>: {"path": str, "size": int}}}` (spec §2.6.1). Parsed,
that is a dict, two strings and an int per file: about 9 times the frame. `NodeData` keeps each
entry of that usual shape in arrays sorted by digest: the 20-byte digest, the size, the folder (an
index into a list where each folder is kept once), and the end of the file name in one UTF-8 blob
of names (40 bytes plus the name per file). Whatever has another shape (a key that is not a lower-case hex SHA-1, an entry with other
fields or types) is kept as parsed, in a small overlay that also holds what deltas changed since
the arrays were last built; every top-level key other than `files_by_sha1` is kept as parsed.

What the hub needs stays exact:

- `lookup(sha1)`: the entry, by binary search (find);
- `apply_delta(delta)`: jsondiffpatch patch, entry by entry, never rebuilding the whole dict;
- `object_hash()`: object-hash 1.3.1 of the data, streamed from the arrays in sorted order, equal to
  `objecthash.object_hash(to_dict())`;
- `nbytes`: what it holds (arrays exactly, parsed parts estimated), for the hub's index budget.

`NodeData` is a read-only Mapping of the top-level keys (`files_by_sha1` is a read-only Mapping
view), so that code reading node data as a dict keeps working.
"""
from __future__ import annotations

import copy
import hashlib
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from kbtools.protocol.errors import RemoteProtocolError
from kbtools.protocol.jsondiff import patch
from kbtools.protocol.objecthash import (
    _LATER_PREFIX, _ROOT_PREFIX, _ser, _utf16_key, _utf16_len,
)

FILES = "files_by_sha1"
SHA1_HEX = re.compile(r"[0-9a-f]{40}\Z")
MAX_SAFE_SIZE = 2 ** 53 - 1  # sizes above this are kept as parsed (the hash must see them as sent)
HASH_CHUNK = 4096  # entries serialized at a time by object_hash
OVERLAY_MIN = 4096  # the arrays are rebuilt when the overlay grows past this and a quarter of them
ARRAY_OVERHEAD = 5 * 112 + 33  # the numpy array headers and the bytes object
_DELETED: Any = object()  # overlay value: an entry of the arrays that a delta removed
_MISSING: Any = object()
_ENTRY_PREFIX = f"object:5:{_LATER_PREFIX}string:4:path:string:"  # a compact entry's serialization


def deep_size(value: Any) -> int:
    """Bytes that a parsed JSON value takes in this process (containers and their contents)."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        for k, v in value.items():
            size += deep_size(k) + deep_size(v)
    elif isinstance(value, list):
        for v in value:
            size += deep_size(v)
    return size


def _value_text(value: Any) -> str:
    """object-hash text of a value inside an object (objecthash inlines ASCII strings and ints)."""
    if type(value) is str and value.isascii():
        return f"string:{len(value)}:{value}"
    if type(value) is int:
        return f"number:{value}"
    out: list[str] = []
    _ser(value, out, [False])
    return "".join(out)


def _compact(key: str, entry: Any) -> bool:
    """True if this entry fits the arrays: a lower-case hex SHA-1 and exactly {path: str, size: int}."""
    if type(entry) is not dict or len(entry) != 2 or not SHA1_HEX.match(key):
        return False
    path, size = entry.get("path"), entry.get("size")
    return type(path) is str and type(size) is int and 0 <= size <= MAX_SAFE_SIZE


class FilesView(Mapping[str, Any]):
    """A read-only view of `files_by_sha1` (entries are made on each access)."""

    def __init__(self, data: NodeData) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data.lookup_entry(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._data.files())

    def __len__(self) -> int:
        return self._data.file_count


class NodeData(Mapping[str, Any]):
    """One child's node data, compact (see the module text). Build it with `from_data`."""

    def __init__(self) -> None:
        self.extra: dict[str, Any] = {}  # every top-level key but an object files_by_sha1, as parsed
        self.has_files = False
        self.file_count = 0
        self._digests = np.zeros(0, dtype="S20")
        self._sizes = np.zeros(0, dtype=np.int64)
        self._dir_of = np.zeros(0, dtype=np.uint32)  # each path's folder, an index into _dirs
        self._dirs: list[str] = []  # folders ("a/b/", "" for none), each once
        self._ends = np.zeros(0, dtype=np.int64)  # end offset of each file name in _names
        self._names = b""
        self._overlay: dict[str, Any] = {}
        self._overlay_bytes = 0
        self._extra_bytes = 0

    # -- building

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> NodeData:
        nd = cls()
        for key, value in data.items():
            if key == FILES and isinstance(value, dict):
                nd._set_files(value)
            else:
                nd.extra[key] = value
        nd._extra_bytes = deep_size(nd.extra)
        return nd

    def _set_files(self, files: dict[str, Any]) -> None:
        self.has_files = True
        self._overlay.clear()
        self._overlay_bytes = 0
        compact: list[str] = []
        for key, entry in files.items():
            if _compact(key, entry):
                compact.append(key)
            else:
                self._overlay[key] = entry
                self._overlay_bytes += self._entry_cost(key, entry)
        self._build(compact, files)
        self.file_count = len(files)

    def _build(self, keys: list[str], source: Mapping[str, Any]) -> None:
        """The arrays for `keys` (compact entries of `source`), sorted by digest. A path is kept
        as its folder (an index into `_dirs`, each folder once) and its name (in `_names`)."""
        digests = np.frombuffer(bytes.fromhex("".join(keys)), dtype="S20")
        order = np.argsort(digests, kind="stable")
        self._digests = digests[order]
        names: list[str] = []
        dir_ids: dict[str, int] = {}
        sizes = np.empty(len(keys), dtype=np.int64)
        dirs = np.empty(len(keys), dtype=np.uint32)
        lengths = np.empty(len(keys), dtype=np.int64)
        for n, i in enumerate(order.tolist()):
            entry = source[keys[i]]
            path = entry["path"]
            cut = path.rfind("/") + 1
            name = path[cut:]
            names.append(name)
            dirs[n] = dir_ids.setdefault(path[:cut], len(dir_ids))
            sizes[n] = entry["size"]
            lengths[n] = len(name) if name.isascii() else len(name.encode("utf-8", "surrogatepass"))
        self._sizes = sizes
        self._dir_of = dirs
        self._dirs = list(dir_ids)
        self._ends = np.cumsum(lengths, dtype=np.int64)
        self._names = "".join(names).encode("utf-8", "surrogatepass")

    def _compact_overlay(self) -> None:
        """Fold the overlay into the arrays (entries of other shapes stay in it)."""
        live = dict(self.files())
        self._set_files(live)

    # -- reading

    def __getitem__(self, key: str) -> Any:
        if key == FILES and self.has_files:
            return FilesView(self)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.extra
        if self.has_files:
            yield FILES

    def __len__(self) -> int:
        return len(self.extra) + self.has_files

    def _index(self, sha1: str) -> int:
        """Position of `sha1` in the arrays, or -1."""
        if len(self._digests) == 0 or len(sha1) != 40 or not SHA1_HEX.match(sha1):
            return -1
        digest = bytes.fromhex(sha1)
        i = int(self._digests.searchsorted(digest))
        if i < len(self._digests) and self._digests[i:i + 1].tobytes() == digest:
            return i
        return -1

    def _entry(self, i: int) -> dict[str, Any]:
        start = int(self._ends[i - 1]) if i else 0
        name = self._names[start:int(self._ends[i])].decode("utf-8", "surrogatepass")
        return {"path": self._dirs[int(self._dir_of[i])] + name, "size": int(self._sizes[i])}

    def lookup_entry(self, sha1: str) -> Any:
        """The entry of `sha1` in files_by_sha1 (any JSON value), or `_MISSING`."""
        if not self.has_files:
            return _MISSING
        if self._overlay:
            value = self._overlay.get(sha1, _MISSING)
            if value is not _MISSING:
                return _MISSING if value is _DELETED else value
        i = self._index(sha1)
        return self._entry(i) if i >= 0 else _MISSING

    def lookup(self, sha1: str) -> tuple[str, Any] | None:
        """(path, size) of a file as find reports it; None when absent or when it has no string path."""
        entry = self.lookup_entry(sha1)
        if type(entry) is dict and isinstance(entry.get("path"), str):
            return entry["path"], entry.get("size")
        return None

    def files(self) -> Iterator[tuple[str, Any]]:
        """Every (sha1, entry) of files_by_sha1: the arrays in digest order, then the overlay."""
        overlay = self._overlay
        for start in range(0, len(self._digests), HASH_CHUNK):
            hexes = self._digests[start:start + HASH_CHUNK].tobytes().hex()
            for j in range(len(hexes) // 40):
                key = hexes[j * 40:j * 40 + 40]
                if key not in overlay:
                    yield key, self._entry(start + j)
        for key, value in overlay.items():
            if value is not _DELETED:
                yield key, value

    def to_dict(self) -> dict[str, Any]:
        """The node data as parsed JSON (costs what the compact form saves: tests, small data)."""
        out = dict(self.extra)
        if self.has_files:
            out[FILES] = dict(self.files())
        return out

    @property
    def nbytes(self) -> int:
        """Bytes held: the arrays exactly, the parsed parts (overlay, other keys) estimated."""
        arrays = (self._digests.nbytes + self._sizes.nbytes + self._ends.nbytes + self._dir_of.nbytes
                  + len(self._names) + sum(map(sys.getsizeof, self._dirs)) + sys.getsizeof(self._dirs))
        return sys.getsizeof(self) + ARRAY_OVERHEAD + arrays + self._overlay_bytes + self._extra_bytes

    @staticmethod
    def _entry_cost(key: str, entry: Any) -> int:
        return 100 + sys.getsizeof(key) + (0 if entry is _DELETED else deep_size(entry))

    # -- object_hash

    def object_hash(self) -> str:
        """object_hash(self.to_dict()), without building it."""
        h = hashlib.sha1()
        keys = list(self.extra) + ([FILES] if self.has_files else [])
        if not all(k.isascii() for k in keys):
            keys.sort(key=_utf16_key)
        else:
            keys.sort()
        h.update(f"object:{len(keys) + 3}:{_ROOT_PREFIX}".encode())
        for key in keys:
            klen = len(key) if key.isascii() else _utf16_len(key)
            h.update(f"string:{klen}:{key}:".encode("utf-8", "surrogatepass"))
            if key == FILES and self.has_files:
                self._hash_files(h)
            else:
                h.update(_value_text(self.extra[key]).encode("utf-8", "surrogatepass"))
            h.update(b",")
        return h.hexdigest()

    def _hash_files(self, h: Any) -> None:
        h.update(f"object:{self.file_count + 3}:{_LATER_PREFIX}".encode())
        overlay = self._overlay
        # Overlay entries merge into the digest order; hex keys are ASCII, so plain string order
        # agrees with JavaScript's UTF-16 order between the two, and the overlay is sorted by it.
        extra = sorted(((k, v) for k, v in overlay.items() if v is not _DELETED),
                       key=lambda kv: _utf16_key(kv[0]))
        pending = 0
        n = len(self._digests)
        for start in range(0, n, HASH_CHUNK):
            stop = min(n, start + HASH_CHUNK)
            hexes = self._digests[start:stop].tobytes().hex()
            sizes = self._sizes[start:stop].tolist()
            first = int(self._ends[start - 1]) if start else 0
            ends = self._ends[start:stop].tolist()
            dir_of = self._dir_of[start:stop].tolist()
            dirs = self._dirs
            blob = self._names[first:ends[-1]]
            parts: list[str] = []
            prev = first
            for j in range(stop - start):
                key = hexes[j * 40:j * 40 + 40]
                end = ends[j]
                while pending < len(extra) and extra[pending][0] < key:
                    k, v = extra[pending]
                    parts.append(f"{_key_text(k)}{_value_text(v)},")
                    pending += 1
                if key not in overlay:
                    path = dirs[dir_of[j]] + blob[prev - first:end - first].decode("utf-8", "surrogatepass")
                    plen = len(path) if path.isascii() else _utf16_len(path)
                    parts.append(f"string:40:{key}:{_ENTRY_PREFIX}{plen}:{path},"
                                 f"string:4:size:number:{sizes[j]},,")
                prev = end
            h.update("".join(parts).encode("utf-8", "surrogatepass"))
        for k, v in extra[pending:]:
            h.update(f"{_key_text(k)}{_value_text(v)},".encode("utf-8", "surrogatepass"))

    # -- deltas

    def apply_delta(self, delta: Any) -> None:
        """jsondiffpatch `patch` of the node data, in place. Raises RemoteProtocolError for a delta
        that does not fit, or that leaves something other than an object."""
        if not isinstance(delta, dict) or delta.get("_t") == "a":
            # The whole data replaced (or an array delta, which an object refuses): the old value
            # matters only to the refusals, which an empty object gives as well.
            result = patch({}, delta)
            if not isinstance(result, dict):
                raise RemoteProtocolError("Unexpected: node data hash does not match.")
            fresh = NodeData.from_data(result)
            self.__dict__.update(fresh.__dict__)
            return
        for key, d in delta.items():
            if key == FILES and self.has_files:
                self._patch_files(d)
                continue
            holder: dict[str, Any] = {key: self.extra[key]} if key in self.extra else {}
            self._extra_bytes -= deep_size(holder) - sys.getsizeof(holder) if holder else 0
            patch(holder, {key: d})
            self.extra.pop(key, None)
            if key in holder:
                if key == FILES and isinstance(holder[key], dict):
                    self._set_files(holder[key])
                else:
                    self.extra[key] = holder[key]
                    self._extra_bytes += deep_size(holder) - sys.getsizeof(holder)

    def _patch_files(self, d: Any) -> None:
        if not isinstance(d, dict) or d.get("_t") == "a":
            holder = patch({FILES: {}}, {FILES: d})  # replaced whole, deleted, or refused
            self._drop_files()
            if FILES in holder:
                if isinstance(holder[FILES], dict):
                    self._set_files(holder[FILES])
                else:
                    self.extra[FILES] = holder[FILES]
                    self._extra_bytes += deep_size({FILES: holder[FILES]})
            return
        current: dict[str, Any] = {}
        for sha1 in d:
            value = self.lookup_entry(sha1)
            if value is not _MISSING:  # a copy: the overlay's cost is counted as it was
                current[sha1] = copy.deepcopy(value) if sha1 in self._overlay else value
        present = set(current)
        patch(current, d)
        for sha1 in d:
            if sha1 in current:
                self._put(sha1, current[sha1], sha1 in present)
            elif sha1 in present:
                self._remove(sha1)
        if len(self._overlay) > max(OVERLAY_MIN, len(self._digests) // 4):
            self._compact_overlay()

    def _drop_files(self) -> None:
        self.has_files = False
        self.file_count = 0
        self._build([], {})
        self._overlay.clear()
        self._overlay_bytes = 0

    def _put(self, sha1: str, value: Any, existed: bool) -> None:
        old = self._overlay.get(sha1, _MISSING)
        if old is not _MISSING:
            self._overlay_bytes -= self._entry_cost(sha1, old)
        self._overlay[sha1] = value
        self._overlay_bytes += self._entry_cost(sha1, value)
        if not existed:
            self.file_count += 1

    def _remove(self, sha1: str) -> None:
        old = self._overlay.pop(sha1, _MISSING)
        if old is not _MISSING:
            self._overlay_bytes -= self._entry_cost(sha1, old)
        if self._index(sha1) >= 0:
            self._overlay[sha1] = _DELETED
            self._overlay_bytes += self._entry_cost(sha1, _DELETED)
        self.file_count -= 1


def _key_text(key: str) -> str:
    klen = len(key) if key.isascii() else _utf16_len(key)
    return f"string:{klen}:{key}:"
