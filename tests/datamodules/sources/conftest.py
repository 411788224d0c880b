"""Tiny DESED and MAESTRO trees in the DCASE'24 layouts, and their packed files."""
import os

import numpy as np
import pytest
import soundfile as sf

from datamodules.sources import desed, maestro


SR_MAESTRO = 44100
MAESTRO_NOTES = {  # recording -> (seconds, annotation lines)
    "cafe_restaurant_00": (25.5, ["2.0\t4.5\tpeople talking\t0.8", "9.5\t14.0\tcar\t0.4",
                                  "20.0\t25.5\tbirds_singing\t1.0"]),
    # events only near both ends: the hop 1 s chunks starting at 2..9 s have none
    "cafe_restaurant_06": (21.0, ["0.5\t2.0\tfootsteps\t0.6", "19.0\t21.0\tdoor opens/closes\t0.2"]),
    "cafe_restaurant_04": (17.3, ["0.0\t17.3\twind_blowing\t0.7"]),  # a dev-test recording
}


def _noise(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * (200 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _write(path, seconds: float, rate: int, seed: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(str(path), _noise(seconds, rate, seed), rate)


def _table(path, lines) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def desed_root(tmp_path_factory):
    """A tiny DCASE'24 DESED tree: synthetic train (44.1 kHz originals in dcase_synth/ only), weak (one listed
    file never downloaded), unlabeled (with a stray text file), validation with durations."""
    root = tmp_path_factory.mktemp("desed")
    synth = root / "dcase_synth"
    _write(synth / "audio/train/synthetic21_train/soundscapes/s0.wav", 2.0, 44100, 1)
    _write(synth / "audio/train/synthetic21_train/soundscapes/s1.wav", 1.5, 44100, 2)
    _table(synth / "metadata/train/synthetic21_train/soundscapes.tsv", [
        "filename\tonset\toffset\tevent_label", "s0.wav\t0.1\t0.9\tDog", "s0.wav\t0.5\t1.8\tSpeech", "s1.wav\t\t\t"])
    _write(root / "audio/train/weak_16k/w0.wav", 1.0, 16000, 3)
    _write(root / "audio/train/weak_16k/w1.wav", 1.0, 16000, 4)
    _table(root / "metadata/train/weak.tsv", [
        "filename\tevent_labels", "w0.wav\tDog,Cat", "w1.wav\tSpeech", "w2.wav\tFrying"])
    _write(root / "audio/train/unlabel_in_domain_16k/u0.wav", 1.0, 16000, 5)
    _write(root / "audio/train/unlabel_in_domain_16k/u1.flac", 1.2, 16000, 6)
    _table(root / "audio/train/unlabel_in_domain_16k/notes.txt", ["not audio"])
    _write(root / "audio/validation/validation_16k/v0.wav", 3.0, 16000, 7)
    _write(root / "audio/validation/validation_16k/v1.wav", 2.0, 16000, 8)
    _table(root / "metadata/validation/validation.tsv", [
        "filename\tonset\toffset\tevent_label", "v0.wav\t0.0\t3.0\tVacuum_cleaner", "v1.wav\t0.25\t1.5\tCat"])
    _table(root / "metadata/validation/validation_durations.tsv", [
        "filename\tduration", "v0.wav\t3.0", "v1.wav\t2.004"])
    return str(root)


@pytest.fixture(scope="module")
def maestro_root(tmp_path_factory):
    """MAESTRO real as the DCASE'24 baseline downloads it, with 3 recordings at 44.1 kHz and one unlisted one."""
    root = tmp_path_factory.mktemp("maestro")
    dev = root / "MAESTRO_original" / "maestro_dev"
    for seed, (name, (seconds, lines)) in enumerate(MAESTRO_NOTES.items()):
        _write(dev / "development_audio" / "cafe_restaurant" / f"{name}.wav", seconds, SR_MAESTRO, seed)
        _table(dev / "development_annotation" / "cafe_restaurant" / f"{name}.txt", lines)
    _write(dev / "development_audio" / "extra" / "harbour_01.wav", 1.0, SR_MAESTRO, 9)
    return str(root)


@pytest.fixture(scope="module")
def maestro_packed(maestro_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("maestro_out")
    reports = maestro.pack_maestro(maestro_root, str(out), codec="pcm16", workers=0, progress=False)
    return str(out), reports


@pytest.fixture(scope="module")
def desed_packed(desed_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("desed_out")
    reports = desed.pack_desed(desed_root, str(out), codec="pcm16", workers=0, progress=False)
    return str(out), reports


TAU_CLIPS = ("bus-lyon-1-10-0-a.wav", "park-paris-2-20-1-b.wav", "tram-lyon-3-30-0-s1.wav", "park-lyon-4-40-2-c.wav")


@pytest.fixture()
def tiny_tau(tmp_path):
    """A function writing a tiny TAU22 (``layout="tau22"``) or TAU20 (``"tau20"``, five-field names) development
    folder of four 0.1 s clips at 44.1 kHz; returns the folder."""

    def build(layout: str = "tau22") -> str:
        root = tmp_path / layout
        fields = [n.split("-") for n in TAU_CLIPS]
        names = ["audio/" + "-".join(f if layout == "tau22" else f[:4] + f[5:]) for f in fields]  # TAU20: no snippet
        rows = []
        for seed, name in enumerate(names):
            _write(root / name, 0.1, 44100, seed)
            scene, city, location = os.path.basename(name).split("-")[:3]
            rows.append(f"{name}\t{scene}\t{city}-{location}\t{name[:-4].rsplit('-', 1)[1]}")
        _table(root / "meta.csv", ["filename\tscene_label\tidentifier\tsource_label", *rows])
        if layout == "tau22":
            _table(root / "split100.csv", ["filename\tscene_label", *(r.rsplit("\t", 2)[0] for r in rows[:3])])
            _table(root / "split25.csv", ["filename\tscene_label", rows[0].rsplit("\t", 2)[0]])
            _table(root / "test.csv", ["filename", names[3]])
        else:
            _table(root / "evaluation_setup" / "fold1_train.csv", ["filename\tscene_label",
                                                                   *(r.rsplit("\t", 2)[0] for r in rows[:3])])
            _table(root / "evaluation_setup" / "fold1_evaluate.csv", ["filename\tscene_label",
                                                                      rows[3].rsplit("\t", 2)[0]])
        return str(root)

    return build
