"""FrameSED: published wrapper layouts, 40 ms frames, chunking of long audio, heads, lr groups, gradients."""
import re

import pytest
import torch

from models import create_model
from models.transformers.catalogue import PRETRAINEDSED
from models.transformers.frame_sed import FrameSED, FrameSEDInputError, block_index, to_frame_rate
from tests.models.transformers.layouts import entries, layout

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(embed_dim=64, depth=2, num_heads=2)
# dropouts / layer drop off, so that a training forward is deterministic and reaches every layer
TINY_BACKBONES = {"beats": dict(TINY, dropout=0.0, attention_dropout=0.0, dropout_input=0.0, layer_drop=0.0),
                  "atst_frame": TINY, "fpasst": TINY, "m2d": TINY, "asit": TINY}
SECOND = 16000


def tiny(model, **kwargs):
    torch.manual_seed(0)
    kwargs = {"n_classes_strong": 5, "n_classes_weak": 3, **kwargs}
    return create_model(f"pretrainedsed_{model}_strong", backbone_overrides=TINY_BACKBONES[model], **kwargs)


def full_size_on_meta(model, kind="strong"):
    with torch.device("meta"):
        return create_model(f"pretrainedsed_{model}_{kind}")


@pytest.fixture(scope="module")
def wave25():
    return torch.randn(2, 25 * SECOND, generator=torch.Generator().manual_seed(1)) * 0.1


@pytest.mark.parametrize("model", list(PRETRAINEDSED))
def test_module_keys_and_shapes_equal_the_published_wrapper(model):
    published = entries(f"pretrainedsed_{PRETRAINEDSED[model][0]}_strong", "wrapper_module_state_dict")
    # torchaudio keeps ATST-F's mel window and filter bank as buffers; our frontend's are not in the state dict (the
    # published loader treats them as expected-missing, so release files never hold them)
    expected = [(key, shape) for key, shape in published if "mel_transform" not in key]
    got = [(key, tuple(value.shape)) for key, value in full_size_on_meta(model).state_dict().items()]
    assert got == expected


@pytest.mark.parametrize("model", list(PRETRAINEDSED))
def test_lr_groups_equal_separate_params(model):
    backbone = PRETRAINEDSED[model][0]
    net = full_size_on_meta(model)
    names = {id(p): n[len("model."):] if n.startswith("model.") else n for n, p in net.named_parameters()}
    groups = net.param_groups(lr=2.0, layer_decay=0.5, weight_decay=0.1)
    members = {}
    for group in groups:
        base, decay = group["name"].split("/")
        members.setdefault(base, set()).update(names[id(p)] for p in group["params"])
        assert all((p.dim() >= 2) == (decay == "decay") for p in group["params"])
        assert group["weight_decay"] == (0.1 if decay == "decay" else 0.0)
        if base.startswith("backbone_"):
            assert group["lr"] == 2.0 * 0.5 ** (int(base.split("_")[1]) + 1)
        else:
            assert group["lr"] == 2.0
    backbone_names = [n for n in names.values() if n.startswith(net.model.attr + ".")]
    for published in layout(backbone)["lr_groups"]:
        in_blocks = {n for n in backbone_names
                     if any(re.search(rf"\.(blocks|layers)\.{k}\.", n) for k in published["blocks"])}
        expected = in_blocks | set(published["non_block_params"])
        assert members[f"backbone_{published['group']}"] == expected
        assert len(expected) == published["n_params"]
    assert members["heads"] == {"strong_head.weight", "strong_head.bias", "weak_head.weight", "weak_head.bias"}
    assert "seq_model" not in members  # no sequence model: its (empty) group is left out
    assert sum(len(g["params"]) for g in groups) == len(names)


def test_teacher_lr_groups_put_the_gru_at_the_base_rate():
    net = tiny("atst_frame", seq_model="gru", seq_hidden=8)
    optimizer = torch.optim.AdamW(net.param_groups(lr=1e-3, layer_decay=0.9, weight_decay=0.01))
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert [id(p) for p in groups["seq_model/decay"]["params"]] == [
        id(p) for n, p in net.seq_model.named_parameters() if "weight" in n]
    assert groups["seq_model/decay"]["lr"] == groups["seq_model/no_decay"]["lr"] == 1e-3
    assert groups["backbone_1/decay"]["lr"] == pytest.approx(1e-3 * 0.9 ** 2)  # depth 2: block 0 and embeddings


@pytest.mark.parametrize("model", list(PRETRAINEDSED))
def test_tiny_model_frames_and_heads_for_10_and_25_seconds(model, wave25):
    net = tiny(model).eval()
    with torch.no_grad():
        strong10, weak10 = net(wave25[:, :10 * SECOND])
        strong25, weak25 = net(wave25)
        frames = net.frames(wave25)
    assert strong10.shape == (2, 5, 250) and weak10.shape == (2, 3)
    assert strong25.shape == (2, 5, 625) and weak25.shape == (2, 3)  # ceil(400000 / 640) frames
    assert frames.shape == (2, 625, net.embed_dim)
    assert torch.isfinite(strong25).all()
    # strong: per-frame head; weak: head on the mean over the kept frames
    torch.testing.assert_close(strong25, net.strong_head(frames).transpose(1, 2))
    torch.testing.assert_close(weak25, net.weak_head(frames.mean(dim=1)))


@pytest.mark.parametrize("model", ["beats", "atst_frame"])
def test_long_audio_equals_its_chunks_run_separately(model, wave25):
    net = tiny(model).eval()
    chunks = [wave25[:, :10 * SECOND], wave25[:, 10 * SECOND:20 * SECOND],
              torch.nn.functional.pad(wave25[:, 20 * SECOND:], (0, 5 * SECOND))]  # the last one zero-padded
    with torch.no_grad():
        whole = net(wave25)[0]
        separate = torch.cat([net(chunk)[0] for chunk in chunks], dim=2)
    assert separate.shape[2] == 750
    torch.testing.assert_close(whole, separate[:, :, :625], rtol=0, atol=0)


def test_short_audio_is_zero_padded_to_10_seconds_and_trimmed():
    net = tiny("asit").eval()
    wave = torch.randn(1, 3 * SECOND + 1) * 0.1  # 48001 samples: 76 frames of 40 ms cover them
    with torch.no_grad():
        strong, _ = net(wave)
        padded, _ = net(torch.nn.functional.pad(wave, (0, 10 * SECOND - wave.shape[1])))
    assert strong.shape == (1, 5, 76)
    torch.testing.assert_close(strong, padded[:, :, :76], rtol=0, atol=0)
    assert [FrameSED.n_frames(n) for n in (1, 640, 641, 160000, 160001)] == [1, 1, 2, 250, 251]


@pytest.mark.parametrize("model, native", [("beats", (496, 64)), ("atst_frame", (250, 64)), ("fpasst", (250, 64)),
                                           ("m2d", (62, 320)), ("asit", (497, 64))])
def test_native_sequence_and_frames_without_heads(model, native):
    net = tiny(model, n_classes_strong=None, n_classes_weak=None).eval()
    wave = torch.randn(2, 10 * SECOND) * 0.1
    with torch.no_grad():
        sequence = net.sequence(wave)
        out = net(wave)
    assert sequence.shape == (2, *native)
    assert out.shape == (2, 250, native[1]) and net.embed_dim == native[1]
    torch.testing.assert_close(out, to_frame_rate(sequence, 250))
    assert not any(k.startswith(("strong_head", "weak_head")) for k in net.state_dict())


def test_one_missing_head_gives_none():
    net = tiny("atst_frame", n_classes_weak=None).eval()
    with torch.no_grad():
        strong, weak = net(torch.zeros(1, 10 * SECOND))
    assert strong.shape == (1, 5, 250) and weak is None


def test_to_frame_rate_pools_longer_and_interpolates_shorter_sequences():
    longer = torch.arange(4.0).reshape(1, 4, 1)
    assert to_frame_rate(longer, 2).flatten().tolist() == [0.5, 2.5]
    shorter = torch.tensor([0.0, 1.0]).reshape(1, 2, 1)
    # linear, align_corners=False: sample positions -0.25, 0.25, 0.75, 1.25 clamped to [0, 1]
    assert to_frame_rate(shorter, 4).flatten().tolist() == [0.0, 0.25, 0.75, 1.0]
    assert to_frame_rate(longer, 4) is longer
    assert [block_index(n) for n in ("blocks.3.attn.qkv.weight", "encoder.layers.11.fc1.bias",
                                     "backbone.blocks.0.norm1.weight", "norm.weight")] == [3, 11, 0, None]


@pytest.mark.parametrize("model", list(PRETRAINEDSED))
def test_gradients_reach_every_parameter(model):
    net = tiny(model, seq_model="gru", seq_hidden=8, seq_layers=1).train()
    strong, weak = net(torch.randn(2, 10 * SECOND) * 0.1)
    (strong.square().mean() + weak.square().mean()).backward()
    unused = tuple(getattr(net.backbone, "UNUSED_PARAMETERS", ()))
    missing = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
               and not n.startswith(tuple(f"model.{net.model.attr}.{u}" for u in unused))]
    assert missing == []


def test_teacher_gru_layout_and_shapes():
    net = tiny("beats", seq_model="gru", seq_hidden=8).eval()
    keys = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith("model.")}
    assert list(keys)[:4] == ["seq_model.rnn.weight_ih_l0", "seq_model.rnn.weight_hh_l0", "seq_model.rnn.bias_ih_l0",
                              "seq_model.rnn.bias_hh_l0"]
    assert keys["seq_model.rnn.weight_ih_l0_reverse"] == (24, 64)  # 3 gates x 8 units, 64 backbone features
    assert keys["seq_model.rnn.weight_ih_l1"] == (24, 16)  # layer 2 sees both directions
    assert keys["strong_head.weight"] == (5, 16) and keys["weak_head.weight"] == (3, 16)
    with torch.no_grad():
        strong, weak = net(torch.randn(1, 12 * SECOND) * 0.1)
        one_sample, _ = net(torch.full((1, 1), 0.1))  # padded to one chunk, one frame kept
    assert strong.shape == (1, 5, 300) and weak.shape == (1, 3) and one_sample.shape == (1, 5, 1)


def test_full_size_teacher_parameter_count():
    gru = 0
    for n_in in (768, 4096):  # 2 layers, bidirectional, 2048 units: 3 gates of input + hidden weights, 2 biases
        gru += 2 * (3 * 2048 * (n_in + 2048) + 2 * 3 * 2048)
    heads = 2 * (447 * 4096 + 447)
    net = full_size_on_meta("beats", "teacher")
    assert sum(p.numel() for p in net.parameters()) == 90_311_792 + gru + heads == 204_124_142


@pytest.mark.bad_input
def test_bad_configuration_and_input_name_the_problem():
    with pytest.raises(FrameSEDInputError, match=r"backbone 'passt_s_swa_p16_128_ap476' \(PaSST\) has no frame"):
        FrameSED("passt_s_swa_p16_128_ap476")
    with pytest.raises(FrameSEDInputError, match="chunk_seconds=0.01 must be a positive multiple of 0.04 s"):
        FrameSED("atst_frame_base", chunk_seconds=0.01, backbone_overrides=TINY)
    with pytest.raises(FrameSEDInputError, match=r"input has shape \(2, 1, 16000\); expected \(batch, samples\)"):
        tiny("asit")(torch.zeros(2, 1, SECOND))


@pytest.mark.parametrize("model", list(TINY_BACKBONES))
def test_forward_mel_of_the_frontend_output_equals_forward(model):
    """The training path (spectrogram, augment, then forward_mel) gives forward's outputs when nothing is augmented."""
    net = tiny(model).eval()
    wave = torch.randn(2, 10 * SECOND, generator=torch.Generator().manual_seed(3)) * 0.1
    with torch.no_grad():
        strong, weak = net(wave)
        mel = net.mel(wave)
        strong_mel, weak_mel = net.forward_mel(mel)
    assert mel.dim() == 4 and mel.shape[:2] == (2, 1)
    torch.testing.assert_close(strong_mel, strong)
    torch.testing.assert_close(weak_mel, weak)


def test_parameters_the_backbone_never_uses_are_frozen():
    net = tiny("atst_frame")
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert frozen == ["model.atst.mask_embed"]  # a gradient never reaches it: DDP needs it out of the reducer
