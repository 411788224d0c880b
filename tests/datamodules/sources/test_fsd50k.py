"""FSD50K's Zenodo layout (vocabulary, dev/eval ground truth, audio folders) -> train/val/eval files."""
import numpy as np
import pytest
import soundfile as sf

from datamodules.format.hdf5 import AudioH5
from datamodules.sources.common import LayoutError
from datamodules.sources.fsd50k import pack_fsd50k


def _layout(root, dev_rows, eval_rows):
    gt = root / "FSD50K.ground_truth"
    gt.mkdir(parents=True)
    (gt / "vocabulary.csv").write_text("0,Bark,/m/05tny_\n1,Bird,/m/015p6\n2,\"Wind chime\",/m/026fgl\n")
    (gt / "dev.csv").write_text("fname,labels,mids,split\n" + "".join(dev_rows))
    (gt / "eval.csv").write_text("fname,labels,mids\n" + "".join(eval_rows))
    for folder, rows in (("FSD50K.dev_audio", dev_rows), ("FSD50K.eval_audio", eval_rows)):
        (root / folder).mkdir()
        for row in rows:
            sf.write(root / folder / f"{row.split(',')[0]}.wav", np.zeros(8000, np.float32) + 0.01, 16000)


def test_splits_and_multi_labels(tmp_path):
    _layout(tmp_path, ['64760,"Bark,Bird","/m/05tny_,/m/015p6",train\n', "16399,Wind chime,/m/026fgl,val\n",
                       "5,Bird,/m/015p6,train\n"], ["37199,Bark,/m/05tny_\n"])
    written = pack_fsd50k(str(tmp_path), str(tmp_path / "out"), codec="pcm16", workers=0, progress=False)
    assert sorted(written) == ["eval", "train", "val"]
    train = AudioH5(written["train"])
    assert list(train.names) == ["64760.wav", "5.wav"] and train.class_names == ["Bark", "Bird", "Wind chime"]
    assert train.weak_targets().astype(int).tolist() == [[1, 1, 0], [0, 1, 0]]
    assert list(AudioH5(written["eval"]).names) == ["37199.wav"]


def test_unknown_label_names_file_line_field(tmp_path):
    _layout(tmp_path, ["1,Meow,/m/x,train\n"], [])
    with pytest.raises(LayoutError, match=r"dev.csv, line 2, field 'labels': \['Meow'\] not in vocabulary.csv"):
        pack_fsd50k(str(tmp_path), str(tmp_path / "out"), workers=0, progress=False)
