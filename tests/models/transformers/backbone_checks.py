"""Checks shared by the ViT-family backbone tests (ATST-Frame, fPaSST, PaSST-S, M2D, ASiT)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from models.transformers.attention import set_sdpa
from tests.models.transformers.layouts import entries, layout, meta_state

TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2}


def first(output):
    """The tensor a test compares: the output itself, or the first of a tuple."""
    return output[0] if isinstance(output, tuple) else output


def check_published_layout(build: Callable[[], nn.Module], name: str) -> nn.Module:
    """Full size on the meta device: ordered keys and shapes, float32, parameter count, strict load."""
    with torch.device("meta"):
        model = build()
    state = model.state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == entries(name)
    assert {v.dtype for v in state.values()} == {torch.float32}
    assert sum(p.numel() for p in model.parameters()) == layout(name)["total_params_backbone"]
    result = model.load_state_dict(meta_state(name), strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model


def check_top_norm(model: nn.Module, name: str, wrapper_prefix: str) -> None:
    """``TOP_NORM`` selects exactly the non-block parameters of the layout's top lr group (group 0)."""
    top = layout(name)["lr_groups"][0]["non_block_params"]
    expected = {key[len(wrapper_prefix):] for key in top}
    ours = {n for n, _ in model.named_parameters() if n.startswith(model.TOP_NORM)}
    assert ours == expected


def check_eval_and_sdpa(model: nn.Module, x: torch.Tensor) -> None:
    """Eval is deterministic (dropouts configured but off) and the fused and plain attention agree within 1e-4."""
    model.eval()
    with torch.no_grad():
        fused = first(model(x))
        again = first(model(x))
        assert set_sdpa(model, False) == len(model.blocks)
        plain = first(model(x))
        set_sdpa(model, True)
    assert torch.equal(fused, again)
    torch.testing.assert_close(plain, fused, atol=1e-4, rtol=0)


def check_gradients(model: nn.Module, x: torch.Tensor, unused: Sequence[str] = ()) -> None:
    """Train mode: every trainable parameter except ``unused`` gets a finite, non-zero gradient; ``unused`` none."""
    model.train()
    out = model(x)
    loss = sum(o.square().mean() for o in (out if isinstance(out, tuple) else (out,)))
    loss.backward()
    for name, param in model.named_parameters():
        if name in unused or not param.requires_grad:
            assert param.grad is None, name
        else:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
            assert param.grad.abs().sum() > 0, name


def block_inputs(run: Callable[[], object], block: nn.Module) -> list[torch.Tensor]:
    """The token sequences entering ``block`` during ``run()``, one per call (captured with a forward pre-hook)."""
    seen = []
    handle = block.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    return seen
