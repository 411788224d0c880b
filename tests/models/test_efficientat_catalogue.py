"""Every EfficientAT catalogue name: builds, carries its frontend, input shape and weight URL; offline loading."""
from __future__ import annotations

import pytest
import torch

import models  # noqa: F401
from models import create_frontend, create_model, get_entry, list_models
from models.efficientat import DyMN, DynamicConv

RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
PUBLISHED = {
    "mn01_as", "mn02_as", "mn04_as", "mn05_as", "mn10_as", "mn20_as", "mn30_as", "mn40_as", "mn40_as_ext",
    "mn10_as_hop_5", "mn10_as_hop_15", "mn10_as_hop_20", "mn10_as_hop_25",
    "mn10_as_mels_40", "mn10_as_mels_64", "mn10_as_mels_256", "mn10_as_fc", "mn10_as_fc_s2221", "mn10_as_fc_s2211",
    "dymn04_as", "dymn10_as", "dymn20_as",
    "mn01_im", "mn02_im", "mn04_im", "mn05_im", "mn10_im", "mn20_im", "mn30_im", "mn40_im", "mn10_im_pytorch",
    "dymn04_im", "dymn10_im", "dymn20_im",
}
NAMES = list_models("mn*") + list_models("dymn*")
HOPS = {"mn10_as_hop_5": (160, 2000), "mn10_as_hop_15": (480, 667), "mn10_as_hop_20": (640, 500),
        "mn10_as_hop_25": (800, 400)}
MELS = {"mn10_as_mels_40": 40, "mn10_as_mels_64": 64, "mn10_as_mels_256": 256}


def test_every_published_name_is_registered() -> None:
    assert PUBLISHED <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_entry_builds_with_its_frontend(name: str) -> None:
    entry = get_entry(name)
    assert entry.frontend == "efficientat_mel" and entry.macs_convention == "aten"
    frontend = create_frontend(name)
    assert entry.input_shape == (1, 1, frontend.n_mels, frontend.frames(32000 * 10))
    if entry.url is None:
        assert name in {"mn06", "mn08", "mn12", "mn14", "mn16"}
    else:
        assert entry.url.startswith(RELEASE) and entry.url.endswith(".pt") and " " not in entry.url
    classes = 1000 if name.endswith("_im") else 527
    assert entry.kwargs["num_classes"] == classes
    with torch.device("meta"):
        model = create_model(name)
    logits, embedding = model.eval()(torch.zeros(entry.input_shape, device="meta"))
    assert logits.shape == (1, classes)
    if isinstance(model, DyMN):
        assert model.temperature == (30.0 if name.endswith("_im") else 1.0)


def test_resolution_variants() -> None:
    for name, (hop, frames) in HOPS.items():
        entry = get_entry(name)
        assert entry.frontend_kwargs == {"hop_size": hop} and entry.input_shape == (1, 1, 128, frames)
        assert entry.kwargs["input_dim_t"] == frames
    for name, n_mels in MELS.items():
        entry = get_entry(name)
        assert entry.frontend_kwargs == {"n_mels": n_mels} and entry.kwargs["input_dim_f"] == n_mels
    assert get_entry("mn10_as_fc_s2211").kwargs["strides"] == (2, 2, 1, 1)
    urls = [get_entry(n).url for n in NAMES if get_entry(n).url]
    assert len(urls) == len(set(urls))


def test_waveform_to_logits_through_the_catalogue() -> None:
    frontend = create_frontend("mn10_as_mels_64").eval()
    spec = frontend(torch.randn(2, 32000))
    assert spec.shape == (2, 1, 64, 100)
    model = create_model("mn04_as").eval()
    with torch.no_grad():
        logits, embedding = model(create_frontend("mn04_as").eval()(torch.randn(2, 32000)))
    assert logits.shape == (2, 527) and embedding.shape == (2, 384)


def test_pretrained_without_network_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="checkpoint=PATH") as info:
        create_model("mn01_as", pretrained=True)
    assert "mn01_as_mAP_298.pt" in str(info.value)
    with pytest.raises(ValueError, match="no published weights"):
        create_model("mn06", pretrained=True)


def test_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    source = create_model("dymn04_as")
    path = tmp_path / "dymn04_as.pt"
    torch.save(source.state_dict(), path)
    loaded = create_model("dymn04_as", checkpoint=str(path))
    for (k, a), (_, b) in zip(source.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert all(m.temperature == 1.0 for m in loaded.modules() if isinstance(m, DynamicConv))
