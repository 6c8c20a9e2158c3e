"""A MountainSort dataset on a share as a SpikeInterface recording, read in place by Range requests.

    from kbtools.spikeinterface import read_recording
    recording = read_recording("kbucket://NODEID/dataset1", hub="http://HUB:3240")   # or $KBUCKET_URL
    traces = recording.get_traces(start_frame=30000, end_frame=60000)   # one Range request

Nothing is downloaded first: the sample rate comes from ``params.json``, the channel locations from
``geom.csv``, the data type and shape from the ``raw.mda`` header (three small reads), and each
``get_traces`` window is one contiguous byte range of ``raw.mda`` (MDA stores the channels of one
sample next to each other), read through :class:`kbtools.client.fsspec_fs.KbucketFileSystem`: the
share directly first, then the hubs. The recording equals ``read_mda_recording`` on a downloaded
copy, sample for sample, for every MDA data type; it serialises (``to_dict``, pickling for
SpikeInterface's worker processes) as its URL and hub.

SpikeInterface and fsspec are optional dependencies of kbtools: they are imported when a recording
is made, not when this module is.
"""
from __future__ import annotations

import io
import json
import struct
import threading
from typing import Any

from kbtools.formats.mda import DTYPES, MdaHeader

#: Read-ahead of the raw.mda file behind get_traces: small, so a window costs about its own bytes.
TRACES_BLOCK_SIZE = 1024 * 1024
_MAX_HEADER = 12 + 8 * 2


def parse_raw_header(head: bytes, url: str) -> MdaHeader:
    """The header of a raw.mda (2 dims, a known data type) from its first bytes; ValueError else."""
    if len(head) < 12:
        raise ValueError(f"{url}: shorter than an .mda header")
    code, bpe, num_dims = struct.unpack_from("<iii", head, 0)
    if code not in DTYPES or bpe != DTYPES[code][2]:
        raise ValueError(f"{url}: unsupported .mda data type code {code} ({bpe} bytes per entry)")
    if abs(num_dims) != 2:
        raise ValueError(f"{url}: a raw.mda has 2 dims (channels x samples), this one {abs(num_dims)}")
    fmt = "<2q" if num_dims < 0 else "<2i"
    if len(head) < 12 + struct.calcsize(fmt):
        raise ValueError(f"{url}: shorter than its .mda header")
    dims = struct.unpack_from(fmt, head, 12)
    if dims[0] < 1 or dims[1] < 0:
        raise ValueError(f"{url}: dims {dims} are not channels x samples")
    return MdaHeader(code, bpe, num_dims, tuple(dims))


def _classes() -> tuple[type, type]:
    """The recording classes, made on first use (SpikeInterface is imported here, not above)."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    import numpy as np
    from spikeinterface.core import BaseRecording, BaseRecordingSegment

    from kbtools.client.fsspec_fs import KbucketFileSystem

    class KbucketRecordingSegment(BaseRecordingSegment):
        def __init__(self, file: Any, header: MdaHeader, sampling_frequency: float) -> None:
            BaseRecordingSegment.__init__(self, sampling_frequency=sampling_frequency)
            self._file = file
            self._lock = threading.Lock()  # one file position: SpikeInterface may read from threads
            self._channels, self._samples = header.dims
            self._dtype = np.dtype(header.numpy_dtype)
            self._offset = header.header_size

        def get_num_samples(self) -> int:
            return int(self._samples)

        def get_traces(self, start_frame: int | None = None, end_frame: int | None = None,
                       channel_indices: Any = None) -> Any:
            start = 0 if start_frame is None else int(start_frame)
            end = self._samples if end_frame is None else int(end_frame)
            frame_bytes = self._channels * self._dtype.itemsize
            count = max(0, end - start)
            with self._lock:
                self._file.seek(self._offset + start * frame_bytes)
                data = self._file.read(count * frame_bytes)
            if len(data) != count * frame_bytes:
                raise OSError(f"{self._file.resolution.url}: short read at sample {start}")
            traces = np.frombuffer(data, dtype=self._dtype).reshape(count, self._channels)
            traces = traces.astype(self._dtype.newbyteorder("="), copy=True)
            return traces if channel_indices is None else traces[:, channel_indices]

    class KbucketRecording(BaseRecording):
        """A dataset folder of a share (``raw.mda``, ``geom.csv``, ``params.json``), read in place."""

        def __init__(self, url: str, hub: str | None = None, raw_fname: str = "raw.mda",
                     params_fname: str = "params.json", geom_fname: str = "geom.csv",
                     storage_options: dict[str, Any] | None = None) -> None:
            options = dict(storage_options or {})
            fs = KbucketFileSystem(hub=hub, **options)
            folder = fs._strip_protocol(url)
            raw_url = f"kbucket://{folder}/{raw_fname}"
            params = json.loads(fs.cat_file(f"{folder}/{params_fname}"))
            geom = np.loadtxt(io.BytesIO(fs.cat_file(f"{folder}/{geom_fname}")), delimiter=",", ndmin=2)
            header = parse_raw_header(fs.cat_file(raw_url, 0, _MAX_HEADER), raw_url)
            channels = header.dims[0]
            if geom.shape[0] != channels:
                raise ValueError(f"{url}: {geom_fname} has {geom.shape[0]} rows, raw.mda {channels} channels")
            size = fs.size(raw_url)
            if header.expected_size is not None and size < header.expected_size:
                raise ValueError(f"{raw_url}: truncated: expected {header.expected_size} bytes, found {size}")
            rate = float(params["samplerate"])
            BaseRecording.__init__(self, sampling_frequency=rate, channel_ids=np.arange(channels),
                                   dtype=np.dtype(header.numpy_dtype).newbyteorder("="))
            self.kbucket_fs = fs  # its .stats count the Range requests
            self.kbucket_url = fs.url_of(folder)
            self.dataset_params = params
            file = fs.open(raw_url, block_size=TRACES_BLOCK_SIZE)
            self.add_recording_segment(KbucketRecordingSegment(file, header, rate))
            self.set_dummy_probe_from_locations(geom)
            # A private share's link keeps its token here, so that worker processes can read too.
            self._kwargs = {"url": url if "token=" in url else self.kbucket_url, "hub": fs.hub,
                            "raw_fname": raw_fname,
                            "params_fname": params_fname, "geom_fname": geom_fname,
                            "storage_options": options}

    for cls in (KbucketRecording, KbucketRecordingSegment):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    _CLASSES = (KbucketRecording, KbucketRecordingSegment)
    return _CLASSES


_CLASSES: tuple[type, type] | None = None


def __getattr__(name: str) -> Any:
    """``KbucketRecording`` and ``KbucketRecordingSegment``, made on first use (so that SpikeInterface
    can find the class of a serialised recording by its name)."""
    if name == "KbucketRecording":
        return _classes()[0]
    if name == "KbucketRecordingSegment":
        return _classes()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_recording(url: str, hub: str | None = None, *, raw_fname: str = "raw.mda",
                   params_fname: str = "params.json", geom_fname: str = "geom.csv",
                   **storage_options: Any) -> Any:
    """The dataset folder ``url`` (``kbucket://NODEID/dataset1``) as a SpikeInterface recording read
    lazily by Range requests; ``hub`` else ``$KBUCKET_URL``; ``storage_options`` go to the file
    system (``local_cache``, ``cache_dir``, ``timeout``)."""
    return _classes()[0](url, hub, raw_fname, params_fname, geom_fname, storage_options)


__all__ = ["KbucketRecording", "KbucketRecordingSegment", "parse_raw_header", "read_recording"]
