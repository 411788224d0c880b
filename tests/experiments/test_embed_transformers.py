"""`sonolab embed` with the transformer zoo: every backbone and wrapper, the PaSST HEAR recipes and time options,
their place in the resume identity and the output, and the errors."""
import json
import os

import h5py
import numpy as np
import pytest
import torch

import experiments.embed as embed
from experiments.cli import main
from models import create_frontend, create_model
from tests.conftest import write_tone_h5

pytestmark = pytest.mark.usefixtures("one_thread")
PASST = "passt_s_swa_p16_128_ap476"
TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2}
SEED_ARGS = ["--random-init", "--chunk-size", "2"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_tone_h5(str(tmp_path_factory.mktemp("emb") / "clips.h5"), 3, seed=4, seconds=0.5)


def run(clips, out, model, model_args, *extra):
    return main(["embed", "--model", model, "--model-args", json.dumps(model_args), *SEED_ARGS, "--h5", clips,
                 "--out", str(out), *extra])


@pytest.mark.parametrize("model, model_args, recipe, dim", [
    ("beats_iter3plus_as2m", TINY, "frames", 64),
    ("atst_frame_base", TINY, "frames", 64),
    ("fpasst_deit_b_frame", TINY, "frames", 64),
    ("m2d_clap_vit_base_80x1001p16x16", TINY, "frames", 5 * 64),
    ("asit_vit_base_128x592p16", TINY, "frames", 64),
    ("pretrainedsed_atst_frame_strong", {"backbone_overrides": TINY}, "frames", 64),
    ("pretrainedsed_beats_strong", {"backbone_overrides": TINY}, "all", 447 + 64),
])
def test_frame_models_write_40_ms_frames_and_their_mean(model, model_args, recipe, dim, clips, tmp_path, capsys):
    out = tmp_path / "emb.h5"
    extra = ["--recipe", recipe] if recipe != "frames" else []
    assert run(clips, out, model, model_args, "--timestamps", *extra) == 0
    assert f"3 clips embedded ({recipe}) -> {out}; 0 skipped" in capsys.readouterr().out
    with h5py.File(out) as f:
        assert dict(f.attrs) == {"model": model, "weights": "random", "recipe": recipe,
                                 "model_args": json.dumps(model_args, sort_keys=True)}
        assert f["scene"].shape == (3, dim) and dict(f["scene"].attrs) == {}
        assert f["timestamp/index"][()].tolist() == [0, 13, 26, 39]  # ceil(8000 / 640) frames per 0.5 s clip
        assert f["timestamp/embedding"].shape == (39, dim) and dict(f["timestamp"].attrs) == {"hop_ms": 40}
        np.testing.assert_array_equal(f["timestamp/time_ms"][:13], 40.0 * np.arange(13) + 20)
        frames = slice(dim - (5 * 64 if model.startswith("m2d") else 64), dim)  # 'all': logits first
        np.testing.assert_allclose(f["scene"][0, frames], f["timestamp/embedding"][:13, frames].mean(0), rtol=1e-5,
                                   atol=1e-6)


def test_passt_scene_is_logits_then_embedding_and_hear_windows(clips, tmp_path):
    from datamodules.format.hdf5 import AudioH5

    torch.manual_seed(0)
    model, frontend = create_model(PASST, **TINY).eval(), create_frontend(PASST).eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "emb.h5"
    assert main(["embed", "--model", PASST, "--model-args", json.dumps(TINY), "--checkpoint", str(tmp_path / "w.pt"),
                 "--h5", clips, "--out", str(out), "--timestamps", "--window-ms", "160", "800"]) == 0
    with torch.no_grad():
        logits, embedding = model(frontend(torch.from_numpy(AudioH5(clips).waveform(1, 32000))[None]))
    with h5py.File(out) as f:
        assert f.attrs["recipe"] == "all" and f.attrs["weights"].startswith("sha256:")
        np.testing.assert_allclose(f["scene"][1], torch.cat([logits, embedding], 1)[0].numpy(), rtol=0, atol=1e-5)
        assert dict(f["scene"].attrs) == {"window_ms": 10000, "hop_ms": 2500}
        stamp_attrs = {k: np.asarray(v).tolist() for k, v in f["timestamp"].attrs.items()}
        assert stamp_attrs == {"window_ms": [160, 800], "hop_ms": 50, "mel_window_ms": 0}
        assert f["timestamp/index"][()].tolist() == [0, 11, 22, 33]  # 16000 samples // 1600 + 1 per clip
        assert f["timestamp/embedding"].shape == (33, 2 * (527 + 64))
        np.testing.assert_array_equal(f["timestamp/time_ms"][:11], 50.0 * np.arange(11))


@pytest.mark.parametrize("change, differs", [
    (["--window-ms", "160", "800"], "window_ms [160] there, [160, 800] now"),
    (["--hop-ms", "40"], "hop_ms 50 there, 40 now"),
    (["--scene-window-ms", "5000"], "scene_window_ms 10000 there, 5000 now"),
    (["--scene-hop-ms", "1000"], "scene_hop_ms 2500 there, 1000 now"),
    (["--mel-window-ms", "60"], "mel_window_ms 0 there, 60 now"),
    (["--recipe", "logits"], "recipe 'all' there, 'logits' now"),
    (["--model-args", json.dumps({**TINY, "depth": 1})], "model_args {'depth': 2, "),
])
@pytest.mark.bad_input
def test_resume_identity_includes_the_recipe_time_options_and_model_args(change, differs, clips, tmp_path,
                                                                         monkeypatch, capsys):
    out = tmp_path / "emb.h5"
    original, calls = embed._embed_chunk, []

    def stop(*args):
        if calls:
            raise KeyboardInterrupt
        calls.append(args[3])
        return original(*args)

    monkeypatch.setattr(embed, "_embed_chunk", stop)
    with pytest.raises(KeyboardInterrupt):
        run(clips, out, PASST, TINY)
    monkeypatch.setattr(embed, "_embed_chunk", original)
    capsys.readouterr()
    args = ["embed", "--model", PASST, "--model-args", json.dumps(TINY), *SEED_ARGS, "--h5", clips, "--out", str(out)]
    assert main(args + change) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sonolab embed: error: {out}.parts holds 1 chunk(s) of another run (") and differs in err
    assert "\n" not in err
    assert main(args) == 0  # the same settings resume
    assert not os.path.exists(f"{out}.parts")


@pytest.mark.bad_input
def test_clips_too_short_for_the_windows_are_logged_and_skipped(tmp_path):
    from datamodules.format.audio_io import encode_audio
    from datamodules.format.hdf5 import ClipRecord, write_h5

    tone = np.sin(np.linspace(0, 2000, 32000))
    records = [ClipRecord("long.wav", encode_audio(tone, 32000, "pcm16"), 1.0),
               ClipRecord("short.wav", encode_audio(tone[:9600], 32000, "pcm16"), 0.3)]
    path = str(tmp_path / "mixed.h5")
    write_h5(path, records, 2, codec="pcm16", sample_rate=32000)
    out = tmp_path / "emb.h5"
    assert main(["embed", "--model", PASST, "--model-args", json.dumps(TINY), "--random-init", "--chunk-size", "1",
                 "--h5", path, "--out", str(out), "--timestamps", "--window-ms", "800"]) == 0
    with h5py.File(out) as f:
        assert [n.decode() for n in f["audio_name"][()]] == ["long.wav"]
        assert f["timestamp/embedding"].shape == (21, 591)
    assert open(f"{out}.errors.tsv").read() == (
        "short.wav\ta clip of 9600 samples is too short for windows of 25600 samples (reflect padding by 12800 "
        "needs a longer clip)\n")


@pytest.mark.parametrize("model, extra, message", [
    ("atst_frame_base", ["--hop-ms", "20", "--window-ms", "80"],
     "atst_frame_base gives 40 ms frames: --window-ms, --hop-ms apply to MN, DyMN and PaSST only"),
    (PASST, ["--recipe", "frames"], f"recipe 'frames' does not fit {PASST}; expected one of all, embed_only, logits"),
    (PASST, ["--timestamps", "--window-ms", "100"],
     "timestamp windows of 100 ms do not fit the model (PaSST: input of shape (1, 1, 128, 10) is shorter than one "
     "patch (16 frames))"),
    (PASST, ["--hop-ms", "0"], "hop_ms=0 ms: expected a positive duration of whole samples at 32000 Hz"),
    ("mn04_as", ["--recipe", "b99"], "--recipe b99: unknown embedding part 'b99'; use 'mel', 'embedding', 'logits', "
                                     "'b0'..'b16' or a recipe from "),
    ("atst_frame_base", ["--model-args", '{"heads": 3}'],
     "--model-args {\"heads\": 3} do not fit atst_frame_base ("),
])
@pytest.mark.bad_input
def test_options_that_do_not_fit_the_model_are_one_line(model, extra, message, clips, tmp_path, capsys):
    args = ["embed", "--model", model, "--random-init", "--h5", clips, "--out", str(tmp_path / "e.h5")]
    if "--model-args" not in extra and model != "mn04_as":
        args += ["--model-args", json.dumps(TINY)]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sonolab embed: error: {message}") and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "e.h5") and not os.path.exists(tmp_path / "e.h5.parts")


@pytest.mark.parametrize("model", ["demo_cnn", "crnn_dcase24", "no_such_model"])
@pytest.mark.bad_input
def test_models_that_cannot_be_embedded_name_the_ones_that_can(model, clips, tmp_path, capsys):
    assert main(["embed", "--model", model, "--random-init", "--h5", clips, "--out", str(tmp_path / "e.h5")]) == 2
    reason = "is not in the catalogue" if model == "no_such_model" else (
        "is neither an MN/DyMN (feature maps) nor a transformer of the zoo")
    assert capsys.readouterr().err == (
        f"sonolab embed: error: model {model!r} cannot be embedded: it {reason}; models that can be embedded: "
        "asit_vit_base_128x592p16, atst_frame_base, beats*, dymn*, fpasst_deit_b_frame, "
        f"m2d_clap_vit_base_80x1001p16x16, mn*, {PASST}, pretrainedsed* (68 names, see `sonolab models`)\n")


@pytest.mark.bad_input
def test_model_args_must_be_a_json_object(clips, tmp_path, capsys):
    for text in ("{depth: 2}", "[2]"):
        with pytest.raises(SystemExit):
            main(["embed", "--model", PASST, "--model-args", text, "--random-init", "--h5", clips, "--out",
                  str(tmp_path / "e.h5")])
        assert "argument --model-args: " in capsys.readouterr().err


@pytest.mark.bad_input
def test_weights_of_another_time_table_name_the_mismatch(clips, tmp_path, capsys):
    weights = tmp_path / "passt10s.pt"
    torch.save(create_model(PASST, **TINY).state_dict(), weights)
    assert main(["embed", "--model", PASST, "--model-args", json.dumps(TINY), "--checkpoint", str(weights), "--h5",
                 clips, "--out", str(tmp_path / "e.h5"), "--scene-window-ms", "20000", "--scene-hop-ms", "5000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sonolab embed: error: {weights}: not weights of {PASST} (Error(s) in loading state_dict "
                          "for PaSST: size mismatch for time_new_pos_embed: ")
    assert err.count("\n") == 1


def test_help_names_every_kind_and_the_hear_variants(capsys):
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("mn*/dymn* (EfficientAT)", PASST, "pretrainedsed_*", "HEAR 2021 mode", "embed_only",
                   "base2level '--window-ms 160 800'", "base2levelmel '--window-ms 160 640 --mel-window-ms 60'",
                   "'--scene-window-ms 20000 --scene-hop-ms 5000'", "--model-args JSON", "(default 160)",
                   "(default 50)", "(default 10000)", "(default 2500)"):
        assert phrase in text, phrase
