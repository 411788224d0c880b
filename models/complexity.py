"""Parameter and multiply-accumulate (MAC) counts under the two conventions the papers use.

* ``aten``: torch's ``FlopCounterMode`` over the forward pass, divided by two. It sees every convolution, matmul
  and batched matmul at the operator level, so per-sample dynamic convolutions (DyMN) are counted in full. This
  reproduces the EfficientAT tables.
* ``torchinfo``: torchinfo's "mult-adds": for every module owning parameters, a convolution adds
  ``params * batch * prod(output spatial dims)`` and any other module adds ``batch * params``. This is what the
  DCASE Task 1 baselines report (CP-Mobile: 29,419,156).

Two things ``FlopCounterMode`` would miss or make slow are handled in :func:`count_macs`:

* Attention. On the CPU, ``scaled_dot_product_attention`` runs the fused op
  ``aten._scaled_dot_product_flash_attention_for_cpu``, for which torch has no formula: the ``q k^T`` and
  ``weights v`` matmuls would silently count 0. It gets the formula of the GPU kernels (``2 B H S_q S_k D_h`` MACs),
  so the fused and the plain form (:func:`models.transformers.attention.set_sdpa`) count the same.
* Recurrent layers (``nn.GRU``, ``nn.LSTM``, ``nn.RNN``). ``FlopCounterMode`` counts a GRU or RNN (decomposed into
  one ``addmm`` per step and gate block) but on the CPU sees an LSTM as one fused ``mkldnn_rnn_layer`` op: 0. And
  stepping through 250 frames op by op takes seconds on the meta device. So they are counted by formula,
  :func:`rnn_macs` (what the decomposed layer counts):
  ``steps x batch x directions x sum over layers of gates x hidden x (layer input + hidden)`` (gates: GRU 3,
  LSTM 4, RNN 1; biases and the gate nonlinearities are not multiply-accumulates).

:func:`complexity` builds a catalogue model on the meta device (no memory, no initialisation) and counts its
parameters and MACs there: shapes only, so a ViT-B at 10 s takes a fraction of a second (plus about 2 s of lazy
imports at the first meta operation of a process). A model with an operator that has no meta kernel (the frontends'
``torch.autocast`` guard) is counted under ``FakeTensorMode`` instead: CPU operator semantics on tensors without data.
A model whose registered frontend is applied outside it (its input is the frontend output) is counted without the
frontend; a model that takes the waveform includes its frontend, whose convolutions and matmuls are counted but not
its FFTs (``FlopCounterMode`` has no FFT formula).
"""
from __future__ import annotations

import contextlib
import itertools
import math
from typing import Iterator, List, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

RNN_GATES = {"GRU": 3, "LSTM": 4, "RNN_TANH": 1, "RNN_RELU": 1}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


_CPU_SDPA = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs (2 per MAC) of the fused CPU attention op: its two matmuls, as torch counts the GPU kernels."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def rnn_macs(rnn: nn.RNNBase, steps: int, batch: int = 1) -> int:
    """MACs of ``rnn`` over ``steps`` time steps: per step, direction and layer ``gates * hidden * (input + hidden)``.

    Layer 0 sees ``input_size`` features, later layers ``directions * hidden_size``. This is what
    ``FlopCounterMode`` counts for the decomposed layer (input and hidden ``addmm``); biases are not MACs.
    """
    if rnn.proj_size:
        raise ValueError(f"rnn_macs: LSTM with proj_size={rnn.proj_size} is not covered by the formula")
    directions = 2 if rnn.bidirectional else 1
    hidden = rnn.hidden_size
    per_step = sum(RNN_GATES[rnn.mode] * hidden * ((rnn.input_size if layer == 0 else directions * hidden) + hidden)
                   for layer in range(rnn.num_layers))
    return steps * batch * directions * per_step


@contextlib.contextmanager
def _rnns_by_formula(model: nn.Module) -> Iterator[List[int]]:
    """Within the block every recurrent layer of ``model`` fed a batched tensor returns zeros of its output shapes
    and appends :func:`rnn_macs` to the yielded list instead of running (the MACs of a counting pass only)."""
    total: List[int] = []

    def shortcut(rnn: nn.RNNBase):
        def forward(x, hx=None):
            if not isinstance(x, torch.Tensor) or x.dim() != 3 or rnn.proj_size:
                return type(rnn).forward(rnn, x, hx)  # unbatched / packed / projected: FlopCounterMode counts it
            steps, batch = (x.shape[1], x.shape[0]) if rnn.batch_first else (x.shape[0], x.shape[1])
            total.append(rnn_macs(rnn, steps, batch))
            directions = 2 if rnn.bidirectional else 1
            out = x.new_zeros(x.shape[:2] + (directions * rnn.hidden_size,))
            state = x.new_zeros(rnn.num_layers * directions, batch, rnn.hidden_size)
            return out, ((state, state.clone()) if rnn.mode == "LSTM" else state)
        return forward

    rnns = [m for m in model.modules() if isinstance(m, nn.RNNBase) and "forward" not in vars(m)]
    for rnn in rnns:
        rnn.forward = shortcut(rnn)
    try:
        yield total
    finally:
        for rnn in rnns:
            del rnn.forward


def count_macs(model: nn.Module, input_shape: Sequence[int], convention: str = "aten") -> int:
    """MACs of one forward pass of ``model`` on a zero input of ``input_shape`` in eval mode.

    The input is made on the device of the model's tensors (the meta device counts shapes only) and, under an
    active ``FakeTensorMode``, is a fake tensor. Attention and recurrent layers: see the module docstring.

    Args:
        model: The network (its mode is restored afterwards).
        input_shape: Full input shape including batch, e.g. (1, 1, 128, 1000).
        convention: ``"aten"`` or ``"torchinfo"`` (see the module docstring).
    """
    was_training = model.training
    model.eval()
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    x = torch.zeros(tuple(input_shape), device=None if first is None else first.device)
    try:
        with torch.no_grad():
            if convention == "aten":
                counter = FlopCounterMode(display=False, custom_mapping={_CPU_SDPA: _sdpa_flops})
                with counter, _rnns_by_formula(model) as rnn_total:
                    model(x)
                return int(counter.get_total_flops()) // 2 + sum(rnn_total)
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
            total += n_params * out.shape[0] * math.prod(out.shape[2:])
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
    """Params and MACs of catalogue model ``name`` at its registered (or the given) input shape.

    The model is built and counted on the meta device, or under ``FakeTensorMode`` when one of its operators has no
    meta kernel (see the module docstring): no weights are initialised and no arithmetic is done.
    :func:`frontend_note` says whether the frontend is included.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    from models.registry import create_model, get_entry

    entry = get_entry(name)
    shape = tuple(input_shape) if input_shape is not None else entry.input_shape
    with torch.device("meta"):
        model = create_model(name)
    params = count_params(model)
    try:
        macs = count_macs(model.to("meta"), shape, entry.macs_convention)  # a frontend built on the CPU moves too
    except (RuntimeError, NotImplementedError):  # no meta kernel, e.g. the frontends' torch.autocast guard
        # CPU tensors without values (their pages are never touched); FakeTensorMode runs the ops on shapes only.
        # A genuine error (a wrong input shape) is raised again here.
        model.to_empty(device="cpu")
        with FakeTensorMode(allow_non_fake_inputs=True):
            macs = count_macs(model, shape, entry.macs_convention)
    return {
        "model": name,
        "input_shape": list(shape),
        "params": params,
        "macs": macs,
        "macs_convention": entry.macs_convention,
    }


def frontend_note(name: str) -> str:
    """Whether the MACs of catalogue model ``name`` include its frontend (one line for reports)."""
    from models.registry import get_entry

    frontend = get_entry(name).frontend
    if frontend is not None:
        return f"frontend {frontend} not included (the input is its output)"
    return "frontend included (waveform input; its convolutions and matmuls are counted, FFTs are not)"


def parse_shape(text: str) -> tuple:
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(s <= 0 for s in shape):
        raise ValueError(f"--input-shape must be positive integers like 1,1,128,1000, got {text!r}")
    return shape
