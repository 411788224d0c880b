"""The SED label space, MAESTRO <-> DESED class aliases and per-source valid-class masks.

DCASE'24 Task 4 trains one model on two annotation vocabularies: the 10 DESED classes and the 17 MAESTRO real
classes (label space of 27, DESED first). A clip only says something about the classes of its own data set, so every
row carries a *valid-class mask*; losses zero targets and predictions outside it.

Aliases share evidence between the vocabularies. MAESTRO -> DESED (on by default): ``people talking``,
``children voices``, ``announcement`` -> ``Speech``; ``cutlery and dishes`` -> ``Dishes``. The alias target becomes
the maximum over its sources (confidence-preserving: soft MAESTRO confidences carry over) and joins the mask.

The reverse DESED -> MAESTRO mapping (``Speech`` -> ``people talking``, ``Dishes`` -> ``cutlery and dishes``) is
off by default. The CP-JKU DCASE'24 system maps back, but it is ambiguous: DESED ``Speech`` also covers children
and announcements (three MAESTRO classes fold into it, only one is chosen on the way back), and domestic DESED
speech or dishes are not the MAESTRO scenes' sounds. Turn it on (``reverse_aliases=True``) to reproduce CP-JKU.

A class of a source file outside the label space (e.g. MAESTRO classes under ``classes="desed"``) is ignored with a
warning, or raises ``ValueError`` when ``strict=True``. It can still feed an alias whose target is in the label
space (``people talking`` -> ``Speech`` under ``classes="desed"``).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence, Tuple, Union

import numpy as np

from datamodules.format.label_tables import read_class_list
from datamodules.sed.label_encoder import DESED_CLASSES, MAESTRO_REAL_CLASSES

SED_CLASSES_DCASE24: Tuple[str, ...] = DESED_CLASSES + MAESTRO_REAL_CLASSES
MAESTRO_TO_DESED: Mapping[str, str] = {
    "people talking": "Speech",
    "children voices": "Speech",
    "announcement": "Speech",
    "cutlery and dishes": "Dishes",
}
DESED_TO_MAESTRO: Mapping[str, str] = {
    "Speech": "people talking",
    "Dishes": "cutlery and dishes",
}
CLASS_PRESETS: Mapping[str, Tuple[str, ...]] = {
    "desed": DESED_CLASSES,
    "maestro": MAESTRO_REAL_CLASSES,
    "dcase24": SED_CLASSES_DCASE24,
}
AliasPairs = Tuple[Tuple[int, int], ...]


def resolve_classes(classes: Union[str, Sequence[str]], field: str = "classes") -> Tuple[str, ...]:
    """Class names of a ``classes`` setting.

    Args:
        classes: A preset name (``"desed"`` 10, ``"maestro"`` 17, ``"dcase24"`` 27), a path to a file with one
            class per line, or an explicit list of names.
        field: Name of the setting, for error messages.

    Raises:
        ValueError: Unknown preset and no such file, an empty list, duplicates or non-string names.
    """
    if isinstance(classes, str):
        if classes in CLASS_PRESETS:
            return CLASS_PRESETS[classes]
        if os.path.isfile(classes):
            return tuple(read_class_list(classes))
        raise ValueError(f"{field}: expected a preset name {sorted(CLASS_PRESETS)} or the path to a classes file "
                         f"(one name per line), got {classes!r} (no such file)")
    names = list(classes)
    if not names:
        raise ValueError(f"{field}: the class list is empty")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"{field}: class names must be non-empty strings, got {bad[:3]}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{field}: classes listed twice: {repeated}")
    return tuple(names)


def alias_table(aliases: bool = True, reverse_aliases: bool = False) -> Mapping[str, str]:
    """Source class -> target class of the enabled aliases (MAESTRO -> DESED, optionally DESED -> MAESTRO)."""
    table = dict(MAESTRO_TO_DESED) if aliases else {}
    if reverse_aliases:
        table.update(DESED_TO_MAESTRO)
    return table


def apply_aliases(
    strong: np.ndarray, weak: np.ndarray, mask: np.ndarray, pairs: AliasPairs
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies alias sources into their targets.

    Every target row becomes the maximum of itself and its *valid* sources (``mask[source]``), all read before any
    change (so the order of the pairs and chains such as Speech <-> people talking do not matter); the target joins
    the mask when one of its sources is valid.

    Args:
        strong: ``(..., C, T)`` frame targets.
        weak: ``(..., C)`` clip targets.
        mask: ``(..., C)`` valid classes.
        pairs: ``(source row, target row)`` pairs.

    Returns:
        New ``(strong, weak, mask)`` (inputs are not modified).
    """
    strong, weak, mask = np.asarray(strong), np.asarray(weak), np.asarray(mask, dtype=bool)
    if strong.shape[:-1] != weak.shape or weak.shape != mask.shape:
        raise ValueError(f"apply_aliases: strong (..., C, T), weak (..., C) and mask (..., C) must agree, got "
                         f"{strong.shape}, {weak.shape}, {mask.shape}")
    out_strong, out_weak, out_mask = strong.copy(), weak.copy(), mask.copy()
    for source, target in pairs:
        valid = mask[..., source]
        out_strong[..., target, :] = np.where(
            valid[..., None], np.maximum(out_strong[..., target, :], strong[..., source, :]), out_strong[..., target, :]
        )
        out_weak[..., target] = np.where(valid, np.maximum(out_weak[..., target], weak[..., source]),
                                         out_weak[..., target])
        out_mask[..., target] |= valid
    return out_strong, out_weak, out_mask


@dataclass(frozen=True)
class ClassMapping:
    """How one source file's class vocabulary lands in the label space.

    Targets are encoded over :attr:`vocabulary`: the label space followed by the file's alias sources that are not
    in it (``extra``); :meth:`to_label_space` applies the aliases and drops the extra rows.

    Attributes:
        label_space: The model's classes (``C``).
        extra: Alias sources of the file outside the label space.
        file_classes: The file's own classes, in its column order.
        index: ``(len(file_classes),)`` row of each file class in :attr:`vocabulary`, -1 for ignored classes.
        pairs: Active ``(source row, target row)`` alias pairs over :attr:`vocabulary`.
        mask: ``(C,)`` valid classes: file classes in the label space plus the targets of active aliases.
    """

    label_space: Tuple[str, ...]
    extra: Tuple[str, ...]
    file_classes: Tuple[str, ...]
    index: np.ndarray
    pairs: AliasPairs
    mask: np.ndarray

    @property
    def vocabulary(self) -> Tuple[str, ...]:
        """Rows of the targets before :meth:`to_label_space`."""
        return self.label_space + self.extra

    @property
    def source_mask(self) -> np.ndarray:
        """``(len(vocabulary),)`` rows the file annotates (before aliases)."""
        present = np.zeros(len(self.vocabulary), dtype=bool)
        present[self.index[self.index >= 0]] = True
        return present

    def to_label_space(self, strong: np.ndarray, weak: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Applies the aliases to ``(V, T)``/``(V,)`` targets over :attr:`vocabulary`; returns ``(C, T)``, ``(C,)``."""
        strong, weak, _ = apply_aliases(strong, weak, self.source_mask, self.pairs)
        n = len(self.label_space)
        return strong[:n], weak[:n]


def map_classes(
    file_classes: Sequence[str],
    label_space: Sequence[str],
    aliases: bool = True,
    reverse_aliases: bool = False,
    strict: bool = False,
    source: str = "source",
) -> ClassMapping:
    """Index map, alias pairs and valid-class mask of a file's classes in the label space.

    Args:
        file_classes: The file's class names (``class_names`` attribute), in column order.
        label_space: The model's classes.
        aliases: MAESTRO -> DESED aliases (see the module docstring).
        reverse_aliases: Also DESED -> MAESTRO (CP-JKU; ambiguous, off by default).
        strict: Raise on file classes outside the label space instead of ignoring them with a warning.
        source: The file (or source name), for messages.

    Raises:
        ValueError: ``strict`` and a file class outside the label space.
    """
    label_space, file_classes = tuple(label_space), tuple(file_classes)
    table = alias_table(aliases, reverse_aliases)
    row = {name: i for i, name in enumerate(label_space)}
    extra = tuple(n for n in file_classes if n not in row and table.get(n) in row)
    row.update({name: len(label_space) + i for i, name in enumerate(extra)})
    unknown = [n for n in file_classes if n not in label_space]
    if unknown:
        message = (f"{source}: classes {unknown} are not in the label space of {len(label_space)} classes "
                   f"({list(label_space)[:5]}{' ...' if len(label_space) > 5 else ''})")
        if strict:
            raise ValueError(message)
        aliased = [n for n in unknown if n in extra]
        note = f"; {aliased} still feed their alias targets" if aliased else ""
        warnings.warn(f"{message}; their labels are ignored{note}", stacklevel=2)
    index = np.array([row.get(n, -1) for n in file_classes], dtype=np.int64)
    pairs = tuple((row[s], row[t]) for s, t in table.items() if s in file_classes and s in row and t in row)
    present = np.zeros(len(label_space) + len(extra), dtype=bool)
    present[index[index >= 0]] = True
    mask = present.copy()
    for s, t in pairs:  # from the file's own classes only, as apply_aliases does: no chains
        mask[t] |= present[s]
    return ClassMapping(label_space, extra, file_classes, index, pairs, mask[: len(label_space)])

