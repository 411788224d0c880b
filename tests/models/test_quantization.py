"""int8 post-training quantisation, QAT preparation and fp16 evaluation of CP-Mobile."""
import pytest
import torch
from torch import nn

import models
from models.quantization import (
    fp16_forward, fuse_cpmobile, prepare_qat_int8, convert_int8, quantize_int8, to_fp16,
)


def _logmel_like(n: int, frames: int) -> torch.Tensor:
    # roughly the range of log(mel + 1e-5), with a per-example spectral tilt so the examples differ
    tilt = torch.linspace(0.0, 3.0, 256).view(1, 1, 256, 1) * torch.rand(n, 1, 1, 1)
    return 2.0 * torch.randn(n, 1, 256, frames) - 3.0 + tilt


def _warmed(name: str, frames: int) -> nn.Module:
    """A model whose BN running statistics come from data (untrained, initial BN stats give near-zero logits)."""
    model = models.create_model(name)
    with torch.no_grad():
        for _ in range(3):
            model(_logmel_like(8, frames))
    return model.eval()


@pytest.mark.parametrize("name,frames", [("cp_mobile_dcase24", 65), ("cp_mobile_grn_dcase23", 64)])
def test_int8_agrees_with_fp32(name, frames):
    torch.manual_seed(0)
    model = _warmed(name, frames)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel = quantize_int8(model, [_logmel_like(8, frames) for _ in range(2)])
    x = _logmel_like(16, frames)
    with torch.no_grad():
        logits, embedding = model(x)
        q_logits, q_embedding = qmodel(x)
    assert q_logits.dtype == torch.float32 and q_logits.shape == (16, 10) and q_embedding.shape == embedding.shape
    assert (q_logits.argmax(1) == logits.argmax(1)).float().mean() >= 0.8
    assert (q_logits - logits).abs().max() < 0.1 * logits.abs().max()
    # the float model is untouched and no conv of the int8 model is float any more
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    assert not any(type(m) is nn.Conv2d or isinstance(m, nn.BatchNorm2d) for m in qmodel.modules())


def test_fusion_needs_eval_mode():
    model = models.create_model("cp_mobile_dcase24")
    with pytest.raises(ValueError, match="eval"):
        fuse_cpmobile(model)


def test_fused_float_model_is_equivalent():
    torch.manual_seed(0)
    model = _warmed("cp_mobile_dcase24", 65)
    x = _logmel_like(4, 65)
    with torch.no_grad():
        expected = model(x)[0]
        fused = fuse_cpmobile(model)
        torch.testing.assert_close(fused(x)[0], expected, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())


def test_qat_prepare_train_convert():
    torch.manual_seed(0)
    prepared = prepare_qat_int8(models.create_model("cp_mobile_dcase24"))
    x, y = _logmel_like(8, 65), torch.randint(0, 10, (8,))
    nn.functional.cross_entropy(prepared(x)[0], y).backward()
    qmodel = convert_int8(prepared)
    with torch.no_grad():
        assert qmodel(x)[0].shape == (8, 10)


def test_fp16_evaluation_matches_fp32():
    torch.manual_seed(0)
    model = _warmed("cp_mobile_dcase24", 65)
    half = to_fp16(model)
    assert next(model.parameters()).dtype == torch.float32 and next(half.parameters()).dtype == torch.float16
    x = _logmel_like(4, 65)
    logits, _ = fp16_forward(half, x)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x)[0], rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="fp16"):
        fp16_forward(model, x)
