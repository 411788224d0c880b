"""The zoo's checkpoint layouts (tests/models/golden/zoo/*.json) for the transformer tests."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Tuple

import torch

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "zoo"


@lru_cache(maxsize=None)
def layout(name: str) -> dict:
    """The layout file ``name`` (without ``.json``), e.g. ``beats_iter3plus_as2m``."""
    return json.loads((GOLDEN / f"{name}.json").read_text())


def entries(name: str, key: str = "state_dict") -> List[Tuple[str, Tuple[int, ...]]]:
    """Ordered (key, shape) pairs of a layout's ``key`` list."""
    return [(k, tuple(shape)) for k, shape, *_ in layout(name)[key]]


def meta_state(name: str, key: str = "state_dict") -> Dict[str, torch.Tensor]:
    """Meta-device tensors of the layout's shapes (for instant strict loads with ``assign=True``)."""
    return {k: torch.empty(shape, device="meta") for k, shape in entries(name, key)}
