"""`sonolab dir-pack`: a folder of impulse responses -> the files DIR augmentation loads."""
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from datamodules.augment.dir import DeviceImpulseResponse, convolve_truncated, load_impulse_responses
from datamodules.format.audio_io import resample
from datamodules.sources.micirp import IRPackError, pack_impulse_responses

GOOD = {  # source -> (rate, channels, seconds, subtype): decaying noise as MicIRP ships it
    "Altec_639.wav": (44100, 1, 0.40, "PCM_24"),
    "RCA_44BX.wav": (48000, 1, 0.34, "PCM_16"),
    "nested/Shure315.wav": (32000, 2, 0.50, "FLOAT"),  # stereo: mixed to mono by the channel mean
    "Toshiba_TypeK.flac": (22050, 1, 0.30, "PCM_16"),
}
BAD = {  # source -> kind
    "corrupt.wav": "unreadable",
    "empty_bytes.wav": "empty",
    "no_frames.wav": "empty",
    "silent.wav": "silent",
    "room_recording.wav": "too_long",
    "Altec_639.flac": "duplicate",
}


def _decaying_noise(rate: int, channels: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(round(rate * seconds))
    ir = rng.standard_normal((n, channels)) * np.exp(-np.arange(n) / (0.03 * rate))[:, None]
    ir[0] = 1.0
    return (0.8 * ir / np.abs(ir).max()).astype(np.float32)


def _write_good(root) -> None:
    for seed, (name, (rate, channels, seconds, subtype)) in enumerate(GOOD.items()):
        os.makedirs(os.path.dirname(root / name), exist_ok=True)
        sf.write(str(root / name), _decaying_noise(rate, channels, seconds, seed), rate, subtype=subtype)


@pytest.fixture
def ir_dir(tmp_path):
    """Four readable responses (44.1/48/32/22.05 kHz, one stereo, one nested, one flac), six bad files, a text file."""
    root = tmp_path / "MicIRP"
    _write_good(root)
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage, not a wave file")
    (root / "empty_bytes.wav").write_bytes(b"")
    sf.write(str(root / "no_frames.wav"), np.zeros(0, np.float32), 44100)
    sf.write(str(root / "silent.wav"), np.zeros(4410, np.float32), 44100)
    sf.write(str(root / "room_recording.wav"), _decaying_noise(8000, 1, 2.5, 9), 8000)
    sf.write(str(root / "Altec_639.flac"), _decaying_noise(44100, 1, 0.1, 10), 44100)
    (root / "readme.txt").write_text("not audio")
    (root / "._Altec_639.wav").write_bytes(b"macOS resource fork")
    return root


def _read_tsv(path):
    with open(path) as f:
        return [line.split("\t") for line in f.read().splitlines()]


def test_pack_is_what_dir_loads(ir_dir, tmp_path):
    out = tmp_path / "micirp"
    report = pack_impulse_responses(str(ir_dir), str(out))
    names = ["Altec_639.wav", "RCA_44BX.wav", "Toshiba_TypeK.wav", "nested/Shure315.wav"]
    assert [ir.name for ir in report.irs] == names
    assert [ir.source_rate for ir in report.irs] == [44100, 48000, 22050, 32000]
    assert [ir.samples for ir in report.irs] == [17640, 14994, 13230, 22050]  # ceil(n * 44100 / rate)
    assert {ir.status for ir in report.irs} == {"written"}
    assert report.errors_path == str(out / "errors.tsv")
    for name in names:
        info = sf.info(str(out / name))
        assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "FLOAT")

    # DIR's own loader gives exactly what it computes from the raw sources (same order, same samples)
    raw = tmp_path / "raw"
    _write_good(raw)
    packed_irs, raw_irs = load_impulse_responses(str(out), 44100), load_impulse_responses(str(raw), 44100)
    assert [h.numel() for h in packed_irs] == [ir.samples for ir in report.irs]
    assert all(torch.equal(a, b) for a, b in zip(packed_irs, raw_irs))
    assert [round(float(h.abs().max()), 6) for h in packed_irs] == [round(ir.peak, 6) for ir in report.irs]
    stereo = sf.read(str(ir_dir / "nested/Shure315.wav"), dtype="float32")[0]
    mono = resample(stereo.mean(axis=1), 32000, 44100)  # the stereo file: channel mean, then resampled
    np.testing.assert_allclose(packed_irs[3].numpy(), mono, atol=1e-7)

    manifest = _read_tsv(out / "irs.tsv")
    assert manifest[0] == ["name", "source", "source_rate", "sample_rate", "samples", "seconds", "peak"]
    assert manifest[4][:6] == ["nested/Shure315.wav", "nested/Shure315.wav", "32000", "44100", "22050", "0.5000"]

    # ... and the augmentation applies them to a batch: device-'a' rows convolved, the others untouched
    dir_aug = DeviceImpulseResponse(str(out), sample_rate=44100, p=1.0, target_device=0).train()
    assert dir_aug.bank.shape == (4, 22050)
    wave = torch.randn(3, 1, 4410)
    torch.manual_seed(1)
    out_wave = dir_aug(wave, torch.tensor([0, 1, 0]))
    torch.manual_seed(1)
    torch.rand(3)
    index = torch.randint(4, (3,))
    assert out_wave.shape == (3, 1, 4410)
    assert torch.equal(out_wave[1], wave[1])
    for row in (0, 2):
        h = packed_irs[int(index[row])]
        expected = convolve_truncated(wave[row], h[None])
        assert torch.allclose(out_wave[row], expected, atol=1e-5)


@pytest.mark.bad_input
def test_skipped_files_are_reported(ir_dir, tmp_path):
    report = pack_impulse_responses(str(ir_dir), str(tmp_path / "out"))
    rows = _read_tsv(tmp_path / "out" / "errors.tsv")
    assert rows[0] == ["filename", "kind", "message"]
    assert {r[0]: r[1] for r in rows[1:]} == BAD
    assert [(s, k) for s, k, _ in report.errors] == [(r[0], r[1]) for r in rows[1:]]
    messages = {r[0]: r[2] for r in rows[1:]}
    assert messages["empty_bytes.wav"] == "empty file (0 bytes)"
    assert messages["no_frames.wav"] == "no samples"
    assert messages["silent.wav"].startswith("silent (peak 0 < 1e-05)")
    assert messages["room_recording.wav"].startswith("2.50 s long, more than the 2 s allowed")
    assert messages["Altec_639.flac"] == \
        "its output name 'Altec_639.wav' is taken by 'Altec_639.wav'; rename one to pack both"
    assert messages["corrupt.wav"].startswith("unreadable audio")
    assert sorted(os.listdir(tmp_path / "out")) == ["Altec_639.wav", "RCA_44BX.wav", "Toshiba_TypeK.wav",
                                                    "errors.tsv", "irs.tsv", "nested"]
    # a longer limit lets the long file through
    report = pack_impulse_responses(str(ir_dir), str(tmp_path / "long"), max_seconds=3.0)
    assert "room_recording.wav" in [ir.name for ir in report.irs]


def test_rerun_is_idempotent_and_follows_the_sources(ir_dir, tmp_path):
    out = tmp_path / "out"
    pack_impulse_responses(str(ir_dir), str(out))
    before = {name: (out / name).read_bytes() for name in ("Altec_639.wav", "irs.tsv", "errors.tsv")}
    mtime = os.stat(out / "Altec_639.wav").st_mtime_ns
    report = pack_impulse_responses(str(ir_dir), str(out))
    assert {ir.status for ir in report.irs} == {"unchanged"} and report.removed == []
    assert {name: (out / name).read_bytes() for name in before} == before
    assert os.stat(out / "Altec_639.wav").st_mtime_ns == mtime
    assert "4 written" not in report.summary() and "0 written, 4 unchanged" in report.summary()

    # a source removed, one fixed, one changed: its output goes, the bad list shrinks, the changed one is rewritten
    shutil.rmtree(ir_dir / "nested")
    for name in ("corrupt.wav", "empty_bytes.wav", "no_frames.wav", "silent.wav", "room_recording.wav"):
        os.remove(ir_dir / name)
    os.remove(ir_dir / "Altec_639.flac")
    sf.write(str(ir_dir / "RCA_44BX.wav"), _decaying_noise(48000, 1, 0.2, 5), 48000)
    report = pack_impulse_responses(str(ir_dir), str(out))
    assert report.removed == ["nested/Shure315.wav"]
    assert [(ir.name, ir.status) for ir in report.irs] == [
        ("Altec_639.wav", "unchanged"), ("RCA_44BX.wav", "written"), ("Toshiba_TypeK.wav", "unchanged")]
    assert sorted(os.listdir(out)) == ["Altec_639.wav", "RCA_44BX.wav", "Toshiba_TypeK.wav", "irs.tsv"]
    assert len(load_impulse_responses(str(out), 44100)) == 3

    # another rate rewrites every file
    report = pack_impulse_responses(str(ir_dir), str(out), sample_rate=32000)
    assert {ir.status for ir in report.irs} == {"written"}
    assert [h.numel() for h in load_impulse_responses(str(out), 32000)] == [12800, 6400, 9600]


@pytest.mark.bad_input
def test_folder_errors(ir_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(IRPackError, match="does not exist"):
        pack_impulse_responses(str(tmp_path / "missing"), str(out))
    with pytest.raises(IRPackError, match="must not contain one another"):
        pack_impulse_responses(str(ir_dir), str(ir_dir / "packed"))
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    with pytest.raises(IRPackError, match=r"no audio files \(.wav/.flac"):
        pack_impulse_responses(str(tmp_path / "texts"), str(out))
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    sf.write(str(only_bad / "silent.wav"), np.zeros(100, np.float32), 44100)
    with pytest.raises(IRPackError, match=r"could be packed; see .*errors\.tsv"):
        pack_impulse_responses(str(only_bad), str(out))
    assert _read_tsv(out / "errors.tsv")[1][:2] == ["silent.wav", "silent"]
    # a response no pack wrote would be loaded by DIR: refused before anything is written
    sf.write(str(out / "stray.wav"), np.ones(10, np.float32), 44100)
    with pytest.raises(IRPackError, match=r"stray\.wav: not written by `sonolab dir-pack`"):
        pack_impulse_responses(str(ir_dir), str(out))
    assert sorted(os.listdir(out)) == ["errors.tsv", "stray.wav"]


def test_cli(ir_dir, tmp_path, capsys):
    from experiments.cli import main as sonolab

    out = tmp_path / "out"
    assert sonolab(["dir-pack", "--ir-dir", str(ir_dir), "--out-dir", str(out), "--sample-rate", "32000"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    peak = float(np.abs(sf.read(str(out / "Altec_639.wav"))[0]).max())  # the 0.8 spike, low-passed to 32 kHz
    assert lines[0] == f"Altec_639.wav\t44100 Hz\t0.400 s\tpeak {peak:.3f}\twritten" and peak < 0.8
    assert lines[-1] == f"4 impulse responses at 32000 Hz in {out} (4 written, 0 unchanged); 6 skipped, see " \
                        f"{out / 'errors.tsv'}"
    assert "sonolab dir-pack: skipped silent.wav: silent: silent (peak 0" in captured.err
    assert DeviceImpulseResponse(str(out), sample_rate=32000).bank.shape == (4, 16000)


@pytest.mark.bad_input
def test_cli_error_is_one_line(tmp_path, capsys):
    from experiments.cli import main as sonolab

    assert sonolab(["dir-pack", "--ir-dir", str(tmp_path / "nope"), "--out-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"sonolab dir-pack: error: impulse-response folder " \
                                      f"{str(tmp_path / 'nope')!r} does not exist\n"
