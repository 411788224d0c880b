"""Held-out validation splits by group (whole recordings or cities), so no group is on both sides."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from datamodules.format.hdf5 import AudioH5
from datamodules.sources.common import LayoutError
from datamodules.sources.tau22 import parse_tau_filename


def clip_groups(h5: AudioH5, names: Sequence[str], group: str) -> List[str]:
    """The group of every clip ``names`` of ``h5``: its recording (TAU's ``<city>-<location>``, from the file name)
    or its city (the file's city label, else the city of the TAU file name)."""
    if group == "city" and h5.city_names:
        try:
            ids = h5.labels("city")
        except ValueError:
            ids = None
        if ids is not None:
            rows = [h5.index_of(n) for n in names]
            missing = [n for n, r in zip(names, rows) if not 0 <= ids[r] < len(h5.city_names)]
            if not missing:
                return [h5.city_names[ids[r]] for r in rows]
    groups = []
    for name in names:
        try:
            fields = parse_tau_filename(name)
        except LayoutError as err:
            raise LayoutError(f"{h5.path}: val_group={group!r} needs city labels or TAU file names, but {err}") \
                from None
        groups.append(fields["city"] if group == "city" else f"{fields['city']}-{fields['location']}")
    return groups


def held_out_mask(groups: Sequence[str], fraction: float, seed: int = 0) -> np.ndarray:
    """(N,) bool: the clips of the groups held out for validation.

    The groups are visited in a seeded random order (of their sorted names, so the draw does not depend on the row
    order); a group is taken when that brings the held-out clip count closer to ``fraction`` of all clips. At least
    one group is held out and at least one kept.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {fraction}")
    unique, inverse, counts = np.unique(np.asarray(list(groups), dtype=str), return_inverse=True,
                                        return_counts=True)
    if len(unique) < 2:
        raise ValueError(f"a held-out split needs clips of at least 2 groups, found {len(unique)}")
    target, taken = fraction * len(inverse), 0
    chosen = np.zeros(len(unique), dtype=bool)
    for g in np.random.default_rng(seed).permutation(len(unique)):
        if taken + counts[g] / 2 < target:
            chosen[g], taken = True, taken + counts[g]
    if not chosen.any():
        chosen[int(np.argmin(counts))] = True
    if chosen.all():
        raise ValueError(f"val_fraction {fraction:g} would hold out all {len(unique)} groups; lower it")
    return chosen[inverse.reshape(-1)]
