"""Deployment precisions for CP-Mobile: int8 (eager-mode static quantisation) and fp16 evaluation.

DCASE Task 1 limits the *parameter memory* to 128 kB. The DCASE'24 baseline (61,148 parameters) fits in fp16
(122,296 B) and is tested in half precision (:func:`to_fp16`, :func:`fp16_forward`); the DCASE'23 CP-Mobile with
GRN (126,952 parameters) only fits in int8, which CP-JKU reached with quantisation-aware training.

int8 post-training static quantisation (PTQ), eager mode::

    qmodel = quantize_int8(model, calibration_batches)          # fp32 model in, int8 CPU model out
    logits, embedding = qmodel(logmel)                           # float tensors in and out

Steps: copy the model and switch it to eval mode; fuse every conv-BN(-ReLU) triple into one conv (BN folded into
the weights and bias, see :func:`fuse_cpmobile`); attach the fbgemm/x86 qconfig (per-channel symmetric int8
weights, histogram-calibrated uint8 activations with reduced range); insert observers; run a few batches of
*log-mel spectrograms* (the frontend stays in float and is not part of the model) to calibrate the activation
ranges; convert. The model's ``QuantStub``/``DeQuantStub`` make the int8 network take and return float tensors;
residual additions go through ``FloatFunctional`` and GRN computes in float between a dequant and a requant.
The result runs on CPU only (quantised kernels of the chosen engine).

Quantisation-aware training (optional): :func:`prepare_qat_int8` fuses in train mode and inserts fake-quant
modules; train as usual, then :func:`convert_int8` gives the int8 model.
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn
from torch.ao import quantization as tq

from models.cpmobile import CPMobile

QUANT_BACKENDS = ("x86", "fbgemm", "qnnpack")


def _fusion_groups(model: CPMobile) -> list[list[str]]:
    """Module-name groups (conv, BN[, ReLU]) that eager-mode fusion merges."""
    groups: list[list[str]] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential) and len(module) in (2, 3) and isinstance(module[0], nn.Conv2d) \
                and isinstance(module[1], nn.BatchNorm2d):
            members = ["0", "1"] + (["2"] if len(module) == 3 and isinstance(module[2], nn.ReLU) else [])
            groups.append([f"{name}.{m}" for m in members])
    return groups


def fuse_cpmobile(model: CPMobile, qat: bool = False) -> CPMobile:
    """Fuses conv/BN(/ReLU) in the stem, every block and the classifier, in place.

    Args:
        model: A :class:`~models.cpmobile.CPMobile`, in eval mode for PTQ (BN folded into the conv) or in train
            mode for QAT (``qat=True``: BN kept as part of a ``ConvBn(ReLU)2d`` so its statistics still update).
        qat: Use the QAT fusion.

    Returns:
        ``model``.
    """
    if not isinstance(model, CPMobile):
        raise TypeError(f"expected a CPMobile, got {type(model).__name__}")
    groups = _fusion_groups(model)
    if qat:
        return tq.fuse_modules_qat(model, groups, inplace=True)
    if model.training:
        raise ValueError("post-training fusion folds BN statistics: call model.eval() first (or pass qat=True)")
    return tq.fuse_modules(model, groups, inplace=True)


def _set_engine(backend: str) -> None:
    if backend not in QUANT_BACKENDS:
        raise ValueError(f"backend must be one of {QUANT_BACKENDS}, got {backend!r}")
    if backend not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f"quantised engine {backend!r} is not available in this torch build "
                           f"(available: {torch.backends.quantized.supported_engines})")
    torch.backends.quantized.engine = backend


def prepare_int8(model: CPMobile, backend: str = "x86") -> CPMobile:
    """A fused copy of ``model`` in eval mode with observers attached, ready for calibration.

    Sets the process-wide quantised engine to ``backend`` (its kernels must match the qconfig).
    """
    _set_engine(backend)
    prepared = fuse_cpmobile(copy.deepcopy(model).cpu().eval())
    prepared.qconfig = tq.get_default_qconfig(backend)
    return tq.prepare(prepared, inplace=True)


@torch.no_grad()
def calibrate(prepared: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Runs (B, 1, F, T) log-mel batches through a prepared model so that its observers see activation ranges.

    Returns:
        The number of batches seen (at least one is needed).
    """
    seen = 0
    for batch in batches:
        prepared(batch.float().cpu())
        seen += 1
    if seen == 0:
        raise ValueError("calibration needs at least one batch")
    return seen


def convert_int8(prepared: nn.Module) -> nn.Module:
    """Converts a calibrated (PTQ) or trained (QAT) prepared model into an int8 model in eval mode (a copy)."""
    return tq.convert(copy.deepcopy(prepared).cpu().eval(), inplace=True)


def quantize_int8(model: CPMobile, calibration_batches: Iterable[torch.Tensor], backend: str = "x86") -> nn.Module:
    """Post-training static int8 quantisation of a trained CP-Mobile (the input model is left unchanged).

    Args:
        model: The fp32 network.
        calibration_batches: A few (B, 1, F, T) log-mel batches from the training distribution, computed by the
            model's frontend in eval mode (no masking); a few hundred clips suffice. The activation ranges, hence
            every int8 output, depend on them: a fixed set (not shuffled, not augmented) makes the result reproducible.
        backend: Quantised engine and qconfig: "x86" (default; fbgemm's successor), "fbgemm" or "qnnpack".

    Returns:
        An int8 model for CPU inference: float (B, 1, F, T) in, float (logits, embedding) out.
    """
    prepared = prepare_int8(model, backend)
    calibrate(prepared, calibration_batches)
    return convert_int8(prepared)


def prepare_qat_int8(model: CPMobile, backend: str = "x86") -> CPMobile:
    """A fused copy of ``model`` in train mode with fake-quantisation, for quantisation-aware training.

    Fine-tune it like the float model; to freeze the quantiser ranges and BN statistics for the last epochs apply
    ``torch.ao.quantization.disable_observer`` and ``torch.ao.nn.intrinsic.qat.freeze_bn_stats`` to it; finally
    :func:`convert_int8`.
    """
    _set_engine(backend)
    prepared = fuse_cpmobile(copy.deepcopy(model).train(), qat=True)
    prepared.qconfig = tq.get_default_qat_qconfig(backend)
    return tq.prepare_qat(prepared, inplace=True)


def to_fp16(model: nn.Module) -> nn.Module:
    """A half-precision copy of ``model`` in eval mode (the deployed fp16 model; ``model`` is left unchanged)."""
    return copy.deepcopy(model).eval().half()


@torch.no_grad()
def fp16_forward(model_fp16: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Evaluates an fp16 model (from :func:`to_fp16`) on a float input, as the DCASE'24 baseline tests.

    The input is cast to fp16 on the model's device; the outputs (one tensor or a tuple) come back as a tuple of
    float32 tensors.
    """
    param = next(model_fp16.parameters())
    if param.dtype != torch.float16:
        raise ValueError(f"expected an fp16 model (see to_fp16), its parameters are {param.dtype}")
    out = model_fp16(x.to(device=param.device, dtype=torch.float16))
    out = out if isinstance(out, (tuple, list)) else (out,)
    return tuple(o.float() for o in out)
