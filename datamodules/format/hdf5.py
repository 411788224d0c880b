"""The one HDF5 audio format of sonolab (documented in docs/hdf5-format.md).

It is a superset of the community AudioSet/FSD50K files (``audio_name`` S20, ``mp3`` variable-length uint8,
``target`` packbits), which it reads unchanged. Everything beyond those three datasets is optional.

Row-aligned datasets (N = number of clips):
    audio_name   fixed-width bytes             clip id, e.g. b"Y--PJHxphWEs_30000_40000.mp3"
    <codec>      vlen uint8 | vlen int16       audio: ``mp3``/``flac``/``ogg`` bytes, or ``pcm16`` samples
    target       uint8 (N, ceil(C/8))          packbits of the weak multi-hot labels
    duration     float32                       seconds of the stored audio
    scene, device, city   int16                indices into the ``*_names`` attributes (-1: unknown)
Ragged data as CSR groups (``index`` has N+1 offsets, rows of clip i are ``index[i]:index[i+1]``):
    events/{onset, offset, class, confidence, index}   strong events; confidence 1.0 for hard labels
    captions/{text, index}                             several captions per clip
Optional soft labels (OpenMIC), added to a packed file by :func:`attach_soft_labels`:
    soft_target  float16 (N, C)                label confidences in [0, 1]
    target_mask  uint8 (N, ceil(C/8))          packbits of which labels are known (the others are ignored)
File attributes: format ("sonolab-audio"), format_version, sample_rate, codec, class_names, scene_names,
device_names, city_names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import h5py
import numpy as np

from datamodules.format.audio_io import CODECS, AudioDecodeError, decode_audio, pad_or_crop, resample

FORMAT_NAME = "sonolab-audio"
FORMAT_VERSION = 1
COMMUNITY_SAMPLE_RATE = 32000
_STR = h5py.string_dtype("utf-8")


class H5LayoutError(ValueError):
    """An audio HDF5 file lacks a dataset of the format, or holds one of the wrong type or shape (the message names
    the file and the dataset)."""


@dataclass
class ClipRecord:
    """Everything stored for one clip.

    Attributes:
        name: Clip id (file name as in the label table).
        audio: Encoded bytes (uint8) or int16 samples, as :func:`datamodules.format.audio_io.encode_audio` returns.
        duration: Seconds of audio.
        weak: Indices of the clip's positive classes.
        events: (onset, offset, class index, confidence) tuples.
        scene, device, city: Indices into the file's name lists (-1 when unknown).
        captions: Free-text captions.
    """

    name: str
    audio: np.ndarray
    duration: float
    weak: List[int] = field(default_factory=list)
    events: List[Tuple[float, float, int, float]] = field(default_factory=list)
    scene: int = -1
    device: int = -1
    city: int = -1
    captions: List[str] = field(default_factory=list)


def write_h5(
    path: str,
    records: Iterable[ClipRecord],
    n_records: int,
    *,
    codec: str,
    sample_rate: int,
    class_names: Sequence[str] = (),
    scene_names: Sequence[str] = (),
    device_names: Sequence[str] = (),
    city_names: Sequence[str] = (),
    name_width: int = 20,
) -> None:
    """Writes ``n_records`` clips to a new file at ``path`` (overwritten).

    Args:
        path: Output file.
        records: Iterable of :class:`ClipRecord` (consumed once, in order).
        n_records: Number of records the iterable yields.
        codec: Codec of every record's audio.
        sample_rate: Rate of the stored audio.
        class_names: Event/tag classes (the columns of ``target`` and ``events/class``).
        scene_names, device_names, city_names: Label vocabularies of the integer columns.
        name_width: Width of the fixed-width ``audio_name`` field (at least 20, as the community files).
    """
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    n_classes = len(class_names)
    with h5py.File(path, "w") as f:
        f.attrs.update(
            format=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            sample_rate=int(sample_rate),
            codec=codec,
            class_names=list(class_names),
            scene_names=list(scene_names),
            device_names=list(device_names),
            city_names=list(city_names),
        )
        names = f.create_dataset("audio_name", (n_records,), dtype=f"S{max(20, name_width)}")
        audio = f.create_dataset(codec, (n_records,), dtype=h5py.vlen_dtype(np.int16 if codec == "pcm16" else np.uint8))
        target = f.create_dataset("target", (n_records, max(1, (n_classes + 7) // 8)), dtype=np.uint8)
        duration = f.create_dataset("duration", (n_records,), dtype=np.float32)
        ints = {k: f.create_dataset(k, (n_records,), dtype=np.int16) for k in ("scene", "device", "city")}
        ev_rows: Dict[str, list] = {"onset": [], "offset": [], "class": [], "confidence": []}
        ev_index, cap_text, cap_index = [0], [], [0]
        i = -1
        for i, rec in enumerate(records):
            if i >= n_records:
                raise ValueError(f"more than n_records={n_records} records")
            encoded_name = rec.name.encode("utf-8")
            if len(encoded_name) > names.dtype.itemsize:
                raise ValueError(f"clip name {rec.name!r} is longer than name_width={names.dtype.itemsize}")
            names[i] = encoded_name
            audio[i] = rec.audio
            duration[i] = rec.duration
            hot = np.zeros(max(8, n_classes), dtype=bool)
            hot[list(rec.weak)] = True
            target[i] = np.packbits(hot)[: target.shape[1]]
            for k in ints:
                ints[k][i] = getattr(rec, k)
            for onset, offset, cls, conf in rec.events:
                ev_rows["onset"].append(onset)
                ev_rows["offset"].append(offset)
                ev_rows["class"].append(cls)
                ev_rows["confidence"].append(conf)
            ev_index.append(len(ev_rows["onset"]))
            cap_text.extend(rec.captions)
            cap_index.append(len(cap_text))
        if i + 1 != n_records:
            raise ValueError(f"expected {n_records} records, got {i + 1}")
        ev = f.create_group("events")
        for key, dtype in (("onset", np.float32), ("offset", np.float32), ("class", np.int16), ("confidence", np.float32)):
            ev.create_dataset(key, data=np.asarray(ev_rows[key], dtype=dtype))
        ev.create_dataset("index", data=np.asarray(ev_index, dtype=np.int64))
        caps = f.create_group("captions")
        caps.create_dataset("text", data=np.asarray(cap_text, dtype=object), dtype=_STR)
        caps.create_dataset("index", data=np.asarray(cap_index, dtype=np.int64))


def _str_list(value) -> List[str]:
    if value is None:
        return []
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


class LazyH5:
    """An HDF5 file opened lazily once per process: instances can be handed to DataLoader workers (pickling drops
    the handle, and a forked worker reopens the file instead of sharing the parent's).

    Subclasses set ``self.path`` and call ``super().__init__()``.
    """

    path: str

    def __init__(self) -> None:
        self._h5: Optional[h5py.File] = None
        self._pid: Optional[int] = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_h5"] = None
        return state

    @property
    def file(self) -> h5py.File:
        """The open file handle of this process (opened on first use after construction or fork)."""
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5


def _check_rows(f: h5py.File, path: str) -> None:
    """The datasets every reader relies on: ``audio_name`` (N,), the audio dataset (N,) and ``target`` uint8 (N, B),
    the packbits of the weak labels (community files included)."""
    n = len(f["audio_name"])
    codec = next(c for c in CODECS if c in f)
    if f[codec].shape[:1] != (n,):
        raise H5LayoutError(f"{path}: dataset {codec!r} has shape {f[codec].shape}, expected {n} rows like "
                            "'audio_name'")
    if "target" not in f:
        raise H5LayoutError(f"{path}: no 'target' dataset (the weak labels: uint8 (N, ceil(classes / 8)) packbits, "
                            "as in the community AudioSet files)")
    target = f["target"]
    if target.dtype != np.uint8:
        raise H5LayoutError(f"{path}: dataset 'target' is {target.dtype}, expected uint8 (packbits of the weak labels)")
    if target.ndim != 2 or target.shape[0] != n:
        raise H5LayoutError(f"{path}: dataset 'target' has shape {target.shape}, expected ({n}, bytes per row) like "
                            f"the {n} rows of 'audio_name'")


class AudioH5(LazyH5):
    """Lazy, fork-safe reader of a sonolab (or community AudioSet/FSD50K) HDF5 file.

    The metadata (names, labels, events) is read once in the constructor; the file is then reopened lazily in
    every process that reads audio, so instances can be handed to DataLoader workers.

    Args:
        path: The HDF5 file.
        num_classes: Number of weak classes; needed for community files without ``class_names`` (527 for AudioSet,
            200 for FSD50K). Defaults to ``len(class_names)``, else ``8 * target.shape[1]``.
    """

    def __init__(self, path: str, num_classes: Optional[int] = None) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"HDF5 file {path!r} does not exist")
        super().__init__()
        self.path = path
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise H5LayoutError(f"{path!r} is not a readable HDF5 file: {err}") from err
        with f:
            if "audio_name" not in f:
                raise H5LayoutError(f"{path!r} has no 'audio_name' dataset; is it an audio HDF5 file?")
            codecs = [c for c in CODECS if c in f]
            if len(codecs) != 1:
                raise H5LayoutError(f"{path!r} must hold exactly one audio dataset of {CODECS}, found {codecs}")
            _check_rows(f, path)
            self.codec = codecs[0]
            attrs = f.attrs
            self.sample_rate = int(attrs.get("sample_rate", COMMUNITY_SAMPLE_RATE))
            self.class_names = _str_list(attrs.get("class_names"))
            self.scene_names = _str_list(attrs.get("scene_names"))
            self.device_names = _str_list(attrs.get("device_names"))
            self.city_names = _str_list(attrs.get("city_names"))
            self.names = np.array([n.decode("utf-8") for n in f["audio_name"][()]], dtype=object)
            self._target = f["target"][()]
            self.durations = f["duration"][()] if "duration" in f else None
            self._ints = {k: f[k][()] for k in ("scene", "device", "city") if k in f}
            self._events = {k: f["events"][k][()] for k in f["events"]} if "events" in f else None
            self._captions = (
                (_str_list(f["captions"]["text"][()]), f["captions"]["index"][()]) if "captions" in f else None
            )
            self._soft = f["soft_target"][()] if "soft_target" in f else None
            self._mask = f["target_mask"][()] if "target_mask" in f else None
        if num_classes is None:
            num_classes = len(self.class_names) or (8 * self._target.shape[1] if self._target is not None else 0)
        elif self.class_names and num_classes != len(self.class_names):
            raise ValueError(f"{path!r} stores {len(self.class_names)} classes, num_classes={num_classes} given")
        self.num_classes = int(num_classes)
        if self._target.shape[1] < (self.num_classes + 7) // 8:
            raise H5LayoutError(f"{path}: dataset 'target' has {self._target.shape[1]} bytes per row, "
                                f"{self.num_classes} classes need {(self.num_classes + 7) // 8} (packbits, 8 per byte)")
        self._row: Optional[Dict[str, int]] = None

    def __len__(self) -> int:
        return len(self.names)

    def index_of(self, name: str) -> int:
        """Row of clip ``name`` (``KeyError`` if absent)."""
        if self._row is None:
            self._row = {n: i for i, n in enumerate(self.names)}
        return self._row[name]

    def waveform(
        self,
        i: int,
        sample_rate: Optional[int] = None,
        length: Optional[int] = None,
        rng: Optional[np.random.Generator] = None,
    ) -> np.ndarray:
        """Decoded mono float32 audio of row ``i``, resampled to ``sample_rate`` and padded/cropped to ``length``.

        Cropping takes a random window when ``rng`` is given, else the start.
        """
        data = self.file[self.codec][i]
        try:
            wave, rate = decode_audio(data, self.codec, self.sample_rate)
        except AudioDecodeError as err:
            raise AudioDecodeError(f"{self.path}: clip {i} ({self.names[i]!r}): {err}") from err
        if sample_rate is not None:
            wave = resample(wave, rate, sample_rate)
        if length is not None:
            wave = pad_or_crop(wave, length, rng)
        return wave

    def weak_target(self, i: int) -> np.ndarray:
        """(num_classes,) float32 multi-hot labels of row ``i``."""
        if self._target is None:
            raise ValueError(f"{self.path} has no 'target' dataset")
        return np.unpackbits(self._target[i])[: self.num_classes].astype(np.float32)

    def weak_targets(self) -> np.ndarray:
        """(N, num_classes) bool matrix of all weak labels (for samplers)."""
        if self._target is None:
            raise ValueError(f"{self.path} has no 'target' dataset")
        return np.unpackbits(self._target, axis=1)[:, : self.num_classes].astype(bool)

    @property
    def has_soft_targets(self) -> bool:
        """Whether the file carries soft labels and a label mask (:func:`attach_soft_labels`)."""
        return self._soft is not None and self._mask is not None

    def soft_target(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        """(num_classes,) float32 confidences and (num_classes,) bool mask of known labels of row ``i``."""
        if not self.has_soft_targets:
            raise ValueError(f"{self.path} has no 'soft_target'/'target_mask' datasets")
        known = np.unpackbits(self._mask[i])[: self.num_classes].astype(bool)
        return self._soft[i].astype(np.float32), known

    def has_events(self) -> bool:
        return self._events is not None and len(self._events["index"]) == len(self) + 1

    def events(self, i: int) -> Dict[str, np.ndarray]:
        """Strong events of row ``i``: arrays ``onset``, ``offset``, ``class``, ``confidence``."""
        if not self.has_events():
            raise ValueError(f"{self.path} has no strong events")
        a, b = self._events["index"][i], self._events["index"][i + 1]
        return {k: self._events[k][a:b] for k in ("onset", "offset", "class", "confidence")}

    def label(self, kind: str, i: int) -> int:
        """Integer ``scene``/``device``/``city`` label of row ``i`` (-1 unknown)."""
        if kind not in self._ints:
            raise ValueError(f"{self.path} has no {kind!r} labels")
        return int(self._ints[kind][i])

    def labels(self, kind: str) -> np.ndarray:
        """All integer ``scene``/``device``/``city`` labels."""
        if kind not in self._ints:
            raise ValueError(f"{self.path} has no {kind!r} labels")
        return self._ints[kind]

    def captions(self, i: int) -> List[str]:
        """Captions of row ``i`` (empty list when the file has none)."""
        if self._captions is None:
            return []
        text, index = self._captions
        return text[index[i] : index[i + 1]]


def attach_soft_labels(path: str, names: Sequence[str], soft: np.ndarray, mask: np.ndarray) -> None:
    """Adds soft labels and a label mask (OpenMIC's ``Y_true``/``Y_mask``) to a packed file, matched by clip id.

    Also rewrites ``target`` as the hard labels ``soft > 0.5`` of the known entries, so that samplers and readers
    of weak targets agree with the soft ones.

    Args:
        path: A file written by :func:`write_h5` (opened for appending).
        names: Clip ids of the rows of ``soft``/``mask``; every clip of the file must be among them.
        soft: (M, C) confidences in [0, 1].
        mask: (M, C) booleans: which entries of ``soft`` are known.

    Raises:
        ValueError: Shapes disagree, values outside [0, 1], or a clip of the file has no row.
    """
    soft, mask = np.asarray(soft, dtype=np.float32), np.asarray(mask, dtype=bool)
    if soft.ndim != 2 or soft.shape != mask.shape or soft.shape[0] != len(names):
        raise ValueError(f"soft {soft.shape} and mask {mask.shape} must both be ({len(names)}, C)")
    if soft.size and (np.nanmin(soft) < 0 or np.nanmax(soft) > 1 or np.isnan(soft).any()):
        raise ValueError("soft labels must lie in [0, 1]")
    row = {n: i for i, n in enumerate(names)}
    with h5py.File(path, "a") as f:
        file_names = [n.decode("utf-8") for n in f["audio_name"][()]]
        n_classes = len(_str_list(f.attrs.get("class_names")))
        if n_classes != soft.shape[1]:
            raise ValueError(f"{path} has {n_classes} classes, soft labels have {soft.shape[1]}")
        missing = [n for n in file_names if n not in row]
        if missing:
            raise ValueError(f"{path}: no soft labels for {len(missing)} clips, e.g. {missing[:3]}")
        order = np.array([row[n] for n in file_names], dtype=np.int64)
        soft, mask = soft[order], mask[order]
        width = max(1, (n_classes + 7) // 8)
        pad = max(8, n_classes)

        def packed(flags: np.ndarray) -> np.ndarray:
            full = np.zeros((len(flags), pad), dtype=bool)
            full[:, :n_classes] = flags
            return np.packbits(full, axis=1)[:, :width]

        for key in ("soft_target", "target_mask"):
            if key in f:
                del f[key]
        f.create_dataset("soft_target", data=soft.astype(np.float16))
        f.create_dataset("target_mask", data=packed(mask))
        f["target"][...] = packed(mask & (soft > 0.5))
