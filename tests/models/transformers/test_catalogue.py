"""The transformer zoo's catalogue names: builders, frontends, 10 s input shapes, weights, parameter counts."""
import pytest
import torch

from models import create_frontend, create_model, get_entry, list_models
from models.transformers.beats import beats_state_dict_filter
from models.transformers.catalogue import PRETRAINEDSED, PRETRAINEDSED_URL
from models.transformers.checkpoints import atst_frame_upstream, hear21passt
from models.transformers.frame_sed import FrameSED
from tests.models.transformers.layouts import layout

pytestmark = pytest.mark.usefixtures("one_thread")

BACKBONES = {  # name -> (frontend, input shape for 10 s)
    "beats_iter3_as2m": ("beats_fbank", (1, 1, 128, 998)),
    "beats_iter3plus_as2m": ("beats_fbank", (1, 1, 128, 998)),
    "atst_frame_base": ("atst_mel", (1, 1, 64, 1001)),
    "fpasst_deit_b_frame": ("fpasst_mel", (1, 1, 128, 1000)),
    "passt_s_swa_p16_128_ap476": ("passt_mel", (1, 1, 128, 1000)),
    "m2d_clap_vit_base_80x1001p16x16": (None, (1, 160000)),
    "asit_vit_base_128x592p16": ("asit_fbank", (1, 1, 128, 998)),
}
RELEASE_FILES = {"beats": "BEATs", "atst_frame": "ATST-F", "fpasst": "fpasst", "m2d": "M2D", "asit": "ASIT"}
LAYOUT_OF = {"beats_iter3_as2m": "beats_iter3plus_as2m"}  # same architecture as iter3+


def meta_params(name):
    with torch.device("meta"):
        return sum(p.numel() for p in create_model(name).parameters())


def test_every_zoo_name_is_registered():
    names = set(BACKBONES) | {f"pretrainedsed_{m}_{kind}" for m in RELEASE_FILES for kind in ("strong", "teacher")}
    assert names <= set(list_models())
    assert set(list_models("pretrainedsed_*")) == {n for n in names if n.startswith("pretrainedsed_")}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_frontend_gives_the_registered_10_second_input(name):
    frontend, shape = BACKBONES[name]
    entry = get_entry(name)
    assert (entry.frontend, entry.input_shape) == (frontend, shape)
    if frontend is None:
        return
    rate = 32000 if name.startswith("passt") else 16000
    with torch.no_grad():
        assert tuple(create_frontend(name).eval()(torch.zeros(1, 10 * rate)).shape) == shape


@pytest.mark.parametrize("name", list(BACKBONES))
def test_backbone_parameter_count_equals_the_layout(name):
    assert meta_params(name) == layout(LAYOUT_OF.get(name, name))["total_params_backbone"]


@pytest.mark.parametrize("model", list(RELEASE_FILES))
def test_pretrainedsed_entries(model):
    backbone = PRETRAINEDSED[model][0]
    strong, teacher = get_entry(f"pretrainedsed_{model}_strong"), get_entry(f"pretrainedsed_{model}_teacher")
    assert strong.builder is FrameSED and strong.frontend is None and strong.input_shape == (1, 160000)
    assert strong.url == f"{PRETRAINEDSED_URL}{RELEASE_FILES[model]}_strong_1.pt"
    assert dict(strong.kwargs) == {"backbone": backbone, "n_classes_strong": 447, "n_classes_weak": 447,
                                   "seq_model": "none"}
    assert teacher.url is None and teacher.kwargs["seq_model"] == "gru" and teacher.kwargs["seq_hidden"] == 2048
    assert teacher.state_dict_filter is strong.state_dict_filter
    params = meta_params(f"pretrainedsed_{model}_strong")
    assert params == layout(backbone)["total_params_wrapper"] == PRETRAINEDSED[model][3]
    assert f"{params:,} params" in strong.description


def test_weights_and_filters_of_the_backbones():
    assert get_entry("beats_iter3plus_as2m").url.startswith(
        "https://valle.blob.core.windows.net/share/BEATs/BEATs_iter3_plus_AS2M.pt?")
    assert get_entry("beats_iter3_as2m").url.startswith(
        "https://valle.blob.core.windows.net/share/BEATs/BEATs_iter3.pt?")
    assert get_entry("beats_iter3_as2m").state_dict_filter is beats_state_dict_filter
    assert get_entry("passt_s_swa_p16_128_ap476").url == (
        "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt")
    assert get_entry("passt_s_swa_p16_128_ap476").state_dict_filter is hear21passt
    assert get_entry("atst_frame_base").state_dict_filter is atst_frame_upstream
    # no file that torch.hub can fetch and load strictly: the description says what to do
    for name, hint in (("atst_frame_base", "checkpoint=PATH"), ("fpasst_deit_b_frame", "strict=False"),
                       ("m2d_clap_vit_base_80x1001p16x16", "checkpoint=PATH"),
                       ("asit_vit_base_128x592p16", "checkpoint=PATH")):
        assert get_entry(name).url is None and hint in get_entry(name).description
    with pytest.raises(ValueError, match="'pretrainedsed_beats_teacher' has no published weights"):
        create_model("pretrainedsed_beats_teacher", pretrained=True, seq_hidden=4,
                     backbone_overrides={"embed_dim": 32, "depth": 1, "num_heads": 2})
