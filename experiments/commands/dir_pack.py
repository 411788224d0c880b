"""``sonolab dir-pack``: a folder of device impulse responses (MicIRP) -> the ``dir_dir`` of DIR augmentation
(docs/dir.md)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from datamodules.sources.micirp import DEFAULT_MAX_SECONDS, pack_impulse_responses
from datamodules.sources.tau22 import STORAGE_RATE


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab dir-pack --ir-dir DIR --out-dir OUT [--sample-rate N] [--max-seconds S]``: 0 on success, 2 on bad
    input. Prints each packed response (source rate, length, peak), then a summary; skipped files go to stderr."""
    parser = argparse.ArgumentParser(prog="sonolab dir-pack",
                                     description="Pack device impulse responses (e.g. the MicIRP WAVs) into the "
                                                 "folder that DIR augmentation reads (dir_dir).")
    parser.add_argument("--ir-dir", required=True, help="folder of impulse responses (any rate, mono or stereo; "
                                                        "read recursively)")
    parser.add_argument("--out-dir", required=True, help="output folder: the dir_dir of the config")
    parser.add_argument("--sample-rate", type=int, default=STORAGE_RATE,
                        help=f"rate DIR works at: the task's storage_rate (default {STORAGE_RATE})")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help=f"longer files are skipped as too long (default {DEFAULT_MAX_SECONDS:g})")
    args = parser.parse_args(argv)
    try:
        report = pack_impulse_responses(args.ir_dir, args.out_dir, args.sample_rate, args.max_seconds)
    except (ValueError, OSError) as err:
        print(f"sonolab dir-pack: error: {err}", file=sys.stderr)
        return 2
    for ir in report.irs:
        print(f"{ir.name}\t{ir.source_rate} Hz\t{ir.seconds:.3f} s\tpeak {ir.peak:.3f}\t{ir.status}")
    for source, kind, message in report.errors:
        print(f"sonolab dir-pack: skipped {source}: {kind}: {message}", file=sys.stderr)
    print(report.summary())
    return 0
