"""The packer (datamodules/format/pack.py) and the label tables (datamodules/format/label_tables.py)."""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import soundfile as sf

import datamodules.format.encoding as encoding
from datamodules.format.audio_io import CODECS, read_audio_file, resample
from datamodules.format.hdf5 import AudioH5
from datamodules.format.label_tables import read_class_list, read_label_tables
from datamodules.format.checks import ERRORS_SUFFIX
from datamodules.format.pack import PackItem, pack
from datamodules.format.parts import WORK_DIR_SUFFIX
from experiments.commands.pack import main

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CLASSES = ["bell", "chirp", "hum"]
SCENES = ["park", "tram"]
DEVICES = ["a", "b"]
CITIES = ["lyon", "paris"]


def _tone(sr: int, seconds: float, freq: float, amp: float = 0.45) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def _write_sources(folder, n: int = 6, seconds: float = 1.0):
    """n files at several rates and formats (one stereo), with varied metadata; returns PackItems."""
    os.makedirs(folder, exist_ok=True)
    rates = [16000, 22050, 32000, 44100, 48000, 8000]
    items = []
    for i in range(n):
        sr = rates[i % len(rates)]
        x = _tone(sr, seconds + 0.1 * i, 300 + 70 * i)
        ext = "flac" if i % 3 == 2 else "wav"
        name = f"clip_{i:03d}.{ext}"
        if i == 1:
            x = np.stack([x, x], axis=1)  # stereo is mixed down
        sf.write(os.path.join(folder, name), x, sr)
        items.append(
            PackItem(
                path=os.path.join(folder, name),
                name=name,
                weak=sorted({i % 3, (i + 1) % 3}) if i % 4 else [],
                events=[(0.1 * i, 0.1 * i + 0.5, i % 3, 1.0), (0.05, 0.25, (i + 2) % 3, 0.5)] if i % 2 == 0 else [],
                scene=i % 2,
                device=(i // 2) % 2 if i != 5 else -1,
                city=i % 2,
                captions=[f"caption {j} of clip {i}" for j in range(i % 3)],
            )
        )
    return items


def _pack(items, out, **kwargs):
    kwargs = {"codec": "pcm16", "sample_rate": 32000, "workers": 2, "progress": False, **kwargs}
    vocab = {"class_names": CLASSES, "scene_names": SCENES, "device_names": DEVICES, "city_names": CITIES}
    return pack(items, str(out), **vocab, **kwargs)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return _write_sources(tmp_path_factory.mktemp("sources"))


def _check_metadata(h5: AudioH5, items) -> None:
    assert list(h5.names) == [it.name for it in items]
    assert h5.class_names == CLASSES and h5.scene_names == SCENES
    assert h5.device_names == DEVICES and h5.city_names == CITIES
    for i, it in enumerate(items):
        assert list(np.nonzero(h5.weak_target(i))[0]) == it.weak
        ev = h5.events(i)
        np.testing.assert_allclose(ev["onset"], [e[0] for e in it.events], atol=1e-6)
        np.testing.assert_allclose(ev["offset"], [e[1] for e in it.events], atol=1e-6)
        np.testing.assert_array_equal(ev["class"], [e[2] for e in it.events])
        np.testing.assert_allclose(ev["confidence"], [e[3] for e in it.events])
        assert h5.captions(i) == it.captions
        assert (h5.label("scene", i), h5.label("device", i), h5.label("city", i)) == (it.scene, it.device, it.city)


@pytest.mark.parametrize("codec,sample_rate", [(c, 32000) for c in CODECS] + [("pcm16", 16000), ("flac", 44100)])
def test_round_trip(codec, sample_rate, sources, tmp_path):
    out = tmp_path / "out.h5"
    report = _pack(sources, out, codec=codec, sample_rate=sample_rate)
    assert (report.packed, report.skipped, report.encoded, report.reused) == (len(sources), 0, len(sources), 0)
    assert report.errors_path is None and not os.path.exists(str(out) + ERRORS_SUFFIX)
    assert not os.path.exists(str(out) + WORK_DIR_SUFFIX) and not os.path.exists(str(out) + ".tmp")
    h5 = AudioH5(str(out))
    assert h5.codec == codec and h5.sample_rate == sample_rate
    _check_metadata(h5, sources)
    for i, it in enumerate(sources):
        wave, rate = read_audio_file(it.path)
        ref = resample(wave, rate, sample_rate)
        got = h5.waveform(i)
        assert h5.durations[i] == pytest.approx(len(ref) / sample_rate, abs=1e-6)
        assert len(got) == len(ref)
        if codec == "pcm16":
            assert np.max(np.abs(got - ref)) <= 1 / 32767
        elif codec == "flac":
            assert np.max(np.abs(got - ref)) <= 1e-4
        else:
            snr = 10 * np.log10(np.sum(ref**2) / np.sum((got - ref) ** 2))
            assert snr > 20, f"{codec} clip {i}: SNR {snr:.1f} dB"


@pytest.mark.bad_input
def test_corrupt_files_are_logged_and_skipped(sources, tmp_path):
    good = sources[:3]
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "garbage.wav").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with open(good[0].path, "rb") as f:
        (folder / "truncated.wav").write_bytes(f.read()[:30])  # cut inside the header
    bad = [PackItem(str(folder / n), n) for n in ("empty.wav", "garbage.wav", "truncated.wav")]
    bad.append(PackItem(str(folder / "absent.wav"), "absent.wav"))
    items = [bad[0], good[0], bad[1], good[1], bad[2], good[2], bad[3]]
    out = tmp_path / "out.h5"
    report = _pack(items, out)
    assert (report.packed, report.skipped) == (3, 4)
    assert [name for name, _ in report.errors] == ["empty.wav", "garbage.wav", "truncated.wav", "absent.wav"]
    lines = open(report.errors_path).read().splitlines()
    assert report.errors_path == str(out) + ERRORS_SUFFIX
    assert lines[0] == "filename\tkind\tmessage" and len(lines) == 5
    assert lines[1].startswith("empty.wav\tskipped\t") and "empty" in lines[1].split("\t")[2]
    assert all(len(line.split("\t")) == 3 for line in lines)
    assert [line.split("\t")[1] for line in lines[1:]] == ["skipped"] * 4
    _check_metadata(AudioH5(str(out)), good)
    # A later clean pack to the same path removes the stale log.
    _pack(good, out)
    assert not os.path.exists(str(out) + ERRORS_SUFFIX)


@pytest.mark.bad_input
def test_pack_argument_errors(sources, tmp_path):
    with pytest.raises(ValueError, match="codec"):
        _pack(sources, tmp_path / "x.h5", codec="wav")
    with pytest.raises(ValueError, match="duplicate"):
        _pack([sources[0], sources[0]], tmp_path / "x.h5")
    with pytest.raises(ValueError, match="no clip could be read"):
        _pack([PackItem(str(tmp_path / "nope.wav"), "nope.wav")], tmp_path / "x.h5", workers=0)


def _assert_same_file(a, b) -> None:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert dict(fa.attrs).keys() == dict(fb.attrs).keys()
        for key in fa.attrs:
            np.testing.assert_array_equal(fa.attrs[key], fb.attrs[key])
        names = []
        fa.visit(names.append)
        other = []
        fb.visit(other.append)
        assert names == other
        for key in names:
            if isinstance(fa[key], h5py.Dataset):
                x, y = fa[key][()], fb[key][()]
                if x.dtype == object:  # vlen audio rows, caption strings
                    assert len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y)), key
                else:
                    np.testing.assert_array_equal(x, y, err_msg=key)


@pytest.mark.bad_input
def test_resume_in_process(sources, tmp_path, monkeypatch):
    """An interruption keeps the finished clips; a rerun encodes only the rest; another codec starts afresh."""
    out = tmp_path / "out.h5"
    real = encoding.encode_file
    calls = []

    def interrupted(task):
        if len(calls) == 4:
            raise KeyboardInterrupt
        calls.append(task)
        return real(task)

    monkeypatch.setattr(encoding, "encode_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _pack(sources, out, workers=0, chunk_items=3)
    assert not out.exists()
    parts = sorted(os.listdir(str(out) + WORK_DIR_SUFFIX))
    assert parts == ["chunk-000000.npz", "chunk-000001.npz", "manifest.json"]  # 3 by count, 1 flushed on interrupt
    monkeypatch.setattr(encoding, "encode_file", real)

    report = _pack(sources, out, workers=0, chunk_items=3)
    assert (report.reused, report.encoded, report.packed) == (4, len(sources) - 4, len(sources))
    _pack(sources, tmp_path / "ref.h5", workers=0)
    _assert_same_file(out, tmp_path / "ref.h5")

    # Leftovers of another codec are not reused.
    monkeypatch.setattr(encoding, "encode_file", interrupted)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        _pack(sources, out, workers=0, chunk_items=3)
    monkeypatch.setattr(encoding, "encode_file", real)
    assert _pack(sources, out, workers=0, codec="flac").reused == 0


@pytest.mark.bad_input
def test_resume_skips_changed_source(sources, tmp_path, monkeypatch):
    folder = tmp_path / "src"
    items = _write_sources(folder, n=4)
    out = tmp_path / "out.h5"
    real = encoding.encode_file

    def interrupted(task):
        if task[0] == 3:  # task[0]: the item's index
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(encoding, "encode_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _pack(items, out, workers=0)
    monkeypatch.setattr(encoding, "encode_file", real)
    sf.write(items[0].path, _tone(16000, 0.5, 1000), 16000)  # the file changed since it was encoded
    report = _pack(items, out, workers=0)
    assert (report.reused, report.encoded) == (2, 2)
    assert len(AudioH5(str(out)).waveform(0)) == 16000


_CHILD = """
import sys
from experiments.commands.pack import main
sys.exit(main(sys.argv[1:]))
"""


def _write_tables(folder, items, classes_file=True):
    """Writes audio-table pairs for the items: strong, weak-free, captions, TAU-like meta."""
    strong = ["filename\tonset\toffset\tevent_label"]
    captions = ["filename\tcaption"]
    meta = ["filename\tscene_label\tidentifier\tsource_label"]
    for it in items:
        name = os.path.basename(it.path)
        strong += [f"{name}\t{on}\t{off}\t{CLASSES[c]}" for on, off, c, _ in it.events] or [f"{name}\t\t\t"]
        captions += [f"{name}\t{c}" for c in it.captions]
        meta.append(f"{name}\t{SCENES[it.scene]}\t{CITIES[it.city]}-{7 + it.city}\t{DEVICES[max(it.device, 0)]}")
    paths = {}
    for key, lines in (("strong", strong), ("captions", captions), ("meta", meta)):
        paths[key] = str(folder / f"{key}.tsv")
        with open(paths[key], "w") as f:
            f.write("\n".join(lines) + "\n")
    if classes_file:
        paths["classes"] = str(folder / "classes.txt")
        with open(paths["classes"], "w") as f:
            f.write("\n".join(CLASSES) + "\n")
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.bad_input
def test_resume_after_killed_process(sig, tmp_path):
    """Kill a packing process after a few chunks; the rerun reuses them and gives the uninterrupted result."""
    folder = tmp_path / "audio"
    items = _write_sources(folder, n=40, seconds=2.0)
    tables = _write_tables(tmp_path, items)
    out = str(tmp_path / "out.h5")
    argv = ["--audio-dir", str(folder), "--labels", tables["strong"], "--labels", tables["captions"],
            "--out", out, "--codec", "mp3", "--classes", tables["classes"], "--workers", "1",
            "--chunk-items", "3", "--no-progress"]
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *argv], cwd=REPO, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    parts = out + WORK_DIR_SUFFIX
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if os.path.isdir(parts) and sum(n.startswith("chunk-") and n.endswith(".npz") for n in os.listdir(parts)) >= 2:
            break
        time.sleep(0.005)
    assert child.poll() is None, child.stdout.read().decode()
    if sig == signal.SIGKILL:
        os.killpg(child.pid, sig)  # the whole group: the packer and its worker
    else:
        os.kill(child.pid, sig)  # only the packer: it must stop its worker and save what it has
    rc = child.wait(timeout=30)
    output = child.stdout.read().decode()
    assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else 130), output
    assert not os.path.exists(out)
    chunks = [n for n in os.listdir(parts) if n.endswith(".npz")]
    with_work = sum(len(np.load(os.path.join(parts, n))["names"]) for n in chunks)
    assert with_work >= len(chunks) >= 2  # a loaded machine may also publish a small chunk after flush_seconds

    classes = read_class_list(tables["classes"])
    labels = read_label_tables([tables["strong"], tables["captions"]], str(folder), classes=classes)
    kwargs = {"codec": "mp3", "class_names": labels.class_names, "progress": False, "workers": 2}
    report = pack(labels.items, out, **kwargs)
    assert report.reused == with_work and report.encoded == len(items) - with_work and report.packed == len(items)
    assert not os.path.exists(parts)
    pack(labels.items, str(tmp_path / "ref.h5"), **kwargs)
    _assert_same_file(out, tmp_path / "ref.h5")



# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
def test_cli_round_trip(tmp_path, capsys):
    folder = tmp_path / "audio"
    items = _write_sources(folder, n=5)
    tables = _write_tables(tmp_path, items)
    out = str(tmp_path / "packed" / "out.h5")
    rc = main(["--audio-dir", str(folder), "--labels", tables["strong"], "--labels", tables["captions"],
               "--labels", tables["meta"], "--out", out, "--codec", "flac", "--sample-rate", "16000",
               "--classes", tables["classes"], "--workers", "2", "--no-progress"])
    assert rc == 0
    assert "packed 5 clips" in capsys.readouterr().out
    h5 = AudioH5(out)
    assert h5.codec == "flac" and h5.sample_rate == 16000 and h5.class_names == CLASSES
    assert h5.scene_names == SCENES and h5.city_names == CITIES
    for i, it in enumerate(items):
        assert h5.captions(i) == it.captions
        np.testing.assert_array_equal(h5.events(i)["class"], [e[2] for e in it.events])
        # weak labels derive from the strong table (every event here has confidence 1 in the table)
        assert list(np.nonzero(h5.weak_target(i))[0]) == sorted({e[2] for e in it.events})
        assert h5.scene_names[h5.label("scene", i)] == SCENES[it.scene]
        assert h5.waveform(i).size == pytest.approx(h5.durations[i] * 16000)


@pytest.mark.bad_input
def test_cli_errors(tmp_path, capsys):
    folder = tmp_path / "audio"
    folder.mkdir()
    table = tmp_path / "t.tsv"
    table.write_text("filename\tevent_labels\nx.wav\tdog\n")
    table = str(table)
    assert main(["--audio-dir", str(folder), "--labels", table, "--out", str(tmp_path / "o.h5")]) == 1
    assert "x.wav" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--labels", table])
