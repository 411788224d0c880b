"""``sonolab demo-data --seed N --out DIR``: the synthetic demo world (:mod:`datamodules.sources.demo`) in the
real layouts, packed."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from datamodules.sources.demo import generate


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab demo-data --seed N --out DIR``."""
    parser = argparse.ArgumentParser(prog="sonolab demo-data", description="Write and pack a small synthetic dataset.")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (replaced if it holds an earlier demo)"
    )
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        summary = generate(args.out, args.seed, workers=args.workers, progress=not args.no_progress)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(summary.text())
    return 0
