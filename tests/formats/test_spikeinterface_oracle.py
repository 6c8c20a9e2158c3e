"""SpikeInterface as the oracle, only where mda-format.md §5 says it is sound.

- files we write read back identically (dims, dtype, every value, samplerate, x/y geometry);
- a dataset SpikeInterface writes is valid for us and reads back the same;
- the "both reject" cases: what it rejects, we reject.
Only accepted/rejected and data are compared, never its exception types or messages.
"""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import spikeinterface.extractors as se
from spikeinterface.core import NumpyRecording
from spikeinterface.extractors.mdaextractors import MdaRecordingExtractor

from kbtools.formats.dataset import check_dataset
from kbtools.formats.mda import read_mda, write_mda
from kbtools.formats.sample import write_sample_study


def si_read(folder):
    rec = se.read_mda_recording(folder, raw_fname="raw.mda", params_fname="params.json",
                                geom_fname="geom.csv")
    return rec, rec.get_traces().T, rec.get_sampling_frequency()


def si_accepts(folder) -> bool:
    try:
        si_read(folder)
    except Exception:
        return False
    return True


def write_dataset(folder, traces, geom, params=None, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    write_mda(folder / "raw.mda", traces, **kw)
    (folder / "geom.csv").write_text("".join(",".join(f"{v:g}" for v in row) + "\n" for row in geom))
    (folder / "params.json").write_text(json.dumps(params or {"samplerate": 30000}))
    return folder


@pytest.mark.parametrize("dtype", ["<u1", "<f4", "<i2", "<i4", "<u2", "<f8", "<u4"])
@pytest.mark.parametrize("wide", [False, True])
def test_our_files_read_back_identically(tmp_path, dtype, wide):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 200, size=(3, 17)).astype(dtype)
    geom = [(0, 0), (0, 20), (20, 0)]
    ds = write_dataset(tmp_path / "ds", x, geom, {"samplerate": 20000.5}, use_64bit_dims=wide)
    assert check_dataset(ds).valid
    rec, traces, fs = si_read(ds)
    assert traces.dtype == np.dtype(dtype) and np.array_equal(traces, x)
    assert np.array_equal(traces, np.asarray(read_mda(ds / "raw.mda")))
    assert fs == 20000.5 and rec.get_num_channels() == 3 and rec.get_num_samples() == 17
    assert np.array_equal(rec.get_channel_locations(), np.array(geom, float))


def test_sample_study_reads_back_identically(tmp_path):
    (ds,) = write_sample_study(tmp_path, channels=4, samples=1000, samplerate=25000)
    rec, traces, fs = si_read(ds)
    assert np.array_equal(traces, np.asarray(read_mda(ds / "raw.mda")))
    assert fs == 25000.0 and rec.get_num_channels() == 4
    summary = check_dataset(ds).summary
    assert (summary["num_channels"], summary["num_timepoints"]) == (4, rec.get_num_samples())


def test_spikeinterface_written_dataset_is_valid_and_byte_identical(tmp_path):
    x = np.array([[1, 2, 3], [4, 5, 6]], np.int16)
    rec = NumpyRecording([x.T], sampling_frequency=30000.0)
    rec.set_dummy_probe_from_locations(np.array([[0.0, 0.0], [0.0, 10.0]]))
    MdaRecordingExtractor.write_recording(rec, tmp_path / "si")
    report = check_dataset(tmp_path / "si")
    assert report.valid, report.to_json()
    assert report.summary["samplerate"] == 30000.0
    assert np.array_equal(np.asarray(read_mda(tmp_path / "si" / "raw.mda")), x)
    write_mda(tmp_path / "ours.mda", x)
    assert (tmp_path / "ours.mda").read_bytes() == (tmp_path / "si" / "raw.mda").read_bytes()


def _bad_code(ds):
    data = bytearray((ds / "raw.mda").read_bytes())
    data[0:4] = struct.pack("<i", -9)
    (ds / "raw.mda").write_bytes(bytes(data))


def _seven_dims(ds):
    write_mda(ds / "raw.mda", np.zeros((4, 5, 1, 1, 1, 1, 2), np.int16))


def _big_endian(ds):
    x = np.asarray(read_mda(ds / "raw.mda"))
    hdr = struct.pack(">iiiii", -4, 2, 2, *x.shape)
    (ds / "raw.mda").write_bytes(hdr + x.astype(">i2").tobytes(order="F"))


def _header_row(ds):
    (ds / "geom.csv").write_text("x,y\n" + (ds / "geom.csv").read_text())


def _ragged(ds):
    (ds / "geom.csv").write_text("0,0\n0,20\n20,0,1\n20,20\n")


def _rows(ds):
    (ds / "geom.csv").write_text("0,0\n0,20\n20,0\n")


def _transposed(ds):
    x = np.asarray(read_mda(ds / "raw.mda"))
    write_mda(ds / "raw.mda", x.T.copy())


def _no_samplerate(ds):
    (ds / "params.json").write_text('{"spike_sign": -1}')


def _invalid_json(ds):
    (ds / "params.json").write_text('{"samplerate": 30000,}')


@pytest.mark.parametrize("break_it", [_bad_code, _seven_dims, _big_endian, _header_row, _ragged,
                                      _rows, _transposed, _no_samplerate, _invalid_json])
def test_what_spikeinterface_rejects_we_reject(tmp_path, break_it):
    (ds,) = write_sample_study(tmp_path, channels=4, samples=50)
    assert si_accepts(ds) and check_dataset(ds).valid
    break_it(ds)
    assert not si_accepts(ds)
    assert not check_dataset(ds).valid


def _one_dim(ds):
    write_mda(ds / "raw.mda", np.zeros(200, np.int16))


def _empty_raw(ds):
    (ds / "raw.mda").write_bytes(b"")


def _header_cut(ds):
    (ds / "raw.mda").write_bytes((ds / "raw.mda").read_bytes()[:16])


def _no_geom(ds):
    (ds / "geom.csv").unlink()


def _no_params(ds):
    (ds / "params.json").unlink()


@pytest.mark.parametrize("break_it", [_one_dim, _empty_raw, _header_cut, _no_geom, _no_params])
def test_more_rejections_we_share(tmp_path, break_it):
    test_what_spikeinterface_rejects_we_reject(tmp_path, break_it)


def test_random_header_damage_spikeinterface_rejects_is_rejected(tmp_path):
    """One byte of the raw.mda header changed at a time (fixed seed): never accepted when
    SpikeInterface refuses the dataset."""
    (ds,) = write_sample_study(tmp_path, channels=4, samples=50)
    original = (ds / "raw.mda").read_bytes()
    rng = np.random.default_rng(7)
    refused = 0
    for _ in range(60):
        data = bytearray(original)
        data[int(rng.integers(0, 20))] = int(rng.integers(0, 256))
        (ds / "raw.mda").write_bytes(bytes(data))
        if not si_accepts(ds):
            refused += 1
            assert not check_dataset(ds).valid, bytes(data[:20]).hex()
    assert refused > 10  # the damage really reaches the oracle
