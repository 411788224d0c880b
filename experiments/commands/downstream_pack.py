"""``sonolab downstream-pack {esc50,openmic,tau20,fsd50k} --root DIR --out-dir OUT``: the fine-tuning sets of the
EfficientAT recipes (FSD50K's community HDF5 files share the AudioSet layout; ``fsd50k`` packs the Zenodo layout)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from datamodules.sources.esc50 import pack_esc50
from datamodules.sources.fsd50k import pack_fsd50k
from datamodules.sources.openmic import pack_openmic
from datamodules.sources.tau20 import pack_tau20


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab downstream-pack {esc50,openmic,tau20,fsd50k} --root DIR --out-dir OUT``: 0 on success, 2 on bad
    input (one ``sonolab downstream-pack: error: ...`` line)."""
    parser = argparse.ArgumentParser(prog="sonolab downstream-pack",
                                     description="Pack ESC-50, OpenMIC-2018, TAU20 or FSD50K into sonolab HDF5 files.")
    parser.add_argument("dataset", choices=("esc50", "openmic", "tau20", "fsd50k"))
    parser.add_argument("--root", required=True, help="the dataset folder as downloaded")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--codec", default=None, help="mp3 (default; pcm16 for tau20), flac, ogg or pcm16")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        paths = _pack(args)
    except (ValueError, OSError) as err:  # LayoutError, LabelTableError, TableTextError, missing files
        print(f"sonolab downstream-pack: error: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def _pack(args: argparse.Namespace) -> List[str]:
    progress = not args.no_progress
    if args.dataset == "esc50":
        paths = pack_esc50(args.root, args.out_dir, args.codec or "mp3", workers=args.workers, progress=progress)
    elif args.dataset == "openmic":
        paths = list(pack_openmic(args.root, args.out_dir, args.codec or "mp3", workers=args.workers,
                                  progress=progress).values())
    elif args.dataset == "fsd50k":
        paths = list(pack_fsd50k(args.root, args.out_dir, args.codec or "mp3", workers=args.workers,
                                 progress=progress).values())
    else:
        paths = list(pack_tau20(args.root, args.out_dir, args.codec or "pcm16", workers=args.workers,
                                progress=progress).values())
    return paths
