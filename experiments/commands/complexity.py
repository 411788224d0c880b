"""``sonolab complexity NAME [--input-shape B,C,F,T] [--json] [--gate fp16]``: params and MACs of a catalogue
model under its paper's convention (every transformer-zoo name at 10 s included: attention matmuls, convolutions,
linears and recurrent layers counted; a second line says whether the frontend is), and the DCASE Task 1 gate."""
from __future__ import annotations

import argparse
import json
from typing import List, Optional

from models.complexity import complexity, frontend_note, parse_shape
from models.registry import create_model, get_entry, list_models


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab complexity NAME [--input-shape B,C,F,T] [--json]``: params and MACs of a catalogue model."""
    parser = argparse.ArgumentParser(prog="sonolab complexity", description=main.__doc__)
    parser.add_argument("name", help="catalogue model name (`sonolab models` lists them)")
    parser.add_argument("--input-shape", help="B,C,F,T (default: the shape the paper quotes)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--gate", choices=["fp32", "fp16", "int8"],
                        help="DCASE Task 1 gate: parameter memory at this deployed precision <= 128,000 B and "
                             "MACs per clip <= 30,000,000; exits 1 with the reason when a limit is exceeded")
    args = parser.parse_args(argv)
    if args.name not in list_models():
        parser.error(f"unknown model {args.name!r}; `sonolab models` lists the catalogue")
    try:
        shape = parse_shape(args.input_shape) if args.input_shape else None
    except ValueError as err:
        parser.error(str(err))
    result = complexity(args.name, shape)
    result["frontend"] = frontend_note(args.name)
    if args.gate:
        from callbacks.complexity_gate import check_complexity  # imports Lightning: only when gating

        report = check_complexity(create_model(args.name), shape or get_entry(args.name).input_shape, args.gate,
                                  name=args.name, convention=result["macs_convention"], raise_on_violation=False)
        result.update(precision=args.gate, param_bytes=report.param_bytes, violations=report.violations)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']}: {result['params']:,} params, {result['macs']:,} MACs "
              f"({result['macs'] / 1e9:.4f} G, {result['macs_convention']} convention) at input {result['input_shape']}")
        print(result["frontend"])
        if args.gate:
            print(f"parameter memory at {args.gate}: {result['param_bytes']:,} B")
            for violation in result["violations"]:
                print(f"GATE FAILED: {violation}")
    return 1 if args.gate and result["violations"] else 0
