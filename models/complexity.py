"""Parameter and multiply-accumulate (MAC) counts under the two conventions the papers use.

* ``aten``: torch's ``FlopCounterMode`` over the forward pass, divided by two. It sees every convolution, matmul
  and batched matmul at the operator level, so per-sample dynamic convolutions (DyMN) are counted in full. This
  reproduces the EfficientAT tables.
* ``torchinfo``: torchinfo's "mult-adds": for every module owning parameters, a convolution adds
  ``params * batch * prod(output spatial dims)`` and any other module adds ``batch * params``. This is what the
  DCASE Task 1 baselines report (CP-Mobile: 29,419,156).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: Sequence[int], convention: str = "aten") -> int:
    """MACs of one forward pass of ``model`` on a zero input of ``input_shape`` in eval mode.

    Args:
        model: The network (its mode is restored afterwards).
        input_shape: Full input shape including batch, e.g. (1, 1, 128, 1000).
        convention: ``"aten"`` or ``"torchinfo"`` (see the module docstring).
    """
    was_training = model.training
    model.eval()
    x = torch.zeros(tuple(input_shape))
    try:
        with torch.no_grad():
            if convention == "aten":
                counter = FlopCounterMode(display=False)
                with counter:
                    model(x)
                return int(counter.get_total_flops()) // 2
            if convention == "torchinfo":
                return _torchinfo_macs(model, x)
            raise ValueError(f"convention must be 'aten' or 'torchinfo', got {convention!r}")
    finally:
        model.train(was_training)


def _torchinfo_macs(model: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def hook(module: nn.Module, _inputs, output) -> None:
        nonlocal total
        out = output[0] if isinstance(output, (tuple, list)) else output
        n_params = sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, nn.modules.conv._ConvNd):
            total += n_params * out.shape[0] * int(torch.tensor(out.shape[2:]).prod())
        else:
            total += n_params * out.shape[0]

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if any(True for _ in m.parameters(recurse=False))
    ]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def complexity(name: str, input_shape: Sequence[int] | None = None) -> dict:
    """Params and MACs of catalogue model ``name`` at its registered (or the given) input shape."""
    from models.registry import create_model, get_entry

    entry = get_entry(name)
    shape = tuple(input_shape) if input_shape is not None else entry.input_shape
    model = create_model(name)
    return {
        "model": name,
        "input_shape": list(shape),
        "params": count_params(model),
        "macs": count_macs(model, shape, entry.macs_convention),
        "macs_convention": entry.macs_convention,
    }


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(s <= 0 for s in shape):
        raise ValueError(f"--input-shape must be positive integers like 1,1,128,1000, got {text!r}")
    return shape
