"""DCASE'24 Task 4 baseline CRNN: layout, parameter count, outputs equal to the DESED code, heads, fusion, errors."""
import json
import math
import os

import pytest
import torch

import models
from models import create_frontend, create_model, get_entry
from models.complexity import complexity, count_params
from models.sed import CRNN, DCASE24_SED_MEL, attention_pool, desed_state_dict, drop_time_steps

GOLDEN = json.load(open(os.path.join(os.path.dirname(__file__), "golden", "crnn_dcase24_keys.json")))
NAMES = ["crnn_dcase24", "crnn_dcase24_beats"]


def fill(shape, seed):
    """Deterministic values 0.2 sin(0.7 i + seed) (the recipe of the golden reference outputs)."""
    n = math.prod(shape)
    return (0.2 * torch.sin(torch.arange(n, dtype=torch.float64) * 0.7 + seed)).float().reshape(shape)


def deterministic_state(model):
    state = {}
    for j, (key, value) in enumerate(model.state_dict().items()):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 1.0 + fill(value.shape, j).abs()
        else:
            state[key] = fill(value.shape, j)
    return state


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {name: create_model(name).eval() for name in NAMES}


def test_catalogue_entries():
    assert set(NAMES) <= set(models.list_models("crnn*"))
    for name in NAMES:
        entry = get_entry(name)
        assert entry.frontend == "mel" and dict(entry.frontend_kwargs) == DCASE24_SED_MEL
        assert entry.input_shape == (1, 1, 128, 626) and entry.state_dict_filter is desed_state_dict
    assert get_entry("crnn_dcase24_beats").kwargs["embedding_dim"] == 768


@pytest.mark.parametrize("seconds,stft_frames,out_frames", [(10, 626, 156), (4, 251, 62)])
def test_output_shapes(nets, seconds, stft_frames, out_frames):
    # center=True STFT: 16000 * s // 256 + 1 frames; the CNN pools time by 2 twice (flooring)
    assert 16000 * seconds // 256 + 1 == stft_frames
    model = nets["crnn_dcase24"]
    assert model.output_frames(stft_frames) == out_frames
    with torch.no_grad():
        for x in (torch.randn(2, 128, stft_frames), torch.randn(1, 1, 128, stft_frames)):
            strong, weak = model(x)
            assert strong.shape == (len(x), 27, out_frames) and weak.shape == (len(x), 27)
            assert 0 <= strong.min() and strong.max() <= 1 and 0 <= weak.min() and weak.max() <= 1
        strong, weak = nets["crnn_dcase24_beats"](torch.randn(1, 128, stft_frames), torch.randn(1, 768, 496))
    assert strong.shape == (1, 27, out_frames) and weak.shape == (1, 27)


def test_exact_parameter_count(nets):
    # CNN 612,688 (conv + BN affine + GLU linear of the 7 blocks) + BiGRU 1,036,800 (2 layers, 192 units, inputs
    # 128 then 384) + dense and dense_softmax 2 x (384 * 27 + 27); the fusion adds cat_tf 896 * 128 + 128 = 114,816.
    # Same counts as the DESED CRNN built from the DCASE'24 yaml (golden["params"]).
    assert count_params(nets["crnn_dcase24"]) == 1_670_278 == GOLDEN["params"]["crnn_dcase24"]
    assert count_params(nets["crnn_dcase24_beats"]) == 1_785_094 == GOLDEN["params"]["crnn_dcase24_beats"]


def test_complexity_cli_numbers():
    report = complexity("crnn_dcase24")
    # aten MACs by hand: convs 701,927,424 + GLU linears 138,149,888 + GRU 161,021,952 + heads 3,234,816
    assert report == {"model": "crnn_dcase24", "input_shape": [1, 1, 128, 626], "params": 1_670_278,
                      "macs": 1_004_334_080, "macs_convention": "aten"}


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_layout_equals_the_baseline(nets, name):
    ours = [[key, list(value.shape)] for key, value in nets[name].state_dict().items()]
    assert ours == GOLDEN["keys"][name]  # same keys, same shapes, same order
    random_state = {key: torch.randn(shape) if shape else torch.tensor(7) for key, shape in GOLDEN["keys"][name]}
    model = create_model(name)
    model.load_state_dict(random_state, strict=True)
    torch.testing.assert_close(model.state_dict()["dense.weight"], random_state["dense.weight"])


@pytest.mark.parametrize("name", NAMES)
def test_outputs_equal_the_desed_code(name):
    model = create_model(name).eval()
    model.load_state_dict(deterministic_state(model))
    features = fill((2, 128, 32), 0.5) * 5
    embeddings = fill((2, 768, 20), 1.5) * 5 if model.embedding_dim else None
    with torch.no_grad():
        strong, weak = model(features, embeddings)
    expected = GOLDEN["reference_outputs"][name]
    torch.testing.assert_close(strong, torch.tensor(expected["strong"]), atol=2e-6, rtol=0)
    torch.testing.assert_close(weak, torch.tensor(expected["weak"]), atol=2e-6, rtol=0)


def test_lightning_checkpoint_imports_the_student(tmp_path):
    student, teacher = create_model("crnn_dcase24_beats"), create_model("crnn_dcase24_beats")
    state = {f"sed_student.{k}": v for k, v in student.state_dict().items()}
    state.update({f"sed_teacher.{k}": v for k, v in teacher.state_dict().items()})
    state["mel_spec.spectrogram.window"] = torch.ones(2048)
    torch.save({"state_dict": state, "epoch": 259}, tmp_path / "epoch=259-step=30680.ckpt")
    loaded = create_model("crnn_dcase24_beats", checkpoint=str(tmp_path / "epoch=259-step=30680.ckpt"))
    for key, value in student.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert desed_state_dict(state, "sed_teacher").keys() == teacher.state_dict().keys()
    plain = student.state_dict()
    assert desed_state_dict(plain) == plain  # our own state dicts pass through


def test_attention_pooling_hand_case():
    strong = torch.tensor([[[0.2, 0.9], [0.6, 0.1]]])  # (B=1, T=2, C=2)
    # softmax over classes: frame 0 -> (1/4, 3/4), frame 1 -> (3/4, 1/4)
    att_logits = torch.tensor([[[0.0, math.log(3)], [math.log(3), 0.0]]])
    out_strong, weak = attention_pool(strong, att_logits)
    torch.testing.assert_close(out_strong, strong)
    # class 0: (0.2 / 4 + 0.6 * 3 / 4) / 1 = 0.5; class 1: (0.9 * 3 / 4 + 0.1 / 4) / 1 = 0.7
    torch.testing.assert_close(weak, torch.tensor([[0.5, 0.7]]))
    # attention clamped at 1e-7: a class that never wins the softmax gets the plain time average
    _, weak = attention_pool(strong, torch.tensor([[[0.0, 100.0], [0.0, 100.0]]]))
    torch.testing.assert_close(weak, torch.tensor([[0.4, 0.5]]))
    # invalid class: no attention mass, zero outputs; the valid one gets all the mass in every frame
    out_strong, weak = attention_pool(strong, att_logits, torch.tensor([[True, False]]))
    torch.testing.assert_close(weak, torch.tensor([[0.4, 0.0]]))
    torch.testing.assert_close(out_strong, torch.tensor([[[0.2, 0.0], [0.6, 0.0]]]))


def test_weak_is_the_attention_pool_of_strong(nets):
    model, seen = nets["crnn_dcase24"], {}
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o))
             for n in ("dense", "dense_softmax")]
    try:
        with torch.no_grad():
            strong, weak, logits = model(torch.randn(2, 128, 200), return_logits=True)
    finally:
        for h in hooks:
            h.remove()
    torch.testing.assert_close(logits, seen["dense"].transpose(1, 2))
    torch.testing.assert_close(strong, torch.sigmoid(logits))
    att = torch.softmax(seen["dense_softmax"], dim=-1).clamp(1e-7, 1).transpose(1, 2)  # (B, C, T')
    torch.testing.assert_close(weak, (strong * att).sum(-1) / att.sum(-1))


def test_classes_mask_zeroes_invalid_classes(nets):
    mask = torch.ones(2, 27, dtype=torch.bool)
    mask[0, 10:] = False  # a DESED clip: only the first 10 classes
    with torch.no_grad():
        strong, weak = nets["crnn_dcase24"](torch.randn(2, 128, 64), classes_mask=mask)
    assert strong[0, 10:].abs().max() == 0 and weak[0, 10:].abs().max() == 0
    assert strong[0, :10].min() > 0 and weak[1].min() > 0


@pytest.mark.parametrize("aggregation", ["pool", "interpolate"])
def test_fusion_aggregations(aggregation):
    torch.manual_seed(0)
    model = CRNN(embedding_dim=8, embedding_aggregation=aggregation).eval()
    assert model.cat_tf.in_features == 128 + 8 and model.cat_tf.out_features == 128
    x, emb = torch.randn(2, 128, 64), torch.randn(2, 8, 32)  # T' = 16
    seq = torch.zeros(2, 16, 128)
    aligned = model._align_embeddings(emb, seq)
    assert aligned.shape == (2, 16, 8)
    if aggregation == "pool":  # pairs of embedding frames averaged
        torch.testing.assert_close(aligned, emb.view(2, 8, 16, 2).mean(-1).transpose(1, 2))
    else:  # nearest-exact: output frame i takes floor((i + 0.5) * 32 / 16) = 2i + 1
        torch.testing.assert_close(aligned, emb[:, :, 1::2].transpose(1, 2))
    with torch.no_grad():
        strong, weak = model(x, emb)
        strong2, _ = model(x, emb + 1.0)
    assert strong.shape == (2, 27, 16) and weak.shape == (2, 27)
    assert not torch.allclose(strong, strong2)  # the embeddings reach the output


def test_dropstep_masks_one_short_span_per_example():
    torch.manual_seed(0)
    x = torch.ones(64, 156, 3)
    dropped = (drop_time_steps(x, 16, 0.3) == 0).all(-1)  # (B, T)
    lengths = dropped.sum(1)
    assert lengths.max() <= 15 and lengths.float().mean() > 3  # floor(U * 16) frames
    for row, n in zip(dropped, lengths):
        if n:
            idx = row.nonzero().flatten()
            assert idx[-1] - idx[0] + 1 == n  # contiguous
    assert torch.equal(drop_time_steps(torch.ones(2, 3, 4), 16, 0.3), torch.ones(2, 3, 4))  # int(3 * 0.3) = 0


def test_train_and_eval_modes(nets):
    model = create_model("crnn_dcase24")
    bn = model.cnn.cnn.batchnorm0
    assert (bn.eps, bn.momentum) == (1e-3, 0.99)  # the baseline's nn.BatchNorm2d(eps=0.001, momentum=0.99)
    assert model.rnn.rnn.num_layers == 2 and model.rnn.rnn.hidden_size == 192
    x = torch.randn(2, 128, 32)
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(x)[0], model(x)[0])
        model.train()
        assert not torch.allclose(model(x)[0], model(x)[0])  # dropout and dropstep


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    emb = torch.randn(2, 768, 50) if model.embedding_dim else None
    strong, weak = model(torch.randn(2, 1, 128, 64), emb)
    (strong.mean() + weak.mean()).backward()
    for key, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, key


def test_bad_inputs_raise(nets):
    plain, fused = nets["crnn_dcase24"], nets["crnn_dcase24_beats"]
    x = torch.randn(2, 128, 64)
    with pytest.raises(ValueError, match="without fusion"):
        plain(x, torch.randn(2, 768, 10))
    with pytest.raises(ValueError, match="pass embeddings"):
        fused(x)
    with pytest.raises(ValueError, match="channels first"):
        fused(x, torch.randn(2, 10, 768))
    with pytest.raises(ValueError, match="channels first"):
        fused(x, torch.randn(3, 768, 10))
    bads = (torch.randn(2, 64, 64), torch.randn(2, 2, 128, 64), torch.randn(128, 64), torch.randn(1, 1, 1, 128, 64))
    for bad in bads:
        with pytest.raises(ValueError, match="log-mels"):
            plain(bad)
    with pytest.raises(ValueError, match="at least 4"):
        plain(torch.randn(2, 128, 3))
    with pytest.raises(ValueError, match="classes_mask"):
        plain(x, classes_mask=torch.ones(2, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="embedding_aggregation"):
        CRNN(embedding_dim=768, embedding_aggregation="frame")
    with pytest.raises(ValueError, match="needs exactly 1"):
        CRNN(n_mels=64)


def test_frontend_preset_on_ten_seconds(nets):
    frontend = create_frontend("crnn_dcase24")
    assert frontend.sample_rate == 16000 and frontend.hop_length == 256 and frontend.db_range == (-50.0, 80.0)
    torch.manual_seed(0)
    wave = 0.1 * torch.randn(2, 160_000)
    feats = frontend(wave)
    assert feats.shape == (2, 1, 128, 626)
    # the DESED instance min-max scaler: every clip spans [-1, 1]
    assert torch.allclose(feats.amin(dim=(1, 2, 3)), -torch.ones(2), atol=1e-6)
    assert torch.allclose(feats.amax(dim=(1, 2, 3)), torch.ones(2), atol=1e-6)
    with torch.no_grad():
        strong, weak = nets["crnn_dcase24"](feats)
    assert strong.shape == (2, 27, 156) and weak.shape == (2, 27)
