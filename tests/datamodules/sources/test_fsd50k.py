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


@pytest.mark.bad_input
def test_unknown_label_names_file_line_field(tmp_path):
    _layout(tmp_path, ["1,Meow,/m/x,train\n"], [])
    with pytest.raises(LayoutError, match=r"dev.csv, line 2, field 'labels': \['Meow'\] not in vocabulary.csv"):
        pack_fsd50k(str(tmp_path), str(tmp_path / "out"), workers=0, progress=False)


@pytest.mark.bad_input
def test_tables_in_utf16_with_bom_are_read_and_latin1_is_refused(tmp_path):
    _layout(tmp_path, ["5,Bird,/m/015p6,train\n"], ["37199,Wind chime,/m/026fgl\n"])
    gt = tmp_path / "FSD50K.ground_truth"
    (gt / "eval.csv").write_bytes("fname,labels,mids\n37199,Wind chime,/m/026fgl\n".encode("utf-16"))
    written = pack_fsd50k(str(tmp_path), str(tmp_path / "out"), codec="pcm16", workers=0, progress=False)
    assert AudioH5(written["eval"]).weak_targets().astype(int).tolist() == [[0, 0, 1]]
    (gt / "vocabulary.csv").write_bytes("0,Bark,/m/05tny_\n1,Bird \xe9,/m/015p6\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"vocabulary\.csv: not UTF-8 text at byte 24 \(line 2; save it as UTF-8\)"):
        pack_fsd50k(str(tmp_path), str(tmp_path / "out2"), workers=0, progress=False)
