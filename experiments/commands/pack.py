"""``sonolab pack``: an audio folder and label tables -> one sonolab HDF5 file (resumable).

    sonolab pack --audio-dir DIR --labels strong.tsv --labels captions.tsv --out train.h5 --codec mp3
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from datamodules.format.audio_io import CODECS
from datamodules.format.label_tables import LabelTableError, read_class_list, read_label_tables
from datamodules.format.pack import pack
from datamodules.format.parts import WORK_DIR_SUFFIX


def build_parser() -> argparse.ArgumentParser:
    """The ``sonolab pack`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sonolab pack",
        description="Pack audio files and tab-separated label tables into one sonolab HDF5 file. "
        "An interrupted run resumes when started again with the same arguments.",
    )
    parser.add_argument("--audio-dir", required=True, help="folder the table file names are relative to")
    parser.add_argument(
        "--labels", action="append", required=True, metavar="TSV",
        help="label table (repeat to merge tables by filename)",
    )
    parser.add_argument("--out", required=True, metavar="OUT.h5", help="output HDF5 file")
    parser.add_argument("--codec", default="mp3", choices=CODECS, help="stored codec (default mp3; pcm16 is lossless)")
    parser.add_argument("--sample-rate", type=int, default=32000, help="output sample rate (default 32000)")
    parser.add_argument("--classes", metavar="FILE", help="class list, one per line (default: sorted labels found)")
    parser.add_argument(
        "--subset", metavar="TSV", help="pack only the files in this table's filename column, in its order"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="encoding processes (default: all cores)"
    )
    parser.add_argument("--skip-missing", action="store_true", help="skip table rows whose audio file is missing")
    parser.add_argument("--chunk-items", type=int, default=64, help="clips per resumable work chunk (default 64)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab pack``: returns 0 on success, 1 on bad input, 130 when interrupted (rerun to resume)."""
    args = build_parser().parse_args(argv)
    try:
        classes = read_class_list(args.classes) if args.classes else None
        labels = read_label_tables(
            args.labels, args.audio_dir, classes=classes, subset=args.subset, skip_missing=args.skip_missing
        )
    except (LabelTableError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name in labels.missing:
        print(f"skipped (missing audio): {name}", file=sys.stderr)
    try:
        report = pack(
            labels.items,
            args.out,
            codec=args.codec,
            sample_rate=args.sample_rate,
            class_names=labels.class_names,
            scene_names=labels.scene_names,
            device_names=labels.device_names,
            city_names=labels.city_names,
            workers=args.workers,
            progress=not args.no_progress,
            chunk_items=args.chunk_items,
        )
    except KeyboardInterrupt:
        print(f"interrupted; finished clips are kept in {args.out}{WORK_DIR_SUFFIX}/, rerun to resume", file=sys.stderr)
        return 130
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    if labels.missing:
        print(f"{len(labels.missing)} table rows skipped for missing audio")
    return 0
