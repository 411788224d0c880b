"""Acoustic scene classification metrics of DCASE Task 1 (TAU Urban Acoustic Scenes 2022 Mobile).

Everything derives from one count tensor ``confusion[d, t, p]`` (device, true class, predicted class):

* ``macro_acc``: mean over classes of the per-class accuracy (recall), all devices pooled: the official metric.
* ``micro_acc``: correct / total.
* ``acc/<device>``, ``acc/<class>``: accuracy per device and per class.
* ``acc/<group>``: pooled accuracy (correct / count over the group, as the DCASE baselines compute it) of the
  device groups of :func:`device_groups`: the TAU22 preset ``acc/real``, ``acc/seen``, ``acc/unseen``
  (a, b, c | s1-s3 | s4-s6), or, for any other device vocabulary, ``acc/seen_devices`` / ``acc/unseen_devices``
  (the devices of the training clips | the others).

Class and device names are those of the packed files (any vocabulary); a name that would give two metrics the same
key (a class and a device both called ``bus``) is an error.

Entries without samples are NaN; ``macro_acc`` averages the classes that have samples.
:class:`ASCAccuracy` keeps one row per clip id and counts the clips of all processes once each
(:class:`~metrics.clip_outputs.ClipOutputs`), so it is exact under DDP, where the sampler repeats clips.
"""
from __future__ import annotations

from typing import Any, Dict, Literal, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torchmetrics import Metric

from metrics.clip_outputs import ClipOutputs

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
DeviceGroupPreset = Literal["tau22", "from_training"]
SEEN, UNSEEN = "seen_devices", "unseen_devices"


def default_group_preset(devices: Sequence[str]) -> DeviceGroupPreset:
    """``"tau22"`` when every device is one of TAU22's a, b, c, s1-s6, else ``"from_training"``."""
    return "tau22" if set(devices) <= set(DEVICES) else "from_training"


def device_groups(
    devices: Sequence[str], preset: Optional[DeviceGroupPreset] = None, train_devices: Optional[Sequence[str]] = None
) -> Dict[str, str]:
    """Device -> group name of the grouped accuracies.

    Args:
        devices: The device vocabulary.
        preset: ``"tau22"``: real a-c, seen s1-s3, unseen s4-s6 (the DCASE reporting); ``"from_training"``:
            ``seen_devices`` for the devices of ``train_devices``, ``unseen_devices`` for the others; ``None``:
            ``"tau22"`` when every device is a TAU22 one, else ``"from_training"``.
        train_devices: The devices of the training clips (``None``: unknown, no groups under ``"from_training"``).
    """
    preset = preset or default_group_preset(devices)
    if preset == "tau22":
        return {d: DEVICE_GROUPS[d] for d in devices if d in DEVICE_GROUPS}
    if preset != "from_training":
        raise ValueError(f"device_groups must be 'tau22' or 'from_training', got {preset!r}")
    if train_devices is None:
        return {}
    seen = set(train_devices)
    return {d: SEEN if d in seen else UNSEEN for d in devices}


def check_metric_names(classes: Sequence[str], devices: Sequence[str], groups: Mapping[str, str]) -> None:
    """Raises a ValueError when two accuracies would share a key ``acc/<name>`` (names must also be distinct)."""
    owners: Dict[str, str] = {}
    kinds = [("scene class", c) for c in classes] + [("device", d) for d in devices] + \
        [("device group", g) for g in dict.fromkeys(groups.values())]
    for kind, name in kinds:
        key = f"acc/{name}"
        if key in owners:
            raise ValueError(f"metric name clash: {key!r} would be both the {owners[key]} and the {kind} {name!r}; "
                             "rename one in the packed file's vocabularies")
        owners[key] = f"{kind} {name!r}"


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
    """Collects (clip id, scores, true class, device) rows; ``compute()`` returns the dict of :func:`summarize`.

    The counts are made from the rows of every process, one per clip id (``confusion``, ``compute()`` and
    ``confusion_matrix()`` are collectives under DDP: every process calls them). There are no torchmetrics states
    to sync, so ``sync_context()`` is a no-op and ``forward`` is not supported.

    Args:
        classes: Class names in label-index order.
        devices: Device names; ``update`` takes names or indices into this list.
        groups: Device -> group name (default: :func:`device_groups` of ``devices``: for TAU22's devices real a-c,
            seen s1-s3, unseen s4-s6; for others none, as the training devices are not known here).
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
        self.groups = dict(device_groups(self.devices) if groups is None else groups)
        check_metric_names(self.classes, self.devices, self.groups)
        self.clips = ClipOutputs()

    def update(self, preds: torch.Tensor, targets: torch.Tensor, devices: DeviceIds, names: Sequence[str]) -> None:
        """Adds a batch: (B,) predicted indices or (B, C) scores, (B,) targets, B device names or ids, B clip ids."""
        self.clips.add(names, preds=preds, target=targets.reshape(-1).long(),
                       device=device_indices(devices, self.devices))

    def reset(self) -> None:
        super().reset()
        self.clips.reset()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ASCAccuracy counts clips once per epoch: call update() and compute()")

    @property
    def confusion(self) -> torch.Tensor:
        """(devices, classes, classes) counts of (device, true, predicted) over every clip once."""
        rows = self.clips.merged()
        if not len(rows["name"]):
            return torch.zeros(len(self.devices), len(self.classes), len(self.classes), dtype=torch.long)
        return confusion_by_device(torch.from_numpy(rows["preds"]), torch.from_numpy(rows["target"]),
                                   torch.from_numpy(rows["device"]), len(self.devices), len(self.classes))

    def compute(self) -> Dict[str, float]:
        return summarize(self.confusion, self.devices, self.classes, self.groups)

    def confusion_matrix(self, device: Optional[str] = None) -> np.ndarray:
        """(C, C) int64 counts [true, predicted], pooled over devices or for one device name."""
        counts = self.confusion if device is None else self.confusion[self.devices.index(device)]
        counts = counts.sum(dim=0) if counts.dim() == 3 else counts
        return counts.cpu().numpy().astype(np.int64)
