"""``sonolab pack``: an audio folder and label tables -> one sonolab HDF5 file (resumable).

    sonolab pack --audio-dir DIR --labels strong.tsv --labels captions.tsv --out train.h5 --codec mp3
    sonolab pack --audio-dir DIR --labels clips.csv --split-column split --out data/clips.h5   # clips_train.h5, ...
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from datamodules.format.audio_io import CODECS
from datamodules.format.label_tables import LabelTableError, read_class_list, read_label_tables, split_output_path
from datamodules.format.checks import ERRORS_SUFFIX, check_sample_rate
from datamodules.format.pack import pack
from datamodules.format.parts import LOCK_SUFFIX, WORK_DIR_SUFFIX


def build_parser() -> argparse.ArgumentParser:
    """The ``sonolab pack`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sonolab pack",
        description="Pack audio files and label tables (tab- or comma-separated, UTF-8) into one sonolab HDF5 file "
        "(or one per split). "
        "An interrupted run resumes when started again with the same arguments.",
    )
    parser.add_argument("--audio-dir", required=True, help="folder the table file names are relative to")
    parser.add_argument(
        "--labels", action="append", required=True, metavar="TSV",
        help="label table, tab- or comma-separated (read from the header) (repeat to merge tables by filename)",
    )
    parser.add_argument("--out", required=True, metavar="OUT.h5", help="output HDF5 file")
    parser.add_argument("--codec", default="mp3", choices=CODECS, help="stored codec (default mp3; pcm16 is lossless)")
    parser.add_argument("--sample-rate", type=sample_rate_arg, default=32000,
                        help="output sample rate in Hz, 1..384000 (default 32000; mp3: 8000..48000 MPEG rates)")
    parser.add_argument("--classes", metavar="FILE", help="class list, one per line (default: sorted labels found)")
    parser.add_argument(
        "--subset", metavar="TSV", help="pack only the files in this table's filename column, in its order"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="encoding processes (default: all cores)"
    )
    parser.add_argument("--skip-missing", action="store_true", help="skip table rows whose audio file is missing")
    parser.add_argument(
        "--allow-outside-audio-dir", action="store_true",
        help="accept file names that resolve outside --audio-dir (../x.wav, absolute paths, symlinks out of it)",
    )
    parser.add_argument(
        "--split-column", metavar="COLUMN",
        help="write one file per value of this column: --out data/clips.h5 -> data/clips_train.h5, ... "
        "(shared vocabularies)",
    )
    parser.add_argument("--strict", action="store_true",
                        help="an event ending more than max(1 sample, 10 ms) after its clip is an error (default: it "
                        "is cut at the clip's end, or dropped when it starts there; reported in OUT.errors.tsv)")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="pack files that decode shorter than their header declares as far as they decode "
                        "(default: skipped); both are reported in OUT.errors.tsv")
    parser.add_argument("--chunk-items", type=int, default=64, help="clips per resumable work chunk (default 64)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def sample_rate_arg(text: str) -> int:
    """``--sample-rate``: a whole number of Hz in 1..384000 (argparse names the flag in the error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of Hz, got {text!r}") from None
    try:
        return check_sample_rate(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def check_out_is_not_an_input(out: str, args: argparse.Namespace) -> None:
    """Refuses an output (or its ``.tmp``, ``.errors.tsv``, ``.lock``, ``.parts``) that resolves to a label table,
    the class list, the subset table or the audio folder (pack() itself refuses outputs that are audio files).

    Raises:
        ValueError: Naming both.
    """
    outputs = {os.path.realpath(out + s): out + s for s in ("", ".tmp", ERRORS_SUFFIX, LOCK_SUFFIX, WORK_DIR_SUFFIX)}
    inputs = [("label table", t) for t in args.labels]
    inputs += [("class list", args.classes), ("subset table", args.subset), ("audio folder", args.audio_dir)]
    for what, path in inputs:
        hit = outputs.get(os.path.realpath(path)) if path else None
        if hit:
            also = "" if hit == out else f" (it would write {hit})"
            raise ValueError(f"--out {out} is the {what} {path}{also}; choose another output file")


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab pack``: returns 0 on success, 1 on bad input or a full disk, 130 when interrupted (rerun to
    resume)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_sample_rate(args.sample_rate, args.codec)
    except ValueError as err:
        parser.error(f"argument --sample-rate: {err}")
    try:
        classes = read_class_list(args.classes) if args.classes else None
        labels = read_label_tables(
            args.labels, args.audio_dir, classes=classes, subset=args.subset, skip_missing=args.skip_missing,
            allow_outside=args.allow_outside_audio_dir, split_column=args.split_column,
        )
    except (LabelTableError, OSError) as err:
        print(f"sonolab pack: error: {err}", file=sys.stderr)
        return 1
    for name in labels.missing:
        print(f"skipped (missing audio): {name}", file=sys.stderr)
    outputs = ({split_output_path(args.out, split): items for split, items in labels.splits.items()}
               if args.split_column else {args.out: labels.items})
    for out, items in outputs.items():
        try:
            check_out_is_not_an_input(out, args)
            report = pack(
                items,
                out,
                codec=args.codec,
                sample_rate=args.sample_rate,
                class_names=labels.class_names,
                scene_names=labels.scene_names,
                device_names=labels.device_names,
                city_names=labels.city_names,
                workers=args.workers,
                progress=not args.no_progress,
                chunk_items=args.chunk_items,
                strict=args.strict,
                allow_truncated=args.allow_truncated,
            )
        except KeyboardInterrupt:
            print(f"interrupted; finished clips are kept in {out}{WORK_DIR_SUFFIX}/, rerun to resume", file=sys.stderr)
            return 130
        except (ValueError, OSError) as err:  # OSError: DiskFullError, an output folder we may not write, ...
            print(f"sonolab pack: error: {err}", file=sys.stderr)
            return 1
        print(report.summary())
    if labels.missing:
        print(f"{len(labels.missing)} table rows skipped for missing audio")
    return 0
