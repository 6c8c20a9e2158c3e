"""The MDA binary format: header reading and checks without numpy, data access with numpy.

Header (little-endian int32): data_type code, num_bytes_per_entry, num_dims (negative: the dims
are int64), then the dims. The data follows straight away in column-major (Fortran) order.
Checks follow rules R1-R11 of docs/spec/mda-format.md; numpy is imported only where data is read.
"""
from __future__ import annotations

import os
import struct
from typing import Any

from kbtools.atomic import atomic_path
from kbtools.errors import KbError
from kbtools.findings import WARNING, Finding
from kbtools.formats.codes import CheckResult, finding
from kbtools.formats.files import stat_regular_file

#: data_type code -> (name printed by mda-info, numpy dtype string, bytes per entry)
DTYPES: dict[int, tuple[str, str, int]] = {
    -2: ("byte", "<u1", 1),
    -3: ("float32", "<f4", 4),
    -4: ("int16", "<i2", 2),
    -5: ("int32", "<i4", 4),
    -6: ("uint16", "<u2", 2),
    -7: ("float64", "<f8", 8),
    -8: ("uint32", "<u4", 4),
}
CODE_FOR_NUMPY = {numpy_name: code for code, (_, numpy_name, _) in DTYPES.items()}
MAX_DIMS = 50
BIG_DIM = 2_000_000_000  # the reference writers switch to 64-bit dims above this
_MAX_HEADER = 12 + 8 * MAX_DIMS


class MdaError(KbError):
    """An .mda file that cannot be read; ``findings`` says why."""

    def __init__(self, message: str, findings: list[Finding]):
        super().__init__(message)
        self.findings = findings


class MdaHeader:
    """A parsed header. ``num_dims`` is as stored (negative when the dims are 64-bit)."""

    __slots__ = ("data_type", "num_bytes_per_entry", "num_dims", "dims")

    def __init__(self, data_type: int, num_bytes_per_entry: int, num_dims: int,
                 dims: tuple[int, ...]) -> None:
        self.data_type = data_type
        self.num_bytes_per_entry = num_bytes_per_entry
        self.num_dims = num_dims
        self.dims = dims

    def __repr__(self) -> str:
        return (f"MdaHeader(data_type={self.data_type}, num_bytes_per_entry="
                f"{self.num_bytes_per_entry}, num_dims={self.num_dims}, dims={self.dims})")

    @property
    def uses_64bit_dims(self) -> bool:
        return self.num_dims < 0

    @property
    def header_size(self) -> int:
        """The real data offset."""
        return 12 + (8 if self.uses_64bit_dims else 4) * abs(self.num_dims)

    @property
    def dtype(self) -> str:
        """The mda-info name of the data type ("" when unsupported)."""
        return DTYPES[self.data_type][0] if self.data_type in DTYPES else ""

    @property
    def numpy_dtype(self) -> str | None:
        return DTYPES[self.data_type][1] if self.data_type in DTYPES else None

    @property
    def itemsize(self) -> int | None:
        return DTYPES[self.data_type][2] if self.data_type in DTYPES else None

    @property
    def expected_size(self) -> int | None:
        """Header plus data size in bytes (Python ints, no overflow), when it can be known."""
        if self.itemsize is None or any(d < 0 for d in self.dims):
            return None
        count = 1
        for d in self.dims:
            count *= d
        return self.header_size + self.itemsize * count


class MdaInfo(CheckResult):
    """What checking one .mda file found: the header (when readable), sizes and findings."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.header: MdaHeader | None = None
        self.file_size: int | None = None

    @property
    def expected_size(self) -> int | None:
        return self.header.expected_size if self.header else None

    @property
    def channels_timepoints(self) -> tuple[int, int] | None:
        """``(dims[0], dims[1])`` whenever the header says them, even if the file has other errors.

        A truncated file, a wrong ``num_bytes_per_entry`` or an unsupported data type still has
        readable dims, so the cross-file rules (G6) can be checked; a header cut short (or
        big-endian: its num_dims reads out of range) or negative dims cannot tell the channel count.
        """
        h = self.header
        if h is None or len(h.dims) < 2 or h.dims[0] < 1 or h.dims[1] < 0:
            return None
        return h.dims[0], h.dims[1]

    def to_json(self) -> dict[str, Any]:
        """The mda-info object: the original tool's keys first, in its order, then ours."""
        h = self.header
        return {
            "num_bytes_per_entry": h.num_bytes_per_entry if h else None,
            "num_dims": h.num_dims if h else None,
            "dims": list(h.dims) if h else None,
            "dtype": h.dtype if h else None,
            "header_size": h.header_size if h else None,
            "path": self.path,
            "data_type": h.data_type if h else None,
            "file_size": self.file_size,
            "expected_size": self.expected_size,
            "valid": self.valid,
            "findings": [f.to_json() for f in self.findings],
        }


def _code_finding(path: str, code: int, bpe: int, num_dims: int) -> Finding:
    """R3, naming the likely cause."""
    swapped = [struct.unpack(">i", struct.pack("<i", v))[0] for v in (code, bpe, num_dims)]
    if swapped[0] in DTYPES and 0 < swapped[1] <= 8 and 0 < abs(swapped[2]) <= MAX_DIMS:
        return finding("R3", path, f"data type code {code} read little-endian; the file looks "
                                   f"big-endian (code {swapped[0]} when byte-swapped)",
                       hint="byte-swap the file to little-endian; every MDA reader assumes it",
                       field="data_type")
    if code == -1:
        why = "-1 is complex float32, which no reference reader supports"
    elif code in (-9, -10):
        why = f"{code} is int64/uint64, which no reference reader supports"
    elif code > 0:
        why = f"a positive code ({code}) is the legacy complex format"
    else:
        why = f"{code} is not a data type code"
    return finding("R3", path, f"unsupported data type code: {why}", field="data_type")


def read_mda_header(path: str | os.PathLike[str], *, raw: bool = False) -> MdaInfo:
    """Read and check the header of an .mda file: ``stat`` plus at most 412 bytes, no numpy.

    Applies R1-R10 (``raw=True`` adds the raw.mda rules: exactly 2 dims, M >= 1, N >= 1).
    Never raises for bad input: every problem is a finding of the returned :class:`MdaInfo`.
    """
    path = os.fspath(path)  # pathlib stays unimported: it costs mda-info start-up time
    info = MdaInfo(path=path)
    st, info.findings = stat_regular_file(path, "R1", ".mda file")
    if st is None:
        return info
    info.file_size = size = st.st_size
    try:
        with open(path, "rb") as f:
            head = f.read(_MAX_HEADER)
    except OSError as exc:
        info.findings.append(finding("R1", path, f"cannot read .mda file: {exc.strerror or exc}"))
        return info
    add = info.findings.append
    if len(head) < 12:
        add(finding("R2", path, f"file is {size} bytes, shorter than the 12-byte header start"))
        return info
    code, bpe, num_dims = struct.unpack_from("<iii", head, 0)
    if code not in DTYPES:
        add(_code_finding(path, code, bpe, num_dims))
    elif bpe != DTYPES[code][2]:
        add(finding("R4", path, f"num_bytes_per_entry is {bpe} but {DTYPES[code][0]} entries "
                                f"take {DTYPES[code][2]} bytes", field="num_bytes_per_entry"))
    if num_dims == 0 or abs(num_dims) > MAX_DIMS:
        add(finding("R5", path, f"num_dims is {num_dims}; an .mda file has 1 to {MAX_DIMS} dims "
                                f"(negative when they are 64-bit)", field="num_dims"))
        return info
    nd = abs(num_dims)
    width = 8 if num_dims < 0 else 4
    if len(head) < 12 + width * nd:
        add(finding("R2", path, f"file is {size} bytes but its header needs {12 + width * nd}"))
        return info
    if num_dims < 0:
        dims = struct.unpack_from(f"<{nd}Q", head, 12)
        for i, d in enumerate(dims):
            if d >= 2**63:
                add(finding("R10", path, f"64-bit dims[{i}] is {d - 2**64} (negative as a signed "
                                         f"int64)", field=f"dims[{i}]"))
        dims = tuple(d - 2**64 if d >= 2**63 else d for d in dims)
    else:
        dims = struct.unpack_from(f"<{nd}i", head, 12)
        for i, d in enumerate(dims):
            if d < 0:
                add(finding("R6", path, f"dims[{i}] is {d}", field=f"dims[{i}]"))
            elif d > BIG_DIM:
                add(finding("R9", path, f"32-bit dims[{i}] is {d}, above 2e9", field=f"dims[{i}]"))
    info.header = header = MdaHeader(code, bpe, num_dims, tuple(dims))
    if raw:
        _check_raw_shape(path, header, add)
    expected = header.expected_size
    if expected is not None:
        if size < expected:
            add(finding("R7", path, f"truncated: expected {expected} bytes, found {size}"))
        elif size > expected:
            add(finding("R8", path, f"{size - expected} trailing bytes after the data are ignored"))
    return info


def _check_raw_shape(path: str, header: MdaHeader, add: Any) -> None:
    """raw.mda rules: M channels x N timepoints, both at least 1."""
    dims = header.dims
    if len(dims) == 1:
        add(finding("R5", path, "raw.mda is 1-D; it must be 2-D (channels x timepoints)",
                    field="num_dims"))
        return
    if len(dims) > 2:
        extra = dims[2:]
        if all(d == 1 for d in extra):
            add(finding("R5", path, f"raw.mda has {len(dims)} dims; the extra ones are all 1",
                        severity=WARNING, field="num_dims",
                        hint="readers use the first two dims; rewrite the file as 2-D"))
        else:
            add(finding("R5", path, f"raw.mda has {len(dims)} dims {list(dims)}; it must be 2-D "
                                    f"(channels x timepoints)", field="num_dims"))
    for i, name in ((0, "channels"), (1, "timepoints")):
        if dims[i] == 0:
            add(finding("R6", path, f"raw.mda has 0 {name} (dims[{i}] is 0)", field=f"dims[{i}]"))


def check_mda_data(info: MdaInfo, chunk_bytes: int = 64 * 1024 * 1024) -> list[Finding]:
    """R11: float data must be finite. Reads the whole data part in chunks (imports numpy).

    Other findings do not stop it: a truncated file has the samples it holds checked, a wrong
    ``num_bytes_per_entry`` (which readers ignore) is read with the data type's own size.
    """
    h = info.header
    if h is None or h.numpy_dtype is None or h.numpy_dtype[1] != "f" or h.expected_size is None \
            or info.file_size is None:
        return []
    import numpy as np

    itemsize = h.itemsize
    assert itemsize is not None  # a known dtype (checked above) has one
    count = (h.expected_size - h.header_size) // itemsize
    present = max(0, info.file_size - h.header_size) // itemsize
    of = f"{count}" if present >= count else f"the {present} present (of {count})"
    count = min(count, present)
    per_chunk = max(1, chunk_bytes // itemsize)
    bad = 0
    first: int | None = None
    with open(info.path, "rb") as f:
        f.seek(h.header_size)
        done = 0
        while done < count:
            n = min(per_chunk, count - done)
            data = f.read(n * itemsize)
            n = len(data) // itemsize  # the file may have shrunk since its stat
            if n == 0:
                break
            block = np.frombuffer(data, dtype=h.numpy_dtype, count=n)
            mask = ~np.isfinite(block)
            nbad = int(mask.sum())
            if nbad and first is None:
                first = done + int(np.argmax(mask))
            bad += nbad
            done += n
    if not bad:
        return []
    where = ""
    if first is not None and len(h.dims) >= 2:
        where = f"; the first is channel {first % h.dims[0]}, timepoint {first // h.dims[0]}"
    return [finding("R11", info.path, f"{bad} of {of} samples are NaN or infinite{where}")]


def read_mda(path: str | os.PathLike[str]) -> Any:
    """The data of an .mda file as a read-only numpy memmap, shape ``dims``, Fortran order.

    Raises :class:`MdaError` when the file has error findings (R1-R10).
    """
    info = read_mda_header(path)
    if not info.valid or info.header is None:
        errors = "; ".join(f"{f.code}: {f.message}" for f in info.findings if f.is_error)
        raise MdaError(f"{path}: {errors}", info.findings)
    import numpy as np

    h = info.header
    if 0 in h.dims:  # mmap cannot map zero bytes
        return np.zeros(h.dims, dtype=h.numpy_dtype, order="F")
    dtype = h.numpy_dtype
    assert dtype is not None  # a header without errors has a known data type
    return np.memmap(path, dtype=dtype, mode="r", offset=h.header_size, shape=h.dims, order="F")


def write_mda(path: str | os.PathLike[str], array: Any, dtype: Any = None, *,
              use_64bit_dims: bool | None = None) -> None:
    """Write ``array`` as an .mda file, atomically (a temporary name, then a rename).

    Dims are 64-bit when some dim is above 2e9 (as the reference writers do) or when
    ``use_64bit_dims`` says so.
    """
    import numpy as np

    a = np.asarray(array)
    dt = np.dtype(dtype or a.dtype).newbyteorder("<")
    code = CODE_FOR_NUMPY.get(dt.str if dt.itemsize > 1 else "<u1" if dt.kind == "u" else "")
    if code is None:
        raise ValueError(f"no MDA data type for numpy dtype {dt}")
    if a.ndim < 1:
        raise ValueError("an .mda file needs at least one dimension")
    dims = a.shape
    if use_64bit_dims is None:
        use_64bit_dims = any(d > BIG_DIM for d in dims)
    header = struct.pack("<ii", code, dt.itemsize)
    if use_64bit_dims:
        header += struct.pack(f"<i{len(dims)}q", -len(dims), *dims)
    else:
        header += struct.pack(f"<i{len(dims)}i", len(dims), *dims)
    # a Fortran-ordered array's transpose is C-contiguous: its buffer is the file's data order
    data = np.ascontiguousarray(np.asarray(a, dtype=dt).T)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header)
        f.write(memoryview(data.data).cast("B") if data.size else b"")
