"""`sonolab embed`: per-clip scene/timestamp embeddings, resumable, corrupt clips skipped."""
import os

import h5py
import numpy as np
import pytest
import torch

from experiments.cli import main
from tests.conftest import write_tone_h5


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_tone_h5(str(tmp_path_factory.mktemp("emb") / "clips.h5"), 5, seed=4, seconds=0.5)


def test_scene_and_timestamp_embeddings_per_clip(clips, tmp_path):
    out = str(tmp_path / "emb.h5")
    assert main(["embed", "--model", "mn04_as", "--h5", clips, "--out", out, "--timestamps", "--chunk-size", "2"]) == 0
    with h5py.File(out) as f:
        assert [n.decode() for n in f["audio_name"][()]] == [f"clip_{i:04d}.wav" for i in range(5)]
        assert f["scene"].shape == (5, 320)  # blocks+mel of mn04
        index = f["timestamp/index"][()]
        assert index[0] == 0 and len(index) == 6
        assert f["timestamp/embedding"].shape == (index[-1], 320)
        np.testing.assert_allclose(f["timestamp/time_ms"][: index[1]], np.arange(index[1]) * 50.0)
    assert not os.path.exists(out + ".parts")


def test_resume_skips_finished_chunks_and_npz_output(clips, tmp_path, monkeypatch):
    out = str(tmp_path / "emb.npz")
    main(["embed", "--model", "mn04_as", "--h5", clips, "--out", out, "--chunk-size", "2", "--recipe", "mel"])
    reference = np.load(out, allow_pickle=True)["scene"]
    os.makedirs(out + ".parts")
    # a finished chunk from an interrupted run is reused, not recomputed
    import experiments.embed as embed

    calls = []
    original = embed._embed_chunk
    monkeypatch.setattr(embed, "_embed_chunk", lambda *a: calls.append(a[3]) or original(*a))
    embed._save_chunk(out + ".parts", 0, ["clip_0000.wav", "clip_0001.wav"], list(reference[:2]), [], [], [])
    os.remove(out)
    main(["embed", "--model", "mn04_as", "--h5", clips, "--out", out, "--chunk-size", "2", "--recipe", "mel"])
    assert [list(r) for r in calls] == [[2, 3], [4]]
    np.testing.assert_allclose(np.load(out, allow_pickle=True)["scene"], reference, rtol=1e-5, atol=1e-6)


def test_bad_arguments(clips, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["embed", "--model", "mn04_as", "--h5", clips, "--out", str(tmp_path / "x.npz"), "--timestamps"])
    assert "ragged" in capsys.readouterr().err


def test_corrupt_clip_is_logged_and_skipped(tmp_path):
    from datamodules.audio_io import encode_audio
    from datamodules.h5format import ClipRecord, write_h5

    good = encode_audio(np.sin(np.linspace(0, 2000, 16000)), 32000, "mp3")
    records = [ClipRecord("a.wav", good, 0.5), ClipRecord("bad.wav", np.frombuffer(b"not audio" * 20, np.uint8), 0.5),
               ClipRecord("c.wav", good, 0.5)]
    path = str(tmp_path / "mixed.h5")
    write_h5(path, records, 3, codec="mp3", sample_rate=32000)
    out = str(tmp_path / "emb.npz")
    main(["embed", "--model", "mn04_as", "--h5", path, "--out", out, "--recipe", "mel"])
    assert list(np.load(out, allow_pickle=True)["audio_name"]) == ["a.wav", "c.wav"]
    assert open(out + ".errors.tsv").read().startswith("bad.wav\t")
