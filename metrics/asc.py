"""Acoustic scene classification metrics of DCASE Task 1 (TAU Urban Acoustic Scenes 2022 Mobile).

Everything derives from one count tensor ``confusion[d, t, p]`` (device, true class, predicted class):

* ``macro_acc``: mean over classes of the per-class accuracy (recall), all devices pooled: the official metric.
* ``micro_acc``: correct / total.
* ``acc/<device>``, ``acc/<class>``: accuracy per device and per class.
* ``acc/real``, ``acc/seen``, ``acc/unseen``: pooled accuracy of the device groups (a, b, c | s1-s3 | s4-s6),
  i.e. correct / count over the group, as the DCASE baselines compute it.

Entries without samples are NaN; ``macro_acc`` averages the classes that have samples.
:class:`ASCAccuracy` keeps the counts as a ``sum``-reduced torchmetrics state, so it is exact under DDP.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torchmetrics import Metric

SCENE_CLASSES = (
    "airport", "bus", "metro", "metro_station", "park", "public_square", "shopping_mall", "street_pedestrian",
    "street_traffic", "tram",
)
DEVICES = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
DEVICE_GROUPS: Dict[str, str] = {
    "a": "real", "b": "real", "c": "real", "s1": "seen", "s2": "seen", "s3": "seen",
    "s4": "unseen", "s5": "unseen", "s6": "unseen",
}
DeviceIds = Union[torch.Tensor, Sequence[Union[int, str]]]


def device_indices(devices: DeviceIds, names: Sequence[str] = DEVICES) -> torch.Tensor:
    """Device names (``"s4"``) or integer ids (indices into ``names``) -> (N,) long tensor of indices."""
    if isinstance(devices, torch.Tensor):
        idx = devices.reshape(-1).long()
    else:
        lookup = {n: i for i, n in enumerate(names)}
        try:
            idx = torch.tensor([d if isinstance(d, (int, np.integer)) else lookup[d] for d in devices],
                               dtype=torch.long)
        except KeyError as err:
            raise ValueError(f"unknown device {err.args[0]!r}; known: {list(names)}") from None
    if idx.numel() and (idx.min() < 0 or idx.max() >= len(names)):
        raise ValueError(f"device ids must lie in [0, {len(names)}), got {idx.min().item()}..{idx.max().item()}")
    return idx


def confusion_by_device(
    preds: torch.Tensor, targets: torch.Tensor, devices: torch.Tensor, num_devices: int, num_classes: int
) -> torch.Tensor:
    """(num_devices, num_classes, num_classes) counts of (device, true, predicted) triples.

    Args:
        preds: (N,) predicted class indices, or (N, C) scores (argmax taken).
        targets: (N,) true class indices.
        devices: (N,) device indices.
    """
    if preds.dim() == 2:
        preds = preds.argmax(dim=1)
    preds, targets, devices = preds.reshape(-1).long(), targets.reshape(-1).long(), devices.reshape(-1).long()
    if not preds.numel() == targets.numel() == devices.numel():
        raise ValueError(f"got {preds.numel()} predictions, {targets.numel()} targets, {devices.numel()} devices")
    flat = (devices.to(preds.device) * num_classes + targets) * num_classes + preds
    counts = torch.bincount(flat, minlength=num_devices * num_classes * num_classes)
    return counts.view(num_devices, num_classes, num_classes)


def _ratio(correct: torch.Tensor, count: torch.Tensor) -> float:
    return float(correct) / float(count) if count > 0 else float("nan")


def summarize(
    confusion: torch.Tensor,
    devices: Sequence[str] = DEVICES,
    classes: Sequence[str] = SCENE_CLASSES,
    groups: Optional[Mapping[str, str]] = None,
) -> Dict[str, float]:
    """All accuracies (see the module docstring) from a (D, C, C) count tensor."""
    groups = DEVICE_GROUPS if groups is None else groups
    confusion = confusion.detach().cpu().double()
    correct_dc = torch.diagonal(confusion, dim1=1, dim2=2)  # (D, C)
    count_dc = confusion.sum(dim=2)
    result: Dict[str, float] = {}
    class_acc = [_ratio(correct_dc[:, c].sum(), count_dc[:, c].sum()) for c in range(len(classes))]
    present = [a for a in class_acc if not np.isnan(a)]
    result["macro_acc"] = float(np.mean(present)) if present else float("nan")
    result["micro_acc"] = _ratio(correct_dc.sum(), count_dc.sum())
    for d, name in enumerate(devices):
        result[f"acc/{name}"] = _ratio(correct_dc[d].sum(), count_dc[d].sum())
    for c, name in enumerate(classes):
        result[f"acc/{name}"] = class_acc[c]
    for group in dict.fromkeys(groups[d] for d in devices if d in groups):
        members = [i for i, d in enumerate(devices) if groups.get(d) == group]
        result[f"acc/{group}"] = _ratio(correct_dc[members].sum(), count_dc[members].sum())
    return result


def asc_accuracies(
    preds: torch.Tensor,
    targets: torch.Tensor,
    devices: DeviceIds,
    device_names: Sequence[str] = DEVICES,
    classes: Sequence[str] = SCENE_CLASSES,
) -> Dict[str, float]:
    """All accuracies of accumulated predictions ((N,) indices or (N, C) scores), targets and devices."""
    idx = device_indices(devices, device_names)
    return summarize(confusion_by_device(preds, targets, idx, len(device_names), len(classes)), device_names, classes)


class ASCAccuracy(Metric):
    """Accumulates (device, true, predicted) counts; ``compute()`` returns the dict of :func:`summarize`.

    Args:
        classes: Class names in label-index order.
        devices: Device names; ``update`` takes names or indices into this list.
        groups: Device -> group name (default: real a-c, seen s1-s3, unseen s4-s6).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self,
        classes: Sequence[str] = SCENE_CLASSES,
        devices: Sequence[str] = DEVICES,
        groups: Optional[Mapping[str, str]] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.classes, self.devices = tuple(classes), tuple(devices)
        self.groups = dict(DEVICE_GROUPS if groups is None else groups)
        shape = (len(self.devices), len(self.classes), len(self.classes))
        self.add_state("confusion", default=torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, targets: torch.Tensor, devices: DeviceIds) -> None:
        """Adds a batch: (B,) predicted indices or (B, C) scores, (B,) targets, B device names or ids."""
        idx = device_indices(devices, self.devices).to(self.confusion.device)
        self.confusion += confusion_by_device(preds.to(self.confusion.device), targets.to(self.confusion.device),
                                              idx, len(self.devices), len(self.classes))

    def compute(self) -> Dict[str, float]:
        return summarize(self.confusion, self.devices, self.classes, self.groups)

    def confusion_matrix(self, device: Optional[str] = None) -> np.ndarray:
        """(C, C) int64 counts [true, predicted], pooled over devices or for one device name."""
        counts = self.confusion if device is None else self.confusion[self.devices.index(device)]
        counts = counts.sum(dim=0) if counts.dim() == 3 else counts
        return counts.cpu().numpy().astype(np.int64)
