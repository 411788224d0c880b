"""The label space of a run and the check that every evaluated file has it, order included.

A file whose class names are those of the training file in another order would silently score every class against
another class's column; a file without class names cannot be checked at all. Both are errors here.
"""
from __future__ import annotations

import os
from typing import List, Sequence

import h5py


class LabelSpaceError(ValueError):
    """A data file's classes do not match the label space of the run."""


def stored_names(path: str, attribute: str = "class_names") -> List[str]:
    """The names of an HDF5 file attribute (``class_names``, ``scene_names``); empty when it is absent."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"HDF5 file {path!r} does not exist")
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get(attribute)
    except OSError as err:
        raise ValueError(f"{path!r} is not a readable HDF5 file: {err}") from err
    if value is None:
        return []
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value]


def show_names(names: Sequence[str], limit: int = 12) -> str:
    """The list as Python prints it, the middle elided beyond ``limit`` names."""
    names = list(names)
    if len(names) <= limit:
        return repr(names)
    head, tail = (", ".join(map(repr, part)) for part in (names[: limit // 2], names[-limit // 2:]))
    return f"[{head}, ..., {tail}] ({len(names)} classes)"


def check_same_classes(found: Sequence[str], expected: Sequence[str], path: str, origin: str,
                       attribute: str = "class_names") -> None:
    """Raises :class:`LabelSpaceError` unless ``found`` (the classes of ``path``) equals ``expected``.

    Args:
        found: The file's class names (empty: it has none).
        expected: The label space.
        path: The file, for the message.
        origin: Where the label space comes from, e.g. ``"train_h5 'train.h5'"``.
        attribute: The file attribute that holds the names, for the message.
    """
    found, expected = list(found), list(expected)
    if found == expected:
        return
    if not found:
        raise LabelSpaceError(f"{path}: the file has no {attribute!r} attribute, so its target columns cannot be "
                              f"checked against the label space of {origin}: {show_names(expected)}")
    differ = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b), min(len(found), len(expected)))
    where = (f"first difference at column {differ}: {found[differ]!r} vs {expected[differ]!r}"
             if differ < min(len(found), len(expected)) else f"{len(found)} vs {len(expected)} classes")
    raise LabelSpaceError(f"{path}: {attribute} {show_names(found)} differ from the label space of {origin}: "
                          f"{show_names(expected)} ({where})")
