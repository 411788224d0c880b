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


def test_attach_soft_labels_rejects_missing_clips_and_bad_values(downstream_h5, tmp_path):
    import shutil

    path = str(tmp_path / "copy.h5")
    shutil.copyfile(downstream_h5["openmic"]["test"], path)
    names = list(AudioH5(path).names)
    with pytest.raises(ValueError, match="no soft labels for 1 clips"):
        attach_soft_labels(path, names[1:], np.zeros((len(names) - 1, 8)), np.ones((len(names) - 1, 8), bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attach_soft_labels(path, names, np.full((len(names), 8), 1.5), np.ones((len(names), 8), bool))
