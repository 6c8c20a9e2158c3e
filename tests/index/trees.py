"""Real share trees for the index tests."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

#: Names that broke or endangered the original indexer (spec §5.1, §8).
WEIRD_NAMES = [
    "with space.txt", "hash#tag.txt", "what?.txt", "quote'single.txt", 'quote"double.txt',
    "ünïcødé-日本.txt", "new\nline.txt", "$(touch pwned)", "semi;colon&amp|pipe`tick`.txt",
    "back\\slash.txt", "-dash-first.txt",
]
#: The two files of the recorded original share whose content is known (vectors/kbucket-original).
ONE_TXT = b"one text\n"
BIG_BIN = bytes(i % 256 for i in range(204800))


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def age(root: Path, seconds: int = 3600) -> None:
    """Move every mtime into the past, so that cache rows are trusted (not racily clean)."""
    when = time.time() - seconds
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.utime(p, (when, when))


def age_files(*paths: Path, seconds: int = 3600) -> None:
    when = time.time() - seconds
    for p in paths:
        os.utime(p, (when, when))


def make_share(root: Path, outside: Path) -> dict[str, bytes]:
    """A share with weird names, skipped places and symlinks; returns the indexable files."""
    expected: dict[str, bytes] = {}
    for i, name in enumerate(WEIRD_NAMES):
        expected[name] = f"content {i} of {name!r}\n".encode()
        write(root / name, expected[name])
    expected["sub/one.txt"] = ONE_TXT
    expected["sub/deeper/big.bin"] = BIG_BIN
    expected["empty"] = b""
    for rel, data in expected.items():
        write(root / rel, data)
    # Skipped: hidden at any depth, .kbucket, node_modules (file and directory).
    write(root / ".hidden", "h")
    write(root / ".git" / "config", "c")
    write(root / "sub" / ".hidden2", "h2")
    write(root / "sub" / "deeper" / ".cache" / "x", "x")
    write(root / ".kbucket" / "private.pem", "secret")
    write(root / "node_modules" / "pkg" / "index.js", "js")
    write(root / "sub" / "node_modules", "a file named node_modules")
    # Symlinks: in (followed), out (refused), into .kbucket (refused), a loop (cut).
    write(outside / "secret.txt", "outside")
    os.symlink(outside / "secret.txt", root / "link-out.txt")
    os.symlink(outside, root / "link-out-dir")
    os.symlink(root / ".kbucket" / "private.pem", root / "link-to-key")
    os.symlink("one.txt", root / "sub" / "link-in.txt")
    os.symlink("deeper", root / "sub" / "link-in-dir")
    os.symlink("..", root / "sub" / "deeper" / "loop")
    expected["sub/link-in.txt"] = ONE_TXT
    expected["sub/link-in-dir/big.bin"] = BIG_BIN
    os.mkfifo(root / "a-fifo")
    age(root)
    return expected
