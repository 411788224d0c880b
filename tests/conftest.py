"""Shared fixtures: small HDF5 files written by the tests themselves in the real format."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(text: str, folder, *args, timeout: int = 300) -> None:
    """Runs ``text`` as a script in a fresh interpreter in ``folder`` (multi-process DDP tests need their own
    processes) with ``args``, one thread per process; fails the test with its stderr when it fails."""
    path = os.path.join(str(folder), "script.py")
    with open(path, "w") as f:
        f.write(text)
    env = {**os.environ, "PYTHONPATH": REPO, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, path, *map(str, args)], env=env, cwd=str(folder), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]

TONE_CLASSES = ["low", "mid", "high", "noise"]


def write_tone_h5(path: str, n_clips: int, seed: int, sample_rate: int = 32000, seconds: float = 1.0,
                  codec: str = "pcm16") -> str:
    """Clips holding 1-2 of four easily separable sources (three tones, a noise band), weak labels attached."""
    from datamodules.format.audio_io import encode_audio
    from datamodules.format.hdf5 import ClipRecord, write_h5

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
    from datamodules.sources.demo import generate

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


def _link_audio(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.symlink(src, dst)


@pytest.fixture(scope="session")
def downstream_layouts(demo_data, tmp_path_factory) -> dict:
    """ESC-50, OpenMIC-2018 and TAU20 folders in their official layouts, built from demo audio.

    ESC-50: 40 demo scene clips, category = scene, fold = 1 + i % 5. OpenMIC: 40 demo event clips as Ogg, soft labels
    = 0.6-1.0 on the clip's classes, and each clip knows 5 of its 8 labels. TAU20: 60 demo scene clips renamed to the
    five-field TAU20 names. Returns ``{"esc50": dir, "openmic": dir, "tau20": dir}``.
    """
    import csv
    import json

    import soundfile as sf

    root, out = demo_data[0], tmp_path_factory.mktemp("downstream")
    with open(os.path.join(root, "scenes", "meta.csv"), newline="") as f:
        scenes = list(csv.DictReader(f, delimiter="\t"))
    rng = np.random.default_rng(0)

    esc = out / "ESC-50-master"
    categories = sorted({row["scene_label"] for row in scenes})
    rows = []
    for i, row in enumerate(scenes[:: max(1, len(scenes) // 40)][:40]):
        name = f"{1 + i % 5}-{100 + i}-A-{categories.index(row['scene_label'])}.wav"
        _link_audio(os.path.join(root, "scenes", row["filename"]), str(esc / "audio" / name))
        rows.append((name, 1 + i % 5, categories.index(row["scene_label"]), row["scene_label"], "False", "x", "A"))
    os.makedirs(esc / "meta")
    with open(esc / "meta" / "esc50.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("filename", "fold", "target", "category", "esc10", "src_file", "take"))
        writer.writerows(rows)

    mic = out / "openmic-2018"
    with open(os.path.join(root, "events", "classes.txt")) as f:
        classes = [line.strip() for line in f if line.strip()]
    with open(os.path.join(root, "events", "metadata", "train_weak.tsv"), newline="") as f:
        weak = list(csv.DictReader(f, delimiter="\t"))[:40]
    keys, soft, mask = [], np.zeros((len(weak), len(classes)), np.float32), np.zeros((len(weak), len(classes)), bool)
    for i, row in enumerate(weak):
        key = f"{i:03d}_{i * 3840:06d}"
        wave, rate = sf.read(os.path.join(root, "events", "audio", "train", row["filename"]), dtype="float32")
        os.makedirs(mic / "audio" / key[:3], exist_ok=True)
        sf.write(str(mic / "audio" / key[:3] / f"{key}.ogg"), wave, rate, format="OGG", subtype="VORBIS")
        for label in filter(None, row["event_labels"].split(",")):
            soft[i, classes.index(label)] = rng.uniform(0.6, 1.0)
        mask[i, rng.choice(len(classes), 5, replace=False)] = True
        keys.append(key)
    np.savez(mic / "openmic-2018.npz", X=np.zeros((len(keys), 10, 128), np.uint8), Y_true=soft, Y_mask=mask,
             sample_key=np.array(keys))
    with open(mic / "class-map.json", "w") as f:
        json.dump({name: i for i, name in enumerate(classes)}, f)
    os.makedirs(mic / "partitions")
    for part, subset in (("train", keys[:30]), ("test", keys[30:])):
        with open(mic / "partitions" / f"split01_{part}.csv", "w") as f:
            f.write("\n".join(subset) + "\n")

    tau = out / "tau20"
    renamed = []
    for row in scenes[:: max(1, len(scenes) // 60)][:60]:
        scene, city, location, segment, snippet, device = os.path.basename(row["filename"])[:-4].split("-")
        name = f"audio/{scene}-{city}-{location}-{segment}{snippet}-{device}.wav"
        _link_audio(os.path.join(root, "scenes", row["filename"]), str(tau / name))
        renamed.append((name, scene, f"{city}-{location}", device))
    os.makedirs(tau / "evaluation_setup")
    with open(tau / "meta.csv", "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(("filename", "scene_label", "identifier", "source_label"))
        writer.writerows(renamed)
    for part, subset in (("fold1_train.csv", renamed[:45]), ("fold1_evaluate.csv", renamed[45:])):
        with open(tau / "evaluation_setup" / part, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(("filename", "scene_label"))
            writer.writerows((r[0], r[1]) for r in subset)
    return {"esc50": str(esc), "openmic": str(mic), "tau20": str(tau)}


@pytest.fixture(scope="session")
def downstream_h5(downstream_layouts, tmp_path_factory) -> dict:
    """The packed downstream sets: ``{"esc50": [5 fold files], "openmic": {train, test}, "tau20": {train, test}}``."""
    from datamodules.sources.esc50 import pack_esc50
    from datamodules.sources.openmic import pack_openmic
    from datamodules.sources.tau20 import pack_tau20

    out = str(tmp_path_factory.mktemp("downstream_h5"))
    return {
        "esc50": pack_esc50(downstream_layouts["esc50"], out, codec="pcm16", workers=0, progress=False),
        "openmic": pack_openmic(downstream_layouts["openmic"], out, codec="pcm16", workers=0, progress=False),
        "tau20": pack_tau20(downstream_layouts["tau20"], out, workers=0, progress=False),
    }
