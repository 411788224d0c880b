"""OpenMIC-2018 layout (built from demo audio) -> soft labels and masks."""
import os

import numpy as np
import pytest

from datamodules.datasets import ClipDataset
from datamodules.format.hdf5 import AudioH5, attach_soft_labels


def test_openmic_keeps_soft_labels_and_masks(downstream_layouts, downstream_h5):
    data = np.load(os.path.join(downstream_layouts["openmic"], "openmic-2018.npz"))
    row = {str(k): i for i, k in enumerate(data["sample_key"])}
    train = AudioH5(downstream_h5["openmic"]["train"])
    assert len(train) == 30 and len(AudioH5(downstream_h5["openmic"]["test"])) == 10
    for i, name in enumerate(train.names):
        soft, known = train.soft_target(i)
        np.testing.assert_allclose(soft, data["Y_true"][row[name]], atol=1e-3)
        np.testing.assert_array_equal(known, data["Y_mask"][row[name]])
        np.testing.assert_array_equal(train.weak_target(i).astype(bool), known & (soft > 0.5))
    item = ClipDataset(downstream_h5["openmic"]["train"], 32000, 1.0)[3]
    assert item["mask"].dtype == __import__("torch").bool and item["target"].max() <= 1.0
    np.testing.assert_allclose(item["target"].numpy(), data["Y_true"][row[item["name"]]], atol=1e-3)


@pytest.mark.bad_input
def test_attach_soft_labels_rejects_missing_clips_and_bad_values(downstream_h5, tmp_path):
    import shutil

    path = str(tmp_path / "copy.h5")
    shutil.copyfile(downstream_h5["openmic"]["test"], path)
    names = list(AudioH5(path).names)
    with pytest.raises(ValueError, match="no soft labels for 1 clips"):
        attach_soft_labels(path, names[1:], np.zeros((len(names) - 1, 8)), np.ones((len(names) - 1, 8), bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attach_soft_labels(path, names, np.full((len(names), 8), 1.5), np.ones((len(names), 8), bool))


class _Payload:
    """Unpickling this creates ``marker``: stands for any code a crafted pickle could run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def _crafted_layout(tmp_path, real_root: str, sample_key) -> str:
    import shutil

    root = tmp_path / "openmic"
    shutil.copytree(real_root, root, symlinks=True)
    real = np.load(os.path.join(real_root, "openmic-2018.npz"))
    np.savez(root / "openmic-2018.npz", Y_true=real["Y_true"], Y_mask=real["Y_mask"], sample_key=sample_key)
    return str(root)


@pytest.mark.bad_input
def test_openmic_npz_with_a_pickle_payload_is_refused_without_running_it(downstream_layouts, tmp_path):
    from datamodules.sources.common import LayoutError
    from datamodules.sources.openmic import pack_openmic

    marker = tmp_path / "payload_ran"
    root = _crafted_layout(tmp_path, downstream_layouts["openmic"], np.array([_Payload(str(marker))], dtype=object))
    npz = os.path.join(root, "openmic-2018.npz")
    with np.load(npz, allow_pickle=True) as data:  # the payload is live: unpickling runs it
        data["sample_key"]
    assert marker.exists()
    marker.unlink()
    with pytest.raises(LayoutError) as err:
        pack_openmic(root, str(tmp_path / "out"), workers=0, progress=False)
    message = str(err.value)
    assert message.startswith(f"{npz}: array 'sample_key' is stored as pickled Python objects, which sonolab never "
                              "loads (unpickling can run code); if this is the official OpenMIC-2018 download, "
                              "convert it once with: python -c ")
    assert "\n" not in message and not marker.exists() and not (tmp_path / "out").exists()

    import pickle

    with open(npz, "wb") as f:  # a bare pickle under the .npz name
        pickle.dump(_Payload(str(marker)), f)
    with pytest.raises(LayoutError, match="not a readable .npz archive of arrays .* never unpickles"):
        pack_openmic(root, str(tmp_path / "out"), workers=0, progress=False)
    assert not marker.exists()


@pytest.mark.bad_input
def test_the_conversion_command_makes_an_object_key_file_readable(downstream_layouts, tmp_path):
    """The published file's ``sample_key`` is an object array: the command in the message converts it."""
    import re
    import subprocess
    import sys

    from datamodules.sources.common import LayoutError
    from datamodules.sources.openmic import read_openmic_npz

    real = np.load(os.path.join(downstream_layouts["openmic"], "openmic-2018.npz"))
    root = _crafted_layout(tmp_path, downstream_layouts["openmic"], real["sample_key"].astype(object))
    npz = os.path.join(root, "openmic-2018.npz")
    with pytest.raises(LayoutError) as err:
        read_openmic_npz(npz)
    command = re.search(r"convert it once with: (.*)$", str(err.value)).group(1)
    subprocess.run(command.replace("python -c", f"{sys.executable} -c", 1), shell=True, check=True)
    arrays = read_openmic_npz(npz)
    assert arrays["sample_key"].dtype.kind == "U"
    np.testing.assert_array_equal(arrays["sample_key"], real["sample_key"])
    np.testing.assert_array_equal(arrays["Y_true"], real["Y_true"])
