"""Params and MACs of every EfficientAT catalogue name next to the published figures.

MACs follow the EfficientAT convention (torch FlopCounterMode / 2 on a zero input of the entry's shape, eval mode).
Published figures: the EfficientAT README/papers (params in M, GMACs), refined to four decimals by the
checkpoint analysis in specs/checkpoints/efficientat_complexity_table.json. Architectures shared by several names
are counted once. A few ablations of the table that are not catalogue names are built with overrides.

    python benchmarks/efficientat_complexity.py [PATTERN]
"""
from __future__ import annotations

import sys
import time
from typing import Any, Dict, Optional, Tuple

import models  # noqa: F401  (registers the catalogue)
from models.complexity import count_macs, count_params
from models.registry import get_entry, list_models

# name -> (params in M, GMACs, AudioSet mAP or None)
PUBLISHED: Dict[str, Tuple[float, float, Optional[float]]] = {
    "mn01_as": (0.1238, 0.0181, 0.298),
    "mn02_as": (0.3247, 0.0403, 0.378),
    "mn04_as": (0.9836, 0.1106, 0.432),
    "mn05_as": (1.4312, 0.1600, 0.443),
    "mn10_as": (4.8768, 0.5411, 0.471),
    "mn20_as": (17.9093, 2.0594, 0.478),
    "mn30_as": (39.0864, 4.5549, 0.482),
    "mn40_as": (68.4273, 8.0276, 0.484),
    "mn40_as_ext": (68.4273, 8.0276, 0.487),
    "mn40_as_no_im_pre": (68.4273, 8.0276, 0.483),
    "dymn04_as": (1.9612, 0.1174, 0.450),
    "dymn10_as": (10.5485, 0.5817, 0.477),
    "dymn20_as": (39.9661, 2.2210, 0.491),
    "mn10_as_hop_5": (4.8768, 1.0714, 0.475),
    "mn10_as_hop_15": (4.8768, 0.3612, 0.463),
    "mn10_as_hop_20": (4.8768, 0.2743, 0.456),
    "mn10_as_hop_25": (4.8768, 0.2185, 0.447),
    "mn10_as_mels_40": (4.8768, 0.2080, 0.453),
    "mn10_as_mels_64": (4.8768, 0.2722, 0.461),
    "mn10_as_mels_256": (4.8768, 1.0787, 0.474),
    "mn10_as_fc": (3.4786, 0.6039, 0.465),
    "mn10_as_fc_s2221": (3.4786, 1.1477, 0.466),
    "mn10_as_fc_s2211": (3.4786, 3.9780, 0.466),
    # ablations of the complexity table, built from a catalogue name with overrides
    "mn10_mhap4": (7.0232, 0.6687, None),
    "mn10_se_ct_max": (4.9071, 0.5411, None),
    "dymn10_replace_se": (9.8339, 0.5744, None),
}
ABLATIONS: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "mn10_mhap4": ("mn10_as", {"head_type": "multihead_attention_pooling"}),
    "mn10_se_ct_max": ("mn10_as", {"se_dims": "ct"}),
    "dymn10_replace_se": ("dymn10_as", {"use_dy_blocks": "replace_se"}),
}


def _measure(name: str, overrides: Dict[str, Any], cache: Dict[Any, Tuple[int, int]]) -> Tuple[int, int]:
    entry = get_entry(name)
    kwargs = {**entry.kwargs, **overrides}
    key = (entry.builder, repr(sorted(kwargs.items())), entry.input_shape)
    if key not in cache:
        model = entry.builder(**kwargs)
        cache[key] = (count_params(model), count_macs(model, entry.input_shape, entry.macs_convention))
    return cache[key]


def main(pattern: str = "*") -> None:
    names = [n for n in list_models(pattern) if n.startswith(("mn", "dymn"))]
    rows = [(n, n, {}) for n in names] + [(a, base, o) for a, (base, o) in ABLATIONS.items() if base in names]
    cache: Dict[Any, Tuple[int, int]] = {}
    header = (
        f"{'model':<22} {'input':>14} {'params':>12} {'pub. M':>8} {'GMACs':>8} {'pub. G':>8} {'dMACs %':>8} "
        f"{'mAP':>5}"
    )
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    for label, name, overrides in rows:
        params, macs = _measure(name, overrides, cache)
        shape = "x".join(str(s) for s in get_entry(name).input_shape[2:])
        pub_p, pub_g, m_ap = PUBLISHED.get(label, (None, None, None))
        pub_p_s = f"{pub_p:8.4f}" if pub_p is not None else f"{'-':>8}"
        pub_g_s = f"{pub_g:8.4f}" if pub_g is not None else f"{'-':>8}"
        diff = f"{100 * (macs / 1e9 - pub_g) / pub_g:+8.2f}" if pub_g else f"{'-':>8}"
        m_ap_s = f"{m_ap:5.3f}" if m_ap is not None else f"{'-':>5}"
        print(f"{label:<22} {shape:>14} {params:>12,} {pub_p_s} {macs / 1e9:8.4f} {pub_g_s} {diff} {m_ap_s}")
    print(f"\n{len(rows)} rows, {len(cache)} distinct architectures, {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "*")
