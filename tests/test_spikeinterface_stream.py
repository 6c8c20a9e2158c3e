"""SpikeInterface recordings and NWB files read in place from a real kb-host share through a kb-hub."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fsspec")
se = pytest.importorskip("spikeinterface.extractors")

from kbtools.formats.mda import write_mda  # noqa: E402
from kbtools.formats.sample import sample_traces, write_sample_dataset  # noqa: E402
from kbtools.spikeinterface import parse_raw_header, read_recording  # noqa: E402

from .netfixtures import Network, wait_found  # noqa: E402

DTYPES = ["int16", "uint16", "int32", "uint32", "float32", "float64", "uint8"]
NWB_SAMPLES, NWB_CHANNELS = 100_000, 32


def dtype_dataset(folder: Path, dtype: str, use_64bit_dims: bool = False) -> None:
    """4 channels x 3000 samples of ``dtype`` covering its range, 3-d geometry, params.json."""
    rng = np.random.default_rng(len(dtype))
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        data = rng.integers(info.min, info.max, size=(4, 3000), dtype=dtype, endpoint=True)
    else:
        data = (rng.standard_normal((4, 3000)) * 1e3).astype(dtype)
    folder.mkdir(parents=True)
    write_mda(folder / "raw.mda", data, use_64bit_dims=use_64bit_dims)
    (folder / "geom.csv").write_text("".join(f"{i * 10},{i % 2 * 15},{i}\n" for i in range(4)))
    (folder / "params.json").write_text(json.dumps({"samplerate": 20000, "spike_sign": 1}))


def nwb_file(path: Path) -> np.ndarray:
    """A small NWB file written by pynwb: one ElectricalSeries, samples x channels int16."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries

    nwb = NWBFile(session_description="kbtools streaming test", identifier="kbtools-test",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    device = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(name="shank0", description="shank", location="CA1", device=device)
    for i in range(NWB_CHANNELS):
        nwb.add_electrode(group=group, location="CA1", x=0.0, y=float(i * 20), z=0.0)
    region = nwb.create_electrode_table_region(list(range(NWB_CHANNELS)), "all electrodes")
    data = sample_traces(NWB_CHANNELS, NWB_SAMPLES, 30000, seed=3).T.copy()
    nwb.add_acquisition(ElectricalSeries(name="ElectricalSeries", data=data, electrodes=region, rate=30000.0))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return data


class Share:
    def __init__(self, nodes: Network) -> None:
        root = nodes.root / "study"
        for dtype in DTYPES:
            dtype_dataset(root / dtype, dtype)
        dtype_dataset(root / "int16-64bit-dims", "int16", use_64bit_dims=True)
        write_sample_dataset(root / "wide", channels=64, samples=60000, samplerate=30000)
        self.nwb = nwb_file(root / "session.nwb")
        self.root = root
        contents = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        self.hub = nodes.hub("hub")
        self.share = nodes.share("study", parent=self.hub)
        wait_found(self.hub.url, *contents.values())

    def url(self, rel: str) -> str:
        return f"kbucket://{self.share.node_id}/{rel}"


@pytest.fixture(scope="module")
def share(tmp_path_factory):
    with Network(tmp_path_factory.mktemp("si")) as nodes:
        yield Share(nodes)


@pytest.fixture(autouse=True)
def no_cache(monkeypatch):
    monkeypatch.setenv("KBUCKET_NO_CACHE", "1")
    monkeypatch.delenv("KBUCKET_URL", raising=False)


@pytest.mark.parametrize("folder", DTYPES + ["int16-64bit-dims"])
def test_equal_to_read_mda_recording_of_a_local_copy(share, folder):
    local = se.read_mda_recording(share.root / folder)
    remote = read_recording(share.url(folder), hub=share.hub.url)
    assert remote.get_dtype() == local.get_dtype()
    assert remote.get_num_channels() == local.get_num_channels() == 4
    assert remote.get_num_samples() == local.get_num_samples() == 3000
    assert remote.get_sampling_frequency() == local.get_sampling_frequency() == 20000.0
    assert (remote.get_channel_ids() == local.get_channel_ids()).all()
    assert np.array_equal(remote.get_channel_locations(), local.get_channel_locations())
    whole = remote.get_traces()
    assert whole.dtype == local.get_traces().dtype and np.array_equal(whole, local.get_traces())
    for start, end, channels in ((0, 1, None), (17, 2999, [3, 0]), (2999, 3000, [1]), (500, 500, None)):
        ids = None if channels is None else remote.get_channel_ids()[channels]
        assert np.array_equal(remote.get_traces(start_frame=start, end_frame=end, channel_ids=ids),
                              local.get_traces(start_frame=start, end_frame=end, channel_ids=ids))


def test_a_one_second_window_of_64_channels_costs_one_range_request(share):
    recording = read_recording(share.url("wide"), hub=share.hub.url)
    local = se.read_mda_recording(share.root / "wide")
    stats = recording.kbucket_fs.stats
    before = stats.range_requests
    window = recording.get_traces(start_frame=15000, end_frame=45000)  # 1 s at 30 kHz, 64 channels
    assert window.shape == (30000, 64)
    assert np.array_equal(window, local.get_traces(start_frame=15000, end_frame=45000))
    assert stats.range_requests - before == 1
    assert stats.routes.get("direct", 0) == stats.range_requests  # all from the share itself


def test_preprocessing_and_serialisation(share):
    spre = pytest.importorskip("spikeinterface.preprocessing")
    remote = read_recording(share.url("wide"), hub=share.hub.url)
    local = se.read_mda_recording(share.root / "wide")
    def chain(recording):  # preprocessing steps that need nothing beyond SpikeInterface and numpy
        centred = spre.center(recording, seed=0)
        return spre.common_reference(spre.scale(centred, gain=0.195, dtype="float32"), operator="median")

    filtered_remote, filtered_local = chain(remote), chain(local)
    assert np.array_equal(filtered_remote.get_traces(start_frame=1000, end_frame=4000),
                          filtered_local.get_traces(start_frame=1000, end_frame=4000))
    again = pickle.loads(pickle.dumps(remote))  # as SpikeInterface's worker processes get it
    assert np.array_equal(again.get_traces(start_frame=0, end_frame=100), local.get_traces(end_frame=100))
    from spikeinterface.core import load

    restored = load(remote.to_dict())
    assert restored.kbucket_url == share.url("wide")
    assert np.array_equal(restored.get_traces(end_frame=10), local.get_traces(end_frame=10))


def test_not_a_dataset(share):
    with pytest.raises(FileNotFoundError):
        read_recording(share.url("nope"), hub=share.hub.url)
    with pytest.raises(ValueError, match="2 dims"):
        parse_raw_header(b"\xfc\xff\xff\xff\x02\x00\x00\x00\x03\x00\x00\x00" + bytes(12), "x.mda")
    with pytest.raises(ValueError, match="data type"):
        parse_raw_header(b"\x01\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00" + bytes(8), "x.mda")


def test_an_nwb_file_streams_a_slice(share):
    h5py = pytest.importorskip("h5py")
    pynwb = pytest.importorskip("pynwb")
    import fsspec

    fs = fsspec.filesystem("kbucket", hub=share.hub.url, skip_instance_cache=True)
    url = share.url("session.nwb")
    with fs.open(url, block_size=256 * 1024, cache_type="blockcache") as f, h5py.File(f, "r") as file, \
            pynwb.NWBHDF5IO(file=file, load_namespaces=True) as io:
        nwb = io.read()
        series = nwb.acquisition["ElectricalSeries"]
        assert series.data.shape == (NWB_SAMPLES, NWB_CHANNELS) and series.rate == 30000.0
        assert np.array_equal(series.data[40000:41000, 3:9], share.nwb[40000:41000, 3:9])
    size = fs.size(url)
    assert fs.stats.bytes_fetched < size / 4  # read in place, not downloaded
