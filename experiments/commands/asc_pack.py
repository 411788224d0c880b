"""``sonolab asc-pack``: a TAU22 development folder -> ``tau_train.h5``, ``tau_test.h5`` and the split lists; a TAU20
folder (``evaluation_setup/``) -> ``tau20_train.h5``, ``tau20_test.h5`` (official fold 1)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from datamodules.sources.tau20 import pack_tau20, tau_layout
from datamodules.sources.tau22 import pack_tau


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab asc-pack --tau-dir DIR --out-dir OUT [--codec pcm16|flac]``: 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="sonolab asc-pack",
                                     description="Pack TAU22 (DCASE Task 1) or TAU20 (DCASE'20 Task 1a) into HDF5.")
    parser.add_argument("--tau-dir", required=True,
                        help="TAU22: meta.csv, audio/, split*.csv, test.csv; TAU20: meta.csv, audio/, "
                             "evaluation_setup/fold1_{train,evaluate}.csv")
    parser.add_argument("--out-dir", required=True, help="output folder for the HDF5 files (and TAU22's split lists)")
    parser.add_argument("--codec", default="pcm16", choices=("pcm16", "flac"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    progress = not args.no_progress
    try:
        if tau_layout(args.tau_dir) == "tau20":
            written = pack_tau20(args.tau_dir, args.out_dir, args.codec, args.workers, progress=progress)
        else:
            written = pack_tau(args.tau_dir, args.out_dir, args.codec, args.workers, progress=progress)
    except (ValueError, OSError) as err:
        print(f"sonolab asc-pack: error: {err}", file=sys.stderr)
        return 2
    for part, path in written.items():
        print(f"{part}: {path}")
    return 0
