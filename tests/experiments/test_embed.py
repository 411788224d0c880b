"""`sonolab embed`: per-clip scene/timestamp embeddings, resumable, corrupt clips skipped, bad input refused."""
import errno
import os
import pickle

import h5py
import numpy as np
import pytest
import torch

import experiments.embed as embed
from experiments.cli import main
from tests.conftest import write_tone_h5

MEL = ["--model", "mn04_as", "--random-init", "--chunk-size", "2", "--recipe", "mel"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_tone_h5(str(tmp_path_factory.mktemp("emb") / "clips.h5"), 5, seed=4, seconds=0.5)


def _embed(clips, out, *extra):
    return main(["embed", *MEL, "--h5", clips, "--out", str(out), *extra])


def _interrupted(clips, out, monkeypatch, after=1):
    """Runs until ``after`` chunks are saved, then stops as Ctrl-C would."""
    original, calls = embed._embed_chunk, []

    def stop(*args):
        if len(calls) == after:
            raise KeyboardInterrupt
        calls.append(args[3])
        return original(*args)

    monkeypatch.setattr(embed, "_embed_chunk", stop)
    with pytest.raises(KeyboardInterrupt):
        _embed(clips, out)
    monkeypatch.setattr(embed, "_embed_chunk", original)


def test_scene_and_timestamp_embeddings_per_clip(clips, tmp_path, capsys):
    out = str(tmp_path / "emb.h5")
    assert main(["embed", "--model", "mn04_as", "--random-init", "--h5", clips, "--out", out, "--timestamps",
                 "--chunk-size", "2"]) == 0
    assert capsys.readouterr().err.count("warning: mn04_as is randomly initialised (--random-init)") == 1
    with h5py.File(out) as f:
        assert dict(f.attrs) == {"model": "mn04_as", "weights": "random", "recipe": "blocks+mel"}
        assert [n.decode() for n in f["audio_name"][()]] == [f"clip_{i:04d}.wav" for i in range(5)]
        assert f["scene"].shape == (5, 320)  # blocks+mel of mn04
        index = f["timestamp/index"][()]
        assert index[0] == 0 and len(index) == 6
        assert f["timestamp/embedding"].shape == (index[-1], 320)
        np.testing.assert_allclose(f["timestamp/time_ms"][: index[1]], np.arange(index[1]) * 50.0)
    assert not os.path.exists(out + ".parts")


@pytest.mark.bad_input
def test_resume_skips_finished_chunks_and_npz_output(clips, tmp_path, monkeypatch):
    out = str(tmp_path / "emb.npz")
    assert _embed(clips, out) == 0
    with np.load(out, allow_pickle=False) as f:
        reference = f["scene"]
        assert (str(f["model"]), str(f["weights"]), str(f["recipe"])) == ("mn04_as", "random", "mel")
    os.remove(out)
    _interrupted(clips, out, monkeypatch)
    assert sorted(os.listdir(out + ".parts")) == ["chunk_000000.npz"]
    # the finished chunk of the interrupted run is reused, not recomputed
    calls, original = [], embed._embed_chunk
    monkeypatch.setattr(embed, "_embed_chunk", lambda *a: calls.append(a[3]) or original(*a))
    assert _embed(clips, out) == 0
    assert [list(r) for r in calls] == [[2, 3], [4]]
    np.testing.assert_allclose(np.load(out, allow_pickle=False)["scene"], reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change, differs", [
    (["--recipe", "final"], "recipe 'mel' there, 'final' now"),
    (["--chunk-size", "3"], "chunk_size 2 there, 3 now"),
    (["--timestamps"], "timestamps False there, True now"),
    (["--checkpoint", "W.pt"], "weights 'random' there, 'sha256:"),
])
@pytest.mark.bad_input
def test_resume_refuses_chunks_of_another_run(change, differs, clips, tmp_path, monkeypatch, capsys):
    from models import create_model

    torch.save(create_model("mn04_as").state_dict(), tmp_path / "W.pt")
    out = tmp_path / "emb.h5"
    _interrupted(clips, out, monkeypatch)
    args = ["embed", *MEL, "--h5", clips, "--out", str(out), *change]
    if "--checkpoint" in change:
        args.remove("--random-init")
        args[args.index("W.pt")] = str(tmp_path / "W.pt")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()  # one line, nothing before it
    assert err.startswith(f"sonolab embed: error: {out}.parts holds 1 chunk(s) of another run (")
    assert differs in err and "rerun with --restart to delete them and start over" in err and "\n" not in err
    assert os.listdir(f"{out}.parts") == ["chunk_000000.npz"] and not os.path.exists(out)
    if "--recipe" in change:
        assert main(args + ["--restart"]) == 0  # deletes the parts and starts over
        assert os.path.exists(out) and not os.path.exists(f"{out}.parts")


@pytest.mark.bad_input
def test_resume_refuses_another_input_file(clips, tmp_path, monkeypatch, capsys):
    out = tmp_path / "emb.h5"
    _interrupted(clips, out, monkeypatch)
    other = write_tone_h5(str(tmp_path / "other.h5"), 5, seed=5, seconds=0.5)
    capsys.readouterr()
    assert _embed(other, out) == 2
    assert "input '5 clips, " in capsys.readouterr().err


class _Payload:
    """Unpickling it creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("planted", ["names", "run", "raw pickle"])
@pytest.mark.bad_input
def test_a_chunk_with_a_pickle_payload_is_refused_and_never_run(planted, clips, tmp_path, monkeypatch, capsys):
    out, marker = tmp_path / "emb.h5", tmp_path / "PWNED"
    _interrupted(clips, out, monkeypatch)
    chunk = tmp_path / "emb.h5.parts" / "chunk_000000.npz"
    arrays = dict(np.load(chunk, allow_pickle=False))
    if planted == "raw pickle":
        chunk.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        arrays[planted] = np.array([_Payload(marker)], dtype=object)
        with open(chunk, "wb") as f:
            np.savez(f, **arrays)
    pickle.loads(pickle.dumps(_Payload(tmp_path / "probe")))  # the payload does work when unpickled
    assert (tmp_path / "probe").exists()
    capsys.readouterr()
    assert _embed(clips, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sonolab embed: error: {chunk}: not a chunk written by sonolab embed (")
    assert "rerun with --restart" in err and "\n" not in err
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("failing", ["chunk", "output"])
@pytest.mark.bad_input
def test_full_disk_is_one_line_and_the_finished_chunks_resume(failing, clips, tmp_path, monkeypatch, capsys):
    out = tmp_path / "emb.h5"
    original_savez, original_file = np.savez, h5py.File

    def savez(file, **arrays):
        if "chunk_000001" in str(file):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_savez(file, **arrays)

    def h5_file(name, mode="r", **kwargs):
        if mode == "w":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_file(name, mode, **kwargs)

    if failing == "chunk":
        monkeypatch.setattr(np, "savez", savez)
    else:
        monkeypatch.setattr(embed.h5py, "File", h5_file)
    assert _embed(clips, out) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the --random-init warning and the progress bar
    target = out.parent / "emb.h5.parts" / "chunk_000001.npz" if failing == "chunk" else out
    assert err.startswith(f"sonolab embed: error: {target}: no space left on device (needs about ")
    assert " MB free); free some space and rerun the same command" in err and "\n" not in err
    finished = ["chunk_000000.npz"] if failing == "chunk" else ["chunk_000000.npz", "chunk_000001.npz",
                                                                "chunk_000002.npz"]
    assert sorted(os.listdir(out.parent / "emb.h5.parts")) == finished  # no temporary file left behind
    assert not out.exists() and not os.path.exists(f"{out}.tmp")
    monkeypatch.undo()
    calls, original = [], embed._embed_chunk
    monkeypatch.setattr(embed, "_embed_chunk", lambda *a: calls.append(a[3]) or original(*a))
    assert _embed(clips, out) == 0
    assert [list(r) for r in calls] == ([[2, 3], [4]] if failing == "chunk" else [])
    with h5py.File(out) as f:
        assert f["scene"].shape == (5, 128)


@pytest.mark.bad_input
def test_weights_are_required_unless_random_init_is_explicit(clips, tmp_path, capsys):
    out = tmp_path / "emb.h5"
    assert main(["embed", "--model", "mn10_as", "--h5", clips, "--out", str(out)]) == 2
    assert capsys.readouterr().err == ("sonolab embed: error: no weights for mn10_as: pass --checkpoint W.pt or "
                                       "--pretrained (--random-init embeds with an untrained network, on purpose "
                                       "only)\n")
    assert not out.exists() and not os.path.exists(f"{out}.parts")
    assert main(["embed", "--model", "mn10_as", "--h5", clips, "--out", str(out), "--checkpoint",
                 str(tmp_path / "missing.pt")]) == 2
    missing = tmp_path / "missing.pt"
    assert capsys.readouterr().err == f"sonolab embed: error: {missing}: checkpoint file does not exist\n"


@pytest.mark.bad_input
def test_bad_arguments(clips, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["embed", "--model", "mn04_as", "--h5", clips, "--out", str(tmp_path / "x.npz"), "--timestamps"])
    assert "ragged" in capsys.readouterr().err


@pytest.mark.bad_input
def test_corrupt_clip_is_logged_and_skipped(tmp_path):
    from datamodules.format.audio_io import encode_audio
    from datamodules.format.hdf5 import ClipRecord, write_h5

    good = encode_audio(np.sin(np.linspace(0, 2000, 16000)), 32000, "mp3")
    records = [ClipRecord("a.wav", good, 0.5), ClipRecord("bad.wav", np.frombuffer(b"not audio" * 20, np.uint8), 0.5),
               ClipRecord("c.wav", good, 0.5)]
    path = str(tmp_path / "mixed.h5")
    write_h5(path, records, 3, codec="mp3", sample_rate=32000)
    out = str(tmp_path / "emb.npz")
    assert main(["embed", "--model", "mn04_as", "--random-init", "--h5", path, "--out", out, "--recipe", "mel"]) == 0
    assert list(np.load(out, allow_pickle=False)["audio_name"]) == ["a.wav", "c.wav"]
    assert open(out + ".errors.tsv").read().startswith("bad.wav\t")
