"""OpenMIC-2018 as downloaded: ``openmic-2018.npz`` (``Y_true``, ``Y_mask``, ``sample_key``), ``class-map.json``,
``audio/<key[:3]>/<key>.ogg`` and ``partitions/split01_{train,test}.csv`` -> ``openmic_{train,test}.h5`` with the
soft labels and label masks (:func:`datamodules.format.hdf5.attach_soft_labels`); clip ids are the sample keys.

The ``.npz`` is read without pickle: unpickling a downloaded file can run arbitrary code. The published file stores
``sample_key`` as a Python object array (pickled strings); such a file is refused with the one-line command that
converts it to plain arrays (run it once, on a file you trust).
"""
from __future__ import annotations

import json
import os
import zipfile
from typing import Dict, List

import numpy as np

from datamodules.format.hdf5 import attach_soft_labels
from datamodules.format.pack import PackItem
from datamodules.format.text import open_text, read_text
from datamodules.sources.common import LayoutError, pack_set, require

NPZ_ARRAYS = ("Y_true", "Y_mask", "sample_key")


def _convert_command(path: str) -> str:
    converted = os.path.splitext(path)[0] + ".nopickle.npz"
    return (f"python -c \"import numpy as np; d = np.load('{path}', allow_pickle=True); np.savez('{converted}', "
            f"**{{k: d[k].astype(str) if d[k].dtype == object else d[k] for k in d.files}})\" && "
            f"mv '{converted}' '{path}'")


def read_openmic_npz(path: str) -> Dict[str, np.ndarray]:
    """``Y_true``, ``Y_mask`` and ``sample_key`` of ``openmic-2018.npz``, loaded without pickle.

    Raises:
        LayoutError: Not an ``.npz`` archive (e.g. a pickle), a missing array, or an array stored as pickled
            objects (the message gives the command that converts the file).
    """
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise LayoutError(f"{path}: not a readable .npz archive of arrays ({err}); sonolab never unpickles data, "
                          "which can run code") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise LayoutError(f"{path}: a single .npy array, expected an .npz archive with {', '.join(NPZ_ARRAYS)}")
    with data:
        arrays = {}
        for key in NPZ_ARRAYS:
            if key not in data.files:
                raise LayoutError(f"{path}: missing array {key!r} (found {', '.join(data.files) or 'none'})")
            try:
                arrays[key] = data[key]
            except ValueError:
                raise LayoutError(
                    f"{path}: array {key!r} is stored as pickled Python objects, which sonolab never loads "
                    f"(unpickling can run code); if this is the official OpenMIC-2018 download, convert it once "
                    f"with: {_convert_command(path)}") from None
    return arrays


def _read_keys(path: str) -> List[str]:
    with open_text(path) as f:
        return [line.strip() for line in f if line.strip()]


def pack_openmic(root: str, out_dir: str, codec: str = "mp3", sample_rate: int = 32000, workers: int = 2,
                 progress: bool = True, partition: str = "split01") -> Dict[str, str]:
    """Packs OpenMIC-2018 (train/test partition ``partition``) with soft labels and masks."""
    data = read_openmic_npz(require(os.path.join(root, "openmic-2018.npz"), "OpenMIC labels"))
    keys = [str(k) for k in data["sample_key"]]
    class_map_path = require(os.path.join(root, "class-map.json"), "OpenMIC class map")
    try:
        class_map: Dict[str, int] = json.loads(read_text(class_map_path))
    except json.JSONDecodeError as err:
        raise LayoutError(f"{class_map_path}: not valid JSON ({err})") from None
    if not isinstance(class_map, dict) or not all(isinstance(v, int) for v in class_map.values()):
        raise LayoutError(f"{class_map_path}: expected an object mapping class names to integer indices")
    classes = sorted(class_map, key=class_map.get)
    soft, mask = np.asarray(data["Y_true"], dtype=np.float32), np.asarray(data["Y_mask"], dtype=bool)
    if soft.shape != (len(keys), len(classes)) or mask.shape != soft.shape:
        raise LayoutError(f"{root}/openmic-2018.npz: Y_true {soft.shape} / Y_mask {mask.shape} must be "
                          f"({len(keys)}, {len(classes)})")
    row = {k: i for i, k in enumerate(keys)}
    written = {}
    for part in ("train", "test"):
        table = require(os.path.join(root, "partitions", f"{partition}_{part}.csv"), "OpenMIC partition")
        subset = _read_keys(table)
        unknown = [k for k in subset if k not in row]
        if unknown:
            raise LayoutError(f"{table}: {len(unknown)} keys not in openmic-2018.npz, e.g. {unknown[:3]}")
        items = [PackItem(path=os.path.join(root, "audio", k[:3], f"{k}.ogg"), name=k,
                          weak=list(np.flatnonzero(mask[row[k]] & (soft[row[k]] > 0.5)))) for k in subset]
        out = pack_set(items, os.path.join(out_dir, f"openmic_{part}.h5"), workers, progress, codec=codec,
                    sample_rate=sample_rate, class_names=classes)
        index = [row[k] for k in subset]
        attach_soft_labels(out, subset, soft[index], mask[index])
        written[part] = out
    return written
