"""A synthetic study for tests, the demo and benchmarks: int16 traces with spikes, geometry, params."""
from __future__ import annotations

import json
import os
from pathlib import Path

from kbtools.formats.mda import write_mda


def sample_geometry(channels: int) -> list[tuple[float, float]]:
    """Two columns of electrodes 20 µm apart (channels 0-3: a square tetrode-like layout)."""
    return [(20.0 * (i % 2), 20.0 * (i // 2)) for i in range(channels)]


def sample_traces(channels: int, samples: int, samplerate: int, seed: int = 0) -> object:
    """An int16 channels x samples array: noise plus negative spikes about every 10 ms."""
    import numpy as np

    rng = np.random.default_rng(seed)
    traces = rng.normal(0.0, 10.0, size=(channels, samples))
    width = max(8, samplerate // 1000)  # about 1 ms
    t = np.arange(width)
    waveform = -np.exp(-0.5 * ((t - width / 3) / (width / 10)) ** 2) \
        + 0.3 * np.exp(-0.5 * ((t - width / 1.5) / (width / 5)) ** 2)
    count = max(1, samples * 100 // samplerate)
    for start in rng.integers(0, max(1, samples - width), size=count):
        centre = int(rng.integers(0, channels))
        amplitude = float(rng.uniform(100.0, 300.0))
        for ch in range(channels):
            decay = 0.5 ** abs(ch - centre)
            traces[ch, start:start + width] += amplitude * decay * waveform[: samples - start]
    return np.clip(np.rint(traces), -32768, 32767).astype(np.int16)


def write_sample_dataset(folder: str | os.PathLike[str], channels: int = 4,
                         samples: int = 30000, samplerate: int = 30000, seed: int = 0) -> Path:
    """Write raw.mda, geom.csv and params.json into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_mda(folder / "raw.mda", sample_traces(channels, samples, samplerate, seed))
    geom = "".join(f"{x:g},{y:g}\n" for x, y in sample_geometry(channels))
    (folder / "geom.csv").write_text(geom, encoding="utf-8")
    params = {"samplerate": samplerate, "spike_sign": -1}
    (folder / "params.json").write_text(json.dumps(params) + "\n", encoding="utf-8")
    return folder


def write_sample_study(root: str | os.PathLike[str], names: tuple[str, ...] = ("dataset1",),
                       channels: int = 4, samples: int = 30000, samplerate: int = 30000,
                       seed: int = 0) -> list[Path]:
    """Write one sample dataset per name under ``root``; returns the dataset directories."""
    return [write_sample_dataset(Path(root) / name, channels, samples, samplerate, seed + i)
            for i, name in enumerate(names)]


def main(argv: list[str] | None = None) -> int:
    """``python -m kbtools.formats.sample DIR``: a small study to try the commands on."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: python -m kbtools.formats.sample DIR\n")
        return 2
    for folder in write_sample_study(args[0], ("dataset1", "dataset2")):
        sys.stderr.write(f"wrote {folder}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
