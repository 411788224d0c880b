"""``sonolab ensemble-logits``: the clip-wise mean of several teachers' frame logits (the distillation target)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from datamodules.format.strong_logits import LogitsFileError, average_files


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab ensemble-logits --inputs A.h5 B.h5 ... --out ENSEMBLE.h5``: 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="sonolab ensemble-logits",
        description="Average the strong logits of teacher prediction files (written by `sonolab predict` with "
                    "callbacks.strong_logits_writer.StrongLogitsWriter) into one ensemble file.")
    parser.add_argument("--inputs", nargs="+", required=True, help="logits files of the teachers (same clips)")
    parser.add_argument("--out", required=True, help="ensemble logits file to write")
    args = parser.parse_args(argv)
    if any(args.out == path for path in args.inputs):
        print(f"sonolab ensemble-logits: error: --out {args.out} is also an input", file=sys.stderr)
        return 2
    try:
        count = average_files(args.inputs, args.out)
    except (LogitsFileError, OSError) as err:
        print(f"sonolab ensemble-logits: error: {err}", file=sys.stderr)
        return 2
    print(f"ensemble of {len(args.inputs)} teachers over {count} clips written to {args.out}")
    return 0
