"""``sonolab audioset-pack --segments LIST.csv --class-labels class_labels_indices.csv --audio-dir DIR --out OUT.h5``:
one AudioSet segments list whose audio was downloaded -> one sonolab HDF5 file (:mod:`datamodules.sources.audioset`)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from datamodules.format.audio_io import CODECS
from datamodules.sources.audioset import DEFAULT_NAME_FORMAT, pack_audioset


def main(argv: Optional[List[str]] = None) -> int:
    """Packs one list; prints the output and how many segments had no audio. 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="sonolab audioset-pack", description=__doc__.split("\n")[0])
    parser.add_argument("--segments", required=True, help="balanced_train_segments.csv, eval_segments.csv, ...")
    parser.add_argument("--class-labels", required=True, help="class_labels_indices.csv")
    parser.add_argument("--audio-dir", required=True, help="folder of the downloaded segments")
    parser.add_argument("--name-format", default=DEFAULT_NAME_FORMAT,
                        help="file name of a segment from {ytid}, {start}, {end} (default %(default)s)")
    parser.add_argument("--out", required=True, metavar="OUT.h5")
    parser.add_argument("--codec", default="mp3", choices=CODECS)
    parser.add_argument("--sample-rate", type=int, default=32000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        out, missing = pack_audioset(args.segments, args.class_labels, args.audio_dir, args.out, codec=args.codec,
                                     sample_rate=args.sample_rate, name_format=args.name_format,
                                     workers=args.workers, progress=not args.no_progress)
    except (ValueError, OSError) as err:  # LayoutError, TableTextError, missing files
        print(f"sonolab audioset-pack: error: {err}", file=sys.stderr)
        return 2
    print(out)
    if missing:
        print(f"{len(missing)} segments of {args.segments} have no audio in {args.audio_dir} (not packed)")
    return 0
