"""Shared fixtures: small HDF5 files written by the tests themselves in the real format."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

TONE_CLASSES = ["low", "mid", "high", "noise"]


def write_tone_h5(path: str, n_clips: int, seed: int, sample_rate: int = 32000, seconds: float = 1.0,
                  codec: str = "pcm16") -> str:
    """Clips holding 1-2 of four easily separable sources (three tones, a noise band), weak labels attached."""
    from datamodules.audio_io import encode_audio
    from datamodules.h5format import ClipRecord, write_h5

    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    sources = [lambda: np.sin(2 * np.pi * 300 * t), lambda: np.sin(2 * np.pi * 1500 * t),
               lambda: np.sin(2 * np.pi * 6000 * t), lambda: rng.standard_normal(t.size)]
    records = []
    for i in range(n_clips):
        labels = sorted(rng.choice(4, size=int(rng.integers(1, 3)), replace=False).tolist())
        wave = sum(0.3 * sources[k]() for k in labels) + 0.01 * rng.standard_normal(t.size)
        records.append(ClipRecord(name=f"clip_{i:04d}.wav", audio=encode_audio(wave, sample_rate, codec),
                                  duration=seconds, weak=labels))
    write_h5(path, records, len(records), codec=codec, sample_rate=sample_rate, class_names=TONE_CLASSES)
    return path


@pytest.fixture(scope="session")
def tone_h5_dir(tmp_path_factory) -> str:
    """A directory with train/val/test tone files (pcm16, 32 kHz, 1 s)."""
    root = tmp_path_factory.mktemp("tones")
    for split, n, seed in (("train", 48, 0), ("val", 16, 1), ("test", 16, 2)):
        write_tone_h5(str(root / f"{split}.h5"), n, seed)
    return str(root)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """The full demo data set (``sonolab demo-data --seed 0``), generated once per test session: (root, summary)."""
    from datamodules.demo_data import generate

    out = tmp_path_factory.mktemp("demo")
    return str(out), generate(str(out), seed=0, workers=2)


@pytest.fixture(scope="session")
def demo_scenes(demo_data) -> str:
    """Root of the demo data, for the acoustic scene tests (``scenes/``, ``scenes_{train,test}.h5``, ``dirs/``)."""
    return demo_data[0]


@pytest.fixture
def one_thread():
    """Runs a test with one torch thread: small CPU fits are much faster than with threads fighting for 2 cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
