"""Which data sources of an SED batch mix with each other (the DCASE'24 baseline's mixup groups)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple


class MixupGroupsError(ValueError):
    """``mixup_groups`` names an unknown, repeated or unlabeled source, or mixes label kinds in one group."""


def resolve_mixup_groups(sources: Sequence[Any], groups: Optional[List[List[str]]]) -> List[List[int]]:
    """Source indices (of the datamodule's ``sources``) of every ``mixup_groups`` group, in draw order."""
    if groups is None:
        by_kind: Dict[Tuple[str, str], List[int]] = {}
        for i, source in enumerate(sources):
            if source.labels != "none":
                by_kind.setdefault((source.labels, source.domain), []).append(i)
        return list(by_kind.values())[::-1]
    names, seen, out = [s.name for s in sources], set(), []
    for g, group in enumerate(groups):
        for name in group:
            if name not in names or name in seen:
                why = "is in two groups" if name in seen else f"is not a source (sources: {names})"
                raise MixupGroupsError(f"mixup_groups[{g}]: {name!r} {why}")
            if sources[names.index(name)].labels == "none":
                raise MixupGroupsError(f"mixup_groups[{g}]: source {name!r} is unlabeled (labels: none); unlabeled "
                                       "rows are never mixed")
            seen.add(name)
        kinds = sorted({sources[names.index(name)].labels for name in group})
        if len(kinds) > 1:
            raise MixupGroupsError(f"mixup_groups[{g}]: {list(group)} has labels {kinds}; a group needs one kind")
        out.append([names.index(name) for name in group])
    return out
