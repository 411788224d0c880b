"""Transformer-zoo embeddings: the HEAR 2021 PaSST recipes (levels, windows, 2-level, +mel, 20 s tables), 40 ms
frame embeddings of the frame models, the shared windows for MN/DyMN, and the errors."""
import pytest
import torch
import torch.nn.functional as F

from models import create_frontend, create_model, list_models
from models.efficientat import embeddings as efficientat
from models.transformers import embeddings as zoo
from models.transformers.catalogue import PRETRAINEDSED

pytestmark = pytest.mark.usefixtures("one_thread")
PASST = "passt_s_swa_p16_128_ap476"
TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2}
BACKBONES = ["beats_iter3_as2m", "beats_iter3plus_as2m", "atst_frame_base", "fpasst_deit_b_frame",
             "m2d_clap_vit_base_80x1001p16x16", "asit_vit_base_128x592p16"]


def wave(seconds, rate=32000, seed=0):
    return torch.randn(1, int(seconds * rate), generator=torch.Generator().manual_seed(seed)) * 0.1


@pytest.fixture(scope="module")
def passt():
    """A tiny PaSST-S and its frontend (eval), built as :func:`zoo.load_embedder` builds them."""
    torch.manual_seed(0)
    return create_model(PASST, **TINY).eval(), create_frontend(PASST).eval()


def passt_embedder(passt, recipe="all", **options):
    model, frontend = passt
    return zoo.WindowedEmbedder(zoo.clip_embedding(model, frontend, recipe), 32000, zoo.TimeOptions(**options),
                                mel=zoo.flat_frontend(frontend))


def direct(passt, audio, recipe="all"):
    """What hear21passt's wrapper computes for one pass (mode ``all``: logits, then the cls/dist embedding)."""
    model, frontend = passt
    with torch.no_grad():
        logits, embedding = model(frontend(audio))
    return {"all": torch.cat([logits, embedding], 1), "embed_only": embedding, "logits": logits}[recipe]


def test_kinds_and_embeddable_names():
    kinds = {name: zoo.model_kind(name) for name in zoo.embeddable_models()}
    assert kinds == {PASST: "clip", **dict.fromkeys(BACKBONES, "frame"),
                     **{f"pretrainedsed_{m}_{k}": "sed" for m in PRETRAINEDSED for k in ("strong", "teacher")}}
    assert zoo.model_kind("mn10_as") is None and zoo.model_kind("crnn_dcase24") is None
    assert set(zoo.embeddable_models()) <= set(list_models())


def test_hear_defaults():
    assert zoo.TimeOptions() == zoo.TimeOptions(window_ms=(160,), hop_ms=50, scene_window_ms=10000,
                                                scene_hop_ms=2500, mel_window_ms=0)


def test_full_size_passt_all_is_1295_values():
    with torch.device("meta"):
        model = create_model(PASST).eval()
        embed = zoo.clip_embedding(model, lambda audio: torch.zeros(audio.shape[0], 1, 128, 1000), "all")
        assert embed(torch.zeros(2, 320000)).shape == (2, 527 + 768)


@pytest.mark.parametrize("recipe, dim", [("all", 527 + 64), ("embed_only", 64), ("logits", 527)])
def test_passt_scene_is_the_hear_mode_of_one_pass(passt, recipe, dim):
    audio = wave(1.0)
    scene = passt_embedder(passt, recipe).scene(audio)
    assert scene.shape == (1, dim)
    torch.testing.assert_close(scene, direct(passt, audio, recipe), rtol=0, atol=1e-6)


def test_passt_timestamps_are_160_ms_windows_centred_every_50_ms(passt):
    audio = wave(0.5)
    embeddings, times = passt_embedder(passt).timestamps(audio)
    assert embeddings.shape == (1, 11, 591)  # 16000 samples // 1600 + 1
    assert times.tolist() == [[50.0 * i for i in range(11)]]
    padded = F.pad(audio[:, None], (2560, 2560), mode="reflect")[:, 0]  # half a 5120-sample window
    for i in (0, 4, 10):
        expected = direct(passt, padded[:, i * 1600:i * 1600 + 5120])
        torch.testing.assert_close(embeddings[:, i], expected, rtol=0, atol=1e-5)


def test_two_level_windows_and_mel_are_concatenated_in_order(passt):
    audio = wave(1.0)
    embeddings, times = passt_embedder(passt, window_ms=(160, 640), mel_window_ms=60).timestamps(audio)
    assert embeddings.shape == (1, 21, 591 + 591 + 128 * 6)  # base2levelmel: 60 ms mel = 128 bands x 6 frames
    short, _ = passt_embedder(passt, window_ms=(160,)).timestamps(audio)
    long, _ = passt_embedder(passt, window_ms=(640,)).timestamps(audio)
    torch.testing.assert_close(embeddings[..., :591], short, rtol=0, atol=1e-6)
    torch.testing.assert_close(embeddings[..., 591:1182], long, rtol=0, atol=1e-6)
    padded = F.pad(audio[:, None], (960, 960), mode="reflect")[:, 0]
    with torch.no_grad():
        mel = passt[1](padded[:, 7 * 1600:7 * 1600 + 1920])
    assert mel.shape == (1, 1, 128, 6)
    torch.testing.assert_close(embeddings[0, 7, 1182:], mel[0, 0].flatten(), rtol=0, atol=1e-6)
    assert times[0, -1] == 1000.0


def test_a_long_clip_averages_reflect_padded_scene_windows(passt):
    audio = wave(2.0)
    scene = passt_embedder(passt, scene_window_ms=1000, scene_hop_ms=250).scene(audio)
    padded = F.pad(audio[:, None], (16000, 16000), mode="reflect")[:, 0]
    windows = [padded[:, s:s + 32000] for s in range(0, padded.shape[1] - 32000 + 1, 8000)]
    assert len(windows) == 9
    expected = torch.stack([direct(passt, w) for w in windows]).mean(dim=0)
    torch.testing.assert_close(scene, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("seconds, tdim", [(10000, None), (20000, 2000), (30000, 3000)])
def test_20_and_30_second_scene_windows_get_their_time_table(seconds, tdim):
    args = zoo.passt_model_args(PASST, create_frontend(PASST), seconds, TINY)
    assert args.get("input_tdim") == tdim  # hear21passt passt_20sec / passt_30sec: input_tdim 2000 / 3000
    with torch.device("meta"):
        assert create_model(PASST, **args).time_new_pos_embed.shape[3] == (tdim or 998) // 10


def test_mn_and_dymn_through_the_shared_windows_equal_their_own_functions():
    torch.manual_seed(0)
    model, frontend = create_model("mn04_as").eval(), create_frontend("mn04_as").eval()
    embedder = zoo.WindowedEmbedder(lambda a: efficientat.embed(model, frontend, a, 32000, "blocks+mel"), 32000,
                                    zoo.TimeOptions(scene_window_ms=1000, scene_hop_ms=250))
    audio = wave(2.0)
    scene, (stamps, times) = embedder(audio, timestamps=True)
    own_stamps, own_times = efficientat.timestamp_embeddings(model, frontend, audio, 32000)
    assert torch.equal(scene, efficientat.scene_embeddings(model, frontend, audio, 32000, max_window_s=1.0,
                                                           hop_s=0.25))
    assert torch.equal(stamps, own_stamps) and torch.equal(times, own_times)


@pytest.mark.parametrize("name", BACKBONES)
def test_frame_backbones_give_40_ms_frames_and_their_mean(name):
    torch.manual_seed(0)
    sed = zoo.frame_model(name, model_args=TINY).eval()
    assert not any(p.is_meta for p in sed.parameters())
    embedder = zoo.FrameEmbedder(sed)
    audio = wave(0.5, 16000)
    scene, (frames, times) = embedder(audio, timestamps=True)
    dim = 5 * 64 if name.startswith("m2d") else 64  # M2D: 5 frequency tokens per frame
    assert frames.shape == (1, 13, dim) and scene.shape == (1, dim)  # ceil(8000 / 640)
    assert times.tolist() == [[40.0 * k + 20 for k in range(13)]]
    with torch.no_grad():
        torch.testing.assert_close(frames, sed.frames(audio), rtol=0, atol=0)
    torch.testing.assert_close(scene, frames.mean(dim=1), rtol=0, atol=1e-6)


def test_frame_backbone_weights_are_the_ones_loaded(tmp_path):
    torch.manual_seed(3)
    net = create_model("atst_frame_base", **TINY)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    sed = zoo.frame_model("atst_frame_base", checkpoint=str(tmp_path / "w.pt"), model_args=TINY)
    assert all(torch.equal(a, b) for a, b in zip(sed.backbone.state_dict().values(), net.state_dict().values()))


@pytest.mark.parametrize("kind, extra", [("strong", {}), ("teacher", {"seq_hidden": 8})])
def test_pretrainedsed_logits_recipe_uses_the_strong_and_weak_heads(kind, extra):
    torch.manual_seed(0)
    sed = zoo.frame_model(f"pretrainedsed_fpasst_{kind}",
                          model_args={"backbone_overrides": TINY, "n_classes_strong": 5, "n_classes_weak": 3,
                                      **extra}).eval()
    audio = wave(0.5, 16000)
    scene, (stamps, _) = zoo.FrameEmbedder(sed, "all")(audio, timestamps=True)
    with torch.no_grad():
        strong, weak = sed(audio)
        frames = sed.frames(audio)
    assert stamps.shape == (1, 13, 5 + 64) and scene.shape == (1, 3 + 64)
    torch.testing.assert_close(stamps, torch.cat([strong.transpose(1, 2), frames], -1), rtol=0, atol=1e-6)
    torch.testing.assert_close(scene, torch.cat([weak, frames.mean(1)], -1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: zoo.load_embedder("atst_frame_base", "logits", model_args=TINY),
     "recipe 'logits' does not fit atst_frame_base; expected one of frames"),
    (lambda: zoo.load_embedder(PASST, "frames", model_args=TINY),
     f"recipe 'frames' does not fit {PASST}; expected one of all, embed_only, logits"),
    (lambda: zoo.load_embedder("atst_frame_base", options=zoo.TimeOptions(), model_args=TINY),
     "atst_frame_base gives 40 ms frames: window and hop options apply to windowed models (PaSST, MN, DyMN) only"),
    (lambda: zoo.load_embedder(PASST, options=zoo.TimeOptions(hop_ms=0), model_args=TINY),
     "hop_ms=0 ms: expected a positive duration of whole samples at 32000 Hz"),
    (lambda: zoo.load_embedder("mn10_as"), "model 'mn10_as' is not a transformer-zoo model; embeddable ones: "),
    (lambda: zoo.FrameEmbedder(zoo.frame_model("asit_vit_base_128x592p16", model_args=TINY), "all"),
     "recipe 'all' needs the strong and weak heads; asit_vit_base_128x592p16 has none: use 'frames'"),
])
@pytest.mark.bad_input
def test_options_that_do_not_fit_are_one_clear_error(call, message):
    with pytest.raises(zoo.EmbeddingOptionError) as err:
        call()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.bad_input
def test_a_window_shorter_than_a_patch_is_refused_before_any_clip(passt):
    embedder = passt_embedder(passt, window_ms=(100,))
    with pytest.raises(zoo.EmbeddingOptionError, match=r"^timestamp windows of 100 ms do not fit the model \(PaSST: "
                                                       r"input of shape \(1, 1, 128, 10\) is shorter than one patch"):
        embedder.check_windows()
    passt_embedder(passt, window_ms=(160, 800), mel_window_ms=60).check_windows()


@pytest.mark.bad_input
def test_a_clip_shorter_than_half_a_window_is_a_clip_error(passt):
    with pytest.raises(zoo.ClipTooShortError, match="^a clip of 12000 samples is too short for windows of 25600 "
                                                    r"samples \(reflect padding by 12800 needs a longer clip\)$"):
        passt_embedder(passt, window_ms=(800,)).timestamps(wave(0.375))
