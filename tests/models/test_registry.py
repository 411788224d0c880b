"""The catalogue: names, frontends, overrides, checkpoints, errors."""
import pytest
import torch

import models
from models import create_frontend, create_model, get_entry, list_models, register_model
from models.complexity import count_macs, count_params


def test_demo_model_and_frontend_come_from_one_name():
    assert "demo_cnn" in list_models()
    frontend = create_frontend("demo_cnn")
    assert frontend.n_mels == 64
    logits, emb = create_model("demo_cnn", num_classes=3)(frontend(torch.randn(2, 16000)))
    assert logits.shape == (2, 3) and emb.shape == (2, 128)


def test_checkpoint_round_trip_and_lightning_prefix(tmp_path):
    model = create_model("demo_cnn")
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "l.ckpt")
    x = torch.randn(1, 1, 64, 50)
    for path in ("plain.pt", "l.ckpt"):
        loaded = create_model("demo_cnn", checkpoint=str(tmp_path / path)).eval()
        torch.testing.assert_close(loaded(x)[0], model.eval()(x)[0])


@pytest.mark.bad_input
def test_errors_name_the_problem(tmp_path):
    with pytest.raises(KeyError, match="unknown model 'demo_cn'"):
        create_model("demo_cn")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        create_model("demo_cnn", checkpoint=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="no published weights"):
        create_model("demo_cnn", pretrained=True)
    with pytest.raises(ValueError, match="registered twice"):
        register_model("demo_cnn", torch.nn.Identity)
    with pytest.raises(KeyError, match="unknown frontend"):
        create_frontend("nope")


def test_macs_conventions_on_a_hand_counted_network():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 10))
    assert count_params(net) == 36 + 8 + 2560 + 10
    conv, linear = 36 * 64, 2560
    assert count_macs(net, (1, 1, 8, 8), "aten") == conv + linear
    # torchinfo: conv params x output positions; BN and Linear: params (bias included) per sample
    assert count_macs(net, (1, 1, 8, 8), "torchinfo") == conv + 8 + 2570
    with pytest.raises(ValueError, match="convention"):
        count_macs(net, (1, 1, 8, 8), "fvcore")
    assert net.training  # mode restored
