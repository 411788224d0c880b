"""``sonolab sed-pack --desed-root DIR --maestro-root DIR --out-dir OUT``: the DCASE'24 Task 4 data (DESED and
MAESTRO real) -> one sonolab HDF5 file per set (docs/sed-data.md). Resumable like ``sonolab pack``."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Tuple

from datamodules.format.audio_io import CODECS
from datamodules.format.label_tables import LabelTableError, read_class_list
from datamodules.format.checks import check_sample_rate
from datamodules.format.pack import PackReport
from datamodules.format.parts import WORK_DIR_SUFFIX
from datamodules.sources.common import LayoutError
from datamodules.sources.desed import DEFAULT_SAMPLE_RATE, DESED_SETS, pack_desed
from datamodules.sources.maestro import MAESTRO_FILES, pack_maestro
from experiments.commands.pack import sample_rate_arg


ALL_SETS: Tuple[str, ...] = tuple(DESED_SETS) + tuple(MAESTRO_FILES)


def build_parser() -> argparse.ArgumentParser:
    """The ``sonolab sed-pack`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sonolab sed-pack",
        description="Pack DESED (DCASE'24 Task 4 layout) and MAESTRO real into sonolab HDF5 files, one per set. "
        "An interrupted run resumes when started again with the same arguments.",
    )
    parser.add_argument("--desed-root", help="DCASE'24 dataset folder with audio/ and metadata/ (data/dcase/dataset)")
    parser.add_argument("--maestro-root", help="folder with development_audio/ and development_annotation/ (or "
                        "its parent maestro_dev/ or MAESTRO_original/maestro_dev/)")
    parser.add_argument("--out-dir", required=True, help="output folder")
    parser.add_argument("--sets", nargs="+", choices=ALL_SETS, metavar="SET",
                        help=f"sets to pack (default: all found): {', '.join(ALL_SETS)}")
    parser.add_argument("--codec", default="flac", choices=CODECS, help="stored codec (default flac, lossless)")
    parser.add_argument("--sample-rate", type=sample_rate_arg, default=DEFAULT_SAMPLE_RATE,
                        help="output rate in Hz (default 16000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="encoding processes")
    parser.add_argument("--strict", action="store_true",
                        help="a DESED table row whose audio is missing, an event past the end of its clip, or a "
                        "durations-table value that disagrees with the audio by more than max(1 sample, 10 ms) is an "
                        "error (default: missing rows are skipped, events cut or dropped; all is reported, the "
                        "latter in OUT.errors.tsv)")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="pack audio files that decode shorter than their header declares as far as they decode "
                        "(default: skipped; both reported in OUT.errors.tsv)")
    parser.add_argument("--classes", metavar="FILE",
                        help="class list, one per line, replacing DESED's 10 classes for DESED-layout tables with "
                        "another label space (stored in this order; a table label outside it is an error)")
    parser.add_argument("--maestro-classes", metavar="FILE",
                        help="class list replacing MAESTRO real's 17 classes for annotations with another label space")
    parser.add_argument("--maestro-keep-empty", action="store_true",
                        help="also pack MAESTRO chunks without events (the baseline drops them)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _split_sets(args: argparse.Namespace) -> Tuple[Optional[List[str]], Optional[List[str]]]:
    """(DESED sets, MAESTRO sets) to pack: None = all found, [] = none."""
    if args.sets is None:
        return (None if args.desed_root else []), (None if args.maestro_root else [])
    desed = [s for s in args.sets if s in DESED_SETS]
    maestro = [s for s in args.sets if s in MAESTRO_FILES]
    if desed and not args.desed_root:
        raise LayoutError(f"--sets {' '.join(desed)} needs --desed-root")
    if maestro and not args.maestro_root:
        raise LayoutError(f"--sets {' '.join(maestro)} needs --maestro-root")
    return desed, maestro


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab sed-pack``: 0 on success, 1 on bad input, 130 when interrupted (rerun to resume)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_sample_rate(args.sample_rate, args.codec)
    except ValueError as err:
        parser.error(f"argument --sample-rate: {err}")
    if not args.desed_root and not args.maestro_root:
        print("sonolab sed-pack: error: give --desed-root and/or --maestro-root", file=sys.stderr)
        return 1
    progress = not args.no_progress
    reports: Dict[str, PackReport] = {}
    try:
        desed_sets, maestro_sets = _split_sets(args)
        desed_classes = read_class_list(args.classes) if args.classes else None
        maestro_classes = read_class_list(args.maestro_classes) if args.maestro_classes else None
        if desed_sets != []:
            reports.update(pack_desed(args.desed_root, args.out_dir, desed_sets, codec=args.codec,
                                      sample_rate=args.sample_rate, workers=args.workers,
                                      skip_missing=not args.strict, progress=progress, strict=args.strict,
                                      allow_truncated=args.allow_truncated, classes=desed_classes))
        if maestro_sets != []:
            reports.update(pack_maestro(args.maestro_root, args.out_dir, maestro_sets, codec=args.codec,
                                        sample_rate=args.sample_rate, workers=args.workers,
                                        keep_empty=args.maestro_keep_empty, progress=progress,
                                        strict=args.strict, allow_truncated=args.allow_truncated,
                                        classes=maestro_classes))
    except KeyboardInterrupt:
        print(f"interrupted; finished clips are kept in {args.out_dir}/*.h5{WORK_DIR_SUFFIX}/, rerun to resume",
              file=sys.stderr)
        return 130
    except (LayoutError, LabelTableError, ValueError, OSError) as err:  # OSError includes DiskFullError
        print(f"sonolab sed-pack: error: {err}", file=sys.stderr)
        return 1
    for report in reports.values():
        print(report.summary())
    return 0
