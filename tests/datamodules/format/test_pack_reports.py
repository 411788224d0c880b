"""What the packer had to change is reported in OUT.errors.tsv: events past the clip end, declared durations that
disagree with the audio, truncated files, float samples beyond full scale."""
import os
import re

import numpy as np
import pytest
import soundfile as sf

from datamodules.format.audio_io import read_audio_file
from datamodules.format.integrity import header_length, truncation_message
from datamodules.format.hdf5 import AudioH5
from datamodules.format.checks import ERRORS_SUFFIX, PackError
from datamodules.format.pack import PackItem, pack
from datamodules.format.parts import WORK_DIR_SUFFIX
from experiments.commands import sed_pack
from experiments.commands.pack import main

CLASSES = ["bell", "chirp", "hum"]


def _wav(path, seconds: float, rate: int = 16000, peak: float = 0.5, subtype: str = "PCM_16") -> str:
    t = np.arange(int(round(seconds * rate))) / rate
    sf.write(str(path), (peak * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype=subtype)
    return str(path)


def _pack(items, out, **kwargs):
    kwargs = {"codec": "pcm16", "sample_rate": 16000, "workers": 0, "progress": False, "class_names": CLASSES,
              **kwargs}
    return pack(items, str(out), **kwargs)


def _rows(path):
    with open(path) as f:
        return [tuple(line.split("\t")) for line in f.read().splitlines()]


def _event_items(folder):
    a = _wav(folder / "a.wav", 1.0)
    b = _wav(folder / "b.wav", 1.0)
    c = _wav(folder / "c.wav", 1.0)
    return [
        PackItem(a, "a.wav", events=[(0.2, 0.5, 0, 1.0), (0.8, 1.6, 1, 1.0), (1.2, 1.5, 2, 1.0), (0.9, 1.005, 0, 1.0)]),
        PackItem(b, "b.wav", duration=1.5, events=[(1.2, 1.4, 0, 1.0), (1.4, 2.0, 2, 0.5)]),
        PackItem(c, "c.wav", duration=1.004, events=[(0.5, 1.004, 1, 1.0)]),  # within 10 ms: nothing to say
    ]


EVENT_ROWS = [
    ("filename", "kind", "message"),
    ("a.wav", "clipped_event", "event 'chirp' 0.8-1.6 s clipped to the 1.0 s clip"),
    ("a.wav", "dropped_event", "event 'hum' 1.2-1.5 s dropped: it starts at or after the end of the 1.0 s clip"),
    ("b.wav", "duration_mismatch", "declared duration 1.5 s, the audio lasts 1.0 s (the declared value is stored)"),
    ("b.wav", "clipped_event", "event 'hum' 1.4-2.0 s clipped to the 1.5 s clip"),
]


@pytest.mark.bad_input
def test_events_past_the_clip_end_are_cut_or_dropped_and_reported(tmp_path):
    items = _event_items(tmp_path)
    out = tmp_path / "o.h5"
    report = _pack(items, out)
    assert (report.packed, report.skipped, report.errors) == (3, 0, [])
    assert report.warnings == [r for r in EVENT_ROWS[1:]]
    assert report.errors_path == str(out) + ERRORS_SUFFIX and _rows(report.errors_path) == EVENT_ROWS
    assert report.summary().endswith("; packed with changes: 2 clipped_event, 1 dropped_event, 1 duration_mismatch; "
                                      f"details in {out}{ERRORS_SUFFIX}")
    h5 = AudioH5(str(out))
    np.testing.assert_allclose(h5.durations, [1.0, 1.5, 1.004], atol=1e-6)  # declared durations are kept
    expected = [[(0.2, 0.5, 0), (0.8, 1.0, 1), (0.9, 1.0, 0)], [(1.2, 1.4, 0), (1.4, 1.5, 2)], [(0.5, 1.004, 1)]]
    for i, events in enumerate(expected):
        got = h5.events(i)
        np.testing.assert_allclose(np.stack([got["onset"], got["offset"]], 1), [e[:2] for e in events], atol=1e-6)
        np.testing.assert_array_equal(got["class"], [e[2] for e in events])
    np.testing.assert_allclose(h5.events(1)["confidence"], [1.0, 0.5])


@pytest.mark.bad_input
def test_strict_makes_label_problems_errors_and_keeps_the_work(tmp_path, capsys):
    items = _event_items(tmp_path)
    out = tmp_path / "o.h5"
    with pytest.raises(PackError) as caught:
        _pack(items, out, strict=True)
    assert str(caught.value) == (f"clip 'a.wav': event 'chirp' 0.8-1.6 s clipped to the 1.0 s clip (strict: 4 such "
                                 f"problems in {out}{ERRORS_SUFFIX})")
    assert not out.exists() and _rows(str(out) + ERRORS_SUFFIX) == EVENT_ROWS
    assert sorted(os.listdir(str(out) + WORK_DIR_SUFFIX))[:1] == ["chunk-000000.npz"]  # encoded audio is kept
    assert _pack(items, out).reused == 3

    table = tmp_path / "strong.tsv"
    table.write_text("filename\tonset\toffset\tevent_label\na.wav\t0.5\t1.25\tbell\nb.wav\t0.1\t0.2\tbell\n")
    argv = ["--audio-dir", str(tmp_path), "--labels", str(table), "--out", str(tmp_path / "cli.h5"),
            "--codec", "pcm16", "--sample-rate", "16000", "--workers", "0", "--no-progress"]
    assert main([*argv, "--strict"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"sonolab pack: error: clip 'a.wav': event 'bell' 0.5-1.25 s clipped to the 1.0 s clip (strict: 1 such "
        f"problem in {tmp_path / 'cli.h5'}{ERRORS_SUFFIX})"
    ]
    assert main(argv) == 0
    assert "packed with changes: 1 clipped_event" in capsys.readouterr().out
    np.testing.assert_allclose(AudioH5(str(tmp_path / "cli.h5")).events(0)["offset"], [1.0])


def _truncate(path: str, fraction: float) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * fraction))


@pytest.mark.bad_input
def test_truncated_wav_is_skipped_unless_allowed(tmp_path, capsys):
    good = _wav(tmp_path / "good.wav", 1.0)
    cut = _wav(tmp_path / "cut.wav", 1.0)
    with open(cut, "r+b") as f:
        f.truncate(44 + 2 * 8000)  # header + 0.5 s of the 1.0 s the header declares
    long = _wav(tmp_path / "long.wav", 2.0)
    with open(long, "r+b") as f:
        f.truncate(44 + 2 * 19200)  # 1.2 s of 2.0 s
    items = [PackItem(good, "good.wav"), PackItem(cut, "cut.wav"), PackItem(long, "head", start=0.0, end=1.0),
             PackItem(long, "tail", start=1.0, end=2.0)]  # the window before the cut is intact
    message = "truncated file: its header declares {:.3f} s, the audio stops at {:.3f} s"
    out = tmp_path / "o.h5"
    report = _pack(items, out)
    skip = "; skipped (--allow-truncated packs what decodes)"
    assert report.errors == [("cut.wav", message.format(1.0, 0.5) + skip), ("tail", message.format(2.0, 1.2) + skip)]
    assert _rows(report.errors_path)[1:] == [("cut.wav", "skipped", message.format(1.0, 0.5) + skip),
                                             ("tail", "skipped", message.format(2.0, 1.2) + skip)]
    assert list(AudioH5(str(out)).names) == ["good.wav", "head"]

    report = _pack(items, out, allow_truncated=True)
    assert (report.packed, report.skipped) == (4, 0)
    assert report.warnings == [("cut.wav", "truncated", message.format(1.0, 0.5)),
                               ("tail", "truncated", message.format(2.0, 1.2))]
    np.testing.assert_allclose(AudioH5(str(out)).durations, [1.0, 0.5, 1.0, 0.2], atol=1e-6)

    table = tmp_path / "t.tsv"
    table.write_text("filename\tevent_labels\ngood.wav\tbell\ncut.wav\tbell\n")
    argv = ["--audio-dir", str(tmp_path), "--labels", str(table), "--out", str(tmp_path / "cli.h5"), "--codec",
            "flac", "--sample-rate", "16000", "--workers", "0", "--no-progress"]
    assert main([*argv, "--allow-truncated"]) == 0
    assert "packed 2 clips" in capsys.readouterr().out and len(AudioH5(str(tmp_path / "cli.h5"))) == 2


@pytest.mark.bad_input
def test_truncated_mp3_is_found_from_its_xing_header(tmp_path):
    path = str(tmp_path / "x.mp3")
    t = np.arange(32000) / 16000
    sf.write(path, (0.4 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000, format="MP3")
    assert header_length(path).frames == 32000  # frame count minus the LAME tag's encoder delay and padding
    wave, rate = read_audio_file(path)
    assert truncation_message(path, 0.0, None, wave.size, rate) == ""
    short = str(tmp_path / "short.mp3")  # 0.1 s: fewer samples than the encoder's delay and padding
    sf.write(short, np.zeros(800, np.float32), 8000, format="MP3")
    assert truncation_message(short, 0.0, None, read_audio_file(short)[0].size, 8000) == ""

    _truncate(path, 0.5)
    wave, rate = read_audio_file(path)
    assert 0.6 < wave.size / rate < 1.4
    assert truncation_message(path, 0.0, None, wave.size, rate) == (
        f"truncated file: its header declares 2.000 s, the audio stops at {wave.size / rate:.3f} s")
    report = _pack([PackItem(path, "x.mp3")], tmp_path / "o.h5", allow_truncated=True)
    assert [w[:2] for w in report.warnings] == [("x.mp3", "truncated")]
    assert AudioH5(str(tmp_path / "o.h5")).durations[0] == pytest.approx(wave.size / rate, abs=1e-4)


@pytest.mark.bad_input
def test_header_length_of_wav_files(tmp_path):
    stereo = str(tmp_path / "s.wav")
    sf.write(stereo, np.zeros((1000, 2), np.float32), 8000, subtype="PCM_24")
    assert tuple(header_length(stereo)) == (1000, 1000, 0)
    streamed = bytearray(open(stereo, "rb").read())
    at = streamed.index(b"data") + 4
    streamed[at : at + 4] = b"\xff\xff\xff\xff"  # a writer that did not know the length
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert header_length(str(tmp_path / "streamed.wav")) is None
    assert header_length(str(tmp_path / "absent.wav")) is None


@pytest.mark.bad_input
def test_float_wav_beyond_full_scale_is_clipped_and_reported(tmp_path):
    loud = _wav(tmp_path / "loud.wav", 0.5, peak=1.7, subtype="FLOAT")
    full = _wav(tmp_path / "full.wav", 0.5, peak=1.0)  # int16 cannot go beyond: nothing to report
    out = tmp_path / "o.h5"
    report = _pack([PackItem(loud, "loud.wav"), PackItem(full, "full.wav")], out)
    assert report.warnings == [("loud.wav", "clipped_audio",
                                "float samples beyond [-1, 1] (peak 1.700) clipped to [-1, 1]")]
    assert _rows(str(out) + ERRORS_SUFFIX)[1] == ("loud.wav", "clipped_audio",
                                                  "float samples beyond [-1, 1] (peak 1.700) clipped to [-1, 1]")
    source, _ = read_audio_file(loud)
    stored = AudioH5(str(out)).waveform(0)
    assert np.abs(stored).max() == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(stored, np.clip(source, -1, 1), atol=1e-4)  # int16 = round(x * 32767), read / 32768


def _desed_validation(root, seconds: float, declared: float, onset: float, offset: float) -> None:
    audio = root / "audio" / "validation" / "validation_16k"
    meta = root / "metadata" / "validation"
    audio.mkdir(parents=True)
    meta.mkdir(parents=True)
    _wav(audio / "v1.wav", seconds)
    (meta / "validation.tsv").write_text(f"filename\tonset\toffset\tevent_label\nv1.wav\t{onset}\t{offset}\tDog\n")
    (meta / "validation_durations.tsv").write_text(f"filename\tduration\nv1.wav\t{declared}\n")


@pytest.mark.bad_input
def test_sed_pack_strict_covers_events_past_the_end(tmp_path, capsys):
    root = tmp_path / "desed"
    _desed_validation(root, seconds=1.0, declared=1.0, onset=0.5, offset=1.5)
    argv = ["--desed-root", str(root), "--out-dir", str(tmp_path / "out"), "--sets", "validation", "--codec",
            "pcm16", "--workers", "0", "--no-progress"]
    out = tmp_path / "out" / "desed_validation.h5"
    assert sed_pack.main([*argv, "--strict"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"sonolab sed-pack: error: clip 'v1.wav': event 'Dog' 0.5-1.5 s clipped to the 1.0 s clip (strict: 1 such "
        f"problem in {out}{ERRORS_SUFFIX})"
    ]
    assert sed_pack.main(argv) == 0
    assert re.search(r"packed 1 clips \(0 encoded now, 1 resumed\).*packed with changes: 1 clipped_event",
                     capsys.readouterr().out)
    assert _rows(str(out) + ERRORS_SUFFIX)[1] == ("v1.wav", "clipped_event",
                                                 "event 'Dog' 0.5-1.5 s clipped to the 1.0 s clip")
    np.testing.assert_allclose(AudioH5(str(out)).events(0)["offset"], [1.0])
