"""``sonolab asc-pack``: the TAU22 development folder -> ``tau_train.h5``, ``tau_test.h5`` and the split lists."""
from __future__ import annotations

import argparse
from typing import List, Optional

from datamodules.sources.tau22 import pack_tau


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab asc-pack --tau-dir DIR --out-dir OUT [--codec pcm16|flac]``."""
    parser = argparse.ArgumentParser(prog="sonolab asc-pack", description="Pack TAU22 (DCASE Task 1) into HDF5.")
    parser.add_argument("--tau-dir", required=True, help="folder with meta.csv, audio/, split*.csv, test.csv")
    parser.add_argument("--out-dir", required=True, help="output folder for tau_train.h5, tau_test.h5 and splits")
    parser.add_argument("--codec", default="pcm16", choices=("pcm16", "flac"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    written = pack_tau(args.tau_dir, args.out_dir, args.codec, args.workers, progress=not args.no_progress)
    for part, path in written.items():
        print(f"{part}: {path}")
    return 0
