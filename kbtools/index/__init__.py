"""Indexing a share: the walk, one-pass hashing, the digest cache and ``.prv`` records.

The share (``kb-host``) uses :class:`ShareIndex`; path checks for anything served come from
:mod:`kbtools.index.paths`.
"""
from kbtools.index.cache import FileRecord, IndexCache
from kbtools.index.hashing import EXTRA_DIGESTS, FCS_PREFIX, FileChanging, hash_file
from kbtools.index.paths import (UnsafePath, is_hidden_or_reserved, resolve_in_share,
                                 safe_relpath)
from kbtools.index.prv import PRV_VERSION, make_prv, make_prvdir
from kbtools.index.share_index import FileOutcome, IndexDelta, ShareIndex, file_record
from kbtools.index.walk import WalkEntry, walk_share

__all__ = [
    "EXTRA_DIGESTS", "FCS_PREFIX", "PRV_VERSION", "FileChanging", "FileOutcome", "FileRecord",
    "IndexCache", "IndexDelta", "ShareIndex", "UnsafePath", "WalkEntry", "file_record",
    "hash_file", "is_hidden_or_reserved", "make_prv", "make_prvdir", "resolve_in_share",
    "safe_relpath", "walk_share",
]
