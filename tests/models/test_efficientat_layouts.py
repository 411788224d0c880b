"""MN/DyMN against the published checkpoints: state-dict layout, parameter counts, feature maps, MACs.

The reference figures (golden/efficientat_layouts.json) are copied from specs/checkpoints/efficientat_*.json.
Large models are checked on the meta device (shapes and operator counts without arithmetic).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import models  # noqa: F401
from models import create_model
from models.complexity import complexity, count_macs, count_params

GOLDEN = json.loads((Path(__file__).parent / "golden" / "efficientat_layouts.json").read_text())
NAMES = sorted(GOLDEN["models"])
SMALL = ("mn04_as", "dymn04_as")  # cheap enough to build and run for real


def reference_layout(name: str) -> list[tuple[str, list[int]]]:
    ref = GOLDEN["models"][name]
    return list(zip(GOLDEN["families"][ref["family"]], ref["shapes"]))


def build(name: str, meta: bool) -> torch.nn.Module:
    if meta:
        with torch.device("meta"):
            return create_model(name)
    return create_model(name)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes_in_order(name: str) -> None:
    model = build(name, meta=True)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == reference_layout(name)


@pytest.mark.parametrize("name", NAMES)
def test_published_layout_loads_strictly(name: str) -> None:
    meta = name not in SMALL
    model = build(name, meta=meta)
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in reference_layout(name):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7) if not meta else torch.empty((), dtype=torch.long, device="meta")
        elif meta:
            state[key] = torch.empty(shape, device="meta")
        else:
            state[key] = torch.randn(shape, generator=gen)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert list(model.state_dict()) == [k for k, _ in reference_layout(name)]
    if not meta:
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts(name: str) -> None:
    model = build(name, meta=True)
    ref = GOLDEN["models"][name]
    assert count_params(model) == ref["total_params"]
    numel = sum(v.numel() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert numel == ref["state_dict_numel_excl_num_batches_tracked"]


@pytest.mark.parametrize("name", NAMES)
def test_output_and_feature_map_shapes_and_macs(name: str) -> None:
    model = build(name, meta=True).eval()
    ref = GOLDEN["models"][name]
    x = torch.zeros(ref["input_shape"], device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        logits, embedding, fmaps = model(x, return_fmaps=True)
    assert list(logits.shape) == ref["logits_shape"]
    assert list(embedding.shape) == ref["embedding_shape"]
    assert [list(f.shape) for f in fmaps] == ref["fmap_shapes"]
    assert counter.get_total_flops() // 2 == ref["macs_flopcounter"]
    # Kernel mixing is a matmul: the reference counts it as bmm, ours as mm (same flops).
    per_op = {str(op).split(".")[1]: n for op, n in counter.get_flop_counts()["Global"].items()}
    ref_ops = {k.split(".")[1]: v for k, v in ref["flopcounter_flops_per_op"].items()}
    assert per_op["convolution"] == ref_ops["convolution"]
    assert per_op.get("addmm", 0) == ref_ops["addmm"]
    assert per_op.get("mm", 0) + per_op.get("bmm", 0) == ref_ops.get("bmm", 0) + ref_ops.get("mm", 0)


@pytest.mark.parametrize("name", SMALL)
def test_real_forward_shapes_and_macs(name: str) -> None:
    """The same figures with real tensors, through the complexity API."""
    ref = GOLDEN["models"][name]
    model = create_model(name).eval()
    with torch.no_grad():
        logits, embedding, fmaps = model(torch.randn(ref["input_shape"]), return_fmaps=True)
    assert [list(f.shape) for f in fmaps] == ref["fmap_shapes"]
    assert torch.equal(embedding, fmaps[-1].mean(dim=(2, 3)))
    assert torch.isfinite(logits).all()
    assert count_macs(model, ref["input_shape"]) == ref["macs_flopcounter"]


def test_complexity_api_mn10() -> None:
    result = complexity("mn10_as")
    assert result["params"] == 4_876_831
    assert result["macs"] == 541_078_208
