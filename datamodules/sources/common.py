"""What the dataset modules share: their error, a required path, audio listings, and packing one set."""
from __future__ import annotations

import os
import sys
from typing import List, Sequence

from datamodules.format.pack import PackItem, pack

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


class LayoutError(ValueError):
    """A dataset folder is incomplete or one of its tables is malformed (the message names file, line, field)."""


def require(path: str, what: str, layout: str = "") -> str:
    """``path`` when it exists; otherwise a FileNotFoundError naming ``what`` the dataset layout expects there (and
    the whole ``layout``, when given)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}" + (f" (expected {layout})" if layout else ""))
    return path


def pack_set(items: Sequence[PackItem], out: str, workers: int, progress: bool, **kwargs) -> str:
    """Packs one set of a dataset (see :func:`datamodules.format.pack.pack`); warns when clips were skipped."""
    report = pack(items, out, workers=workers, progress=progress, **kwargs)
    if report.skipped:
        print(f"warning: {report.skipped} unreadable clips skipped, see {report.errors_path}", file=sys.stderr)
    return out


def list_audio_files(folder: str) -> List[str]:
    """Sorted names of the audio files directly in ``folder`` (unlabeled sets have no table)."""
    return sorted(
        n for n in os.listdir(folder)
        if not n.startswith(".") and n.lower().endswith(AUDIO_EXTENSIONS) and os.path.isfile(os.path.join(folder, n))
    )
