"""State-dict filters of the transformer zoo: published file layouts map onto our modules and load strictly."""
import pytest
import torch

from models import create_model, get_entry
from models.transformers.atst_frame import ATSTFrame
from models.transformers.catalogue import PRETRAINEDSED
from models.transformers.checkpoints import (
    CheckpointLayoutError,
    atst_frame_upstream,
    deit_to_frame_passt,
    hear21passt,
    pretrainedsed_atst,
    pretrainedsed_beats,
    pretrainedsed_fpasst,
    unwrap_lightning,
)
from models.transformers.passt import FramePaSST, PaSST
from tests.models.transformers.layouts import entries, meta_state

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(embed_dim=64, depth=2, num_heads=2)


def randomised(module):
    """Random values of the module's state dict; a tensor listed under several keys (BEATs' shared position
    table) gets one value."""
    torch.manual_seed(0)
    values = {}
    return {k: values.setdefault(id(v), torch.randn_like(v)) for k, v in module.state_dict(keep_vars=True).items()}


def assert_same_state(module, state):
    got = module.state_dict()
    assert list(got) == list(state)
    for key in state:
        torch.testing.assert_close(got[key], state[key], rtol=0, atol=0)


@pytest.mark.parametrize("model", list(PRETRAINEDSED))
def test_release_files_load_strictly(model):
    release = meta_state(f"pretrainedsed_{PRETRAINEDSED[model][0]}_strong", "release_file_keys")
    state = get_entry(f"pretrainedsed_{model}_strong").state_dict_filter(release)
    with torch.device("meta"):
        net = create_model(f"pretrainedsed_{model}_strong")
    assert list(state) == list(net.state_dict())
    net.load_state_dict(state, strict=True, assign=True)


def test_pretrainedsed_filters_keep_our_keys_and_drop_torchaudio_mel_buffers():
    ours = meta_state("pretrainedsed_fpasst_deit_b_frame_strong", "wrapper_module_state_dict")
    assert list(pretrainedsed_fpasst(ours)) == list(ours)  # no second prefix
    atst = meta_state("pretrainedsed_atst_frame_base_strong", "wrapper_module_state_dict")
    assert sum("mel_transform" in k for k in atst) == 2
    assert list(pretrainedsed_atst({"state_dict": atst})) == [k for k, _ in entries(
        "pretrainedsed_atst_frame_base_strong", "release_file_keys")]


@pytest.mark.bad_input
def test_unknown_layouts_name_the_keys():
    t = torch.zeros(1)
    with pytest.raises(CheckpointLayoutError, match=r"PretrainedSED beats checkpoint: unexpected keys "
                                                    r"'encoder\.layer_norm\.weight', 'post_extract_proj\.bias'"):
        pretrainedsed_beats({"encoder.layer_norm.weight": t, "post_extract_proj.bias": t, "strong_head.bias": t})
    with pytest.raises(CheckpointLayoutError, match="has no backbone keys .* first keys: 'strong_head.bias'"):
        pretrainedsed_beats({"strong_head.bias": t})
    with pytest.raises(CheckpointLayoutError, match=r"ATST-Frame checkpoint: no teacher encoder .* 'epoch'"):
        atst_frame_upstream({"state_dict": {"epoch": t}})
    with pytest.raises(CheckpointLayoutError, match="PaSST checkpoint: expected cls_token"):
        hear21passt({"net.pos_embed": t})
    with pytest.raises(CheckpointLayoutError, match=r"DeiT checkpoint: pos_embed has shape \(1, 7, 4\)"):
        deit_to_frame_passt({"pos_embed": torch.zeros(1, 7, 4), "patch_embed.proj.weight": torch.zeros(4, 3, 16, 16)})


def test_pretrainedsed_release_file_and_lightning_checkpoints_round_trip(tmp_path):
    tiny = {"backbone_overrides": dict(TINY, dropout=0.0, layer_drop=0.0), "n_classes_strong": 4,
            "n_classes_weak": 4}
    source = create_model("pretrainedsed_beats_strong", **tiny)
    source.load_state_dict(randomised(source))
    release = {k.replace("model.beats.", "model.model.", 1): v for k, v in source.state_dict().items()}
    torch.save(release, tmp_path / "BEATs_strong_1.pt")
    # a sonolab task holds the network as ``self.model`` (Lightning prefix ``model.``) next to other modules
    task = {"model." + k: v for k, v in source.state_dict().items()}
    task.update({"teacher.model.beats.layer_norm.weight": torch.zeros(512)})
    torch.save({"state_dict": task, "epoch": 3}, tmp_path / "last.ckpt")
    torch.save(source.state_dict(), tmp_path / "plain.pt")
    for file in ("BEATs_strong_1.pt", "last.ckpt", "plain.pt"):
        loaded = create_model("pretrainedsed_beats_strong", checkpoint=str(tmp_path / file), **tiny)
        assert_same_state(loaded, source.state_dict())


def test_atst_frame_upstream_checkpoints(tmp_path):
    atst = ATSTFrame(**TINY)
    ours = randomised(atst)
    teacher = {"model.teacher.encoder." + (k.replace("norm_frame.", "norm.", 1) if k.startswith("norm_frame.")
                                           else k): v for k, v in ours.items()}
    teacher["model.teacher.encoder.cls_token"] = torch.zeros(1, 1, 64)
    student = {k.replace("teacher", "student"): torch.zeros_like(v) for k, v in teacher.items()}
    # audiossl's Lightning file; the registry removes its ``model.`` prefix before the filter sees it
    torch.save({"state_dict": {**student, **teacher}}, tmp_path / "atstframe_base.ckpt")
    loaded = create_model("atst_frame_base", checkpoint=str(tmp_path / "atstframe_base.ckpt"), **TINY)
    assert_same_state(loaded, ours)
    assert atst_frame_upstream({"state_dict": teacher}).keys() == ours.keys()
    fine_tuned = {"encoder.encoder." + k: v for k, v in ours.items()}
    c2f = {"encoder.encoder.frame_encoder." + k: v for k, v in ours.items()}
    c2f["encoder.encoder.teacher_module.pos_embed"] = torch.zeros(1)
    for state in (fine_tuned, c2f, ours):
        assert list(atst_frame_upstream(state)) == list(ours)


def test_hear21passt_wrapper_and_plain_release():
    passt = PaSST(**TINY)
    ours = randomised(passt)
    wrapped = {"net." + k: v for k, v in ours.items()}
    wrapped["device_proxy"] = torch.zeros(1)
    for state in (wrapped, ours):
        passt.load_state_dict(hear21passt(state), strict=True)
    assert_same_state(passt, ours)


def test_microsoft_beats_file_through_the_catalogue(tmp_path):
    tiny = dict(TINY, conv_pos=4, conv_pos_groups=2)
    source = create_model("beats_iter3plus_as2m", **tiny)
    ours = randomised(source)
    ms = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                            "weight_v"): v
          for k, v in ours.items() if "layers.1.self_attn.relative_attention_bias" not in k}
    ms["predictor.weight"] = torch.zeros(527, 64)
    torch.save({"cfg": {"encoder_layers": 2}, "model": ms}, tmp_path / "BEATs_iter3_plus_AS2M.pt")
    loaded = create_model("beats_iter3plus_as2m", checkpoint=str(tmp_path / "BEATs_iter3_plus_AS2M.pt"), **tiny)
    assert_same_state(loaded, ours)


def test_deit_initialisation_of_frame_passt():
    fpasst = FramePaSST(**TINY)
    ours = randomised(fpasst)
    torch.manual_seed(1)
    patch = torch.randn(64, 3, 16, 16)
    grid = torch.full((1, 16, 64), 0.5)  # a 4 x 4 grid of one value: every resized position keeps it
    deit = {"cls_token": ours["cls_token"], "dist_token": ours["dist_token"],
            "pos_embed": torch.cat([torch.randn(1, 2, 64), grid], dim=1), "patch_embed.proj.weight": patch,
            "patch_embed.proj.bias": ours["patch_embed.proj.bias"], "head.weight": torch.zeros(1000, 64),
            "head.bias": torch.zeros(1000), "head_dist.weight": torch.zeros(1000, 64),
            "head_dist.bias": torch.zeros(1000)}
    deit.update({k: v for k, v in ours.items() if k.startswith(("blocks.", "norm."))})
    state = deit_to_frame_passt({"model": deit})
    missing, unexpected = fpasst.load_state_dict(state, strict=False)
    assert unexpected == [] and sorted(missing) == sorted(k for k in ours if k.startswith("conv_in_"))
    torch.testing.assert_close(state["new_pos_embed"], deit["pos_embed"][:, :2])
    assert state["time_new_pos_embed"].shape == (1, 64, 1, 250) and state["freq_new_pos_embed"].shape == (1, 64, 1, 1)
    torch.testing.assert_close(state["time_new_pos_embed"], torch.full((1, 64, 1, 250), 0.5))
    torch.testing.assert_close(state["freq_new_pos_embed"], torch.full((1, 64, 1, 1), 0.5))
    # RGB kernel tiled over the 16 stem channels (channel c = RGB channel c % 3), scaled by 3 / 16, 16x16 -> 128x2
    kernel = state["patch_embed.proj.weight"]
    assert kernel.shape == (64, 16, 128, 2)
    torch.testing.assert_close(kernel[:, 5].reshape(64, 16, 16), patch[:, 2] * 3 / 16)


def test_unwrap_lightning():
    t = torch.zeros(1)
    assert unwrap_lightning({"state_dict": {"a": t}, "epoch": 1}) == {"a": t}
    assert unwrap_lightning({"a": t}) == {"a": t}
