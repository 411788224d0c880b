"""The ASC task: schedule, device routing, a tiny fit above chance, the complexity gate, KD, int8/fp16 tests, DDP."""
import json
import os

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from callbacks.complexity_gate import ComplexityGate
from datamodules.asc import ASCDataModule
from datamodules.format.hdf5 import AudioH5
from datamodules.teacher import write_teacher_logits
from experiments.asc import DeviceEnsemble, SceneClassification, warmup_cosine
from metrics.asc import DEVICES
from tests.conftest import run_script

pytestmark = pytest.mark.usefixtures("one_thread")

# A small CP-Mobile on a cheap frontend: a few CPU seconds per epoch on the demo scenes.
TINY = dict(
    model_overrides=dict(base_channels=8, channels_multiplier=2.0, n_blocks=[1, 1, 1],
                         strides={"b2": [2, 2], "b3": [2, 2]}),
    frontend_overrides=dict(n_mels=64, n_fft=1024, win_length=1024, hop_length=1000, freqm=0),
)


def datamodule(root: str, **kwargs) -> ASCDataModule:
    args = dict(split_dir=os.path.join(root, "scenes"), batch_size=20, num_workers=0)
    args.update(kwargs)
    return ASCDataModule(os.path.join(root, "scenes_train.h5"), os.path.join(root, "scenes_test.h5"), **args)


def trainer(tmp_path, **kwargs) -> pl.Trainer:
    args = dict(accelerator="cpu", devices=1, logger=pl.loggers.TensorBoardLogger(str(tmp_path), name="asc"),
                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                num_sanity_val_steps=0)
    args.update(kwargs)
    return pl.Trainer(**args)


def test_warmup_cosine():
    values = [warmup_cosine(s, 10, 110) for s in range(120)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[60] == pytest.approx(0.5) and values[110] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


class Constant(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x):
        return self.value.expand(x.shape[0], 3).clone(), x


def test_device_ensemble_routes_by_device():
    ensemble = DeviceEnsemble(Constant(0.0), {"b": Constant(1.0), "s2": Constant(2.0)})
    devices = torch.tensor([DEVICES.index(d) for d in ("a", "b", "s2", "s5", "b")])
    out = ensemble(torch.zeros(5, 1, 4, 4), devices)
    assert out[:, 0].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="unknown devices"):
        DeviceEnsemble(Constant(0.0), {"zz": Constant(1.0)})


@pytest.mark.slow
def test_tiny_fit_beats_chance(demo_scenes, tmp_path):
    pl.seed_everything(0)
    task = SceneClassification(lr=0.02, warmup_steps=3, mixstyle_p=0.4, dir_dir=os.path.join(demo_scenes, "dirs"),
                               test_precision="fp32", **TINY)
    fit = trainer(tmp_path, max_epochs=5)
    fit.fit(task, datamodule(demo_scenes))
    metrics = fit.callback_metrics
    assert float(metrics["val/macro_acc"]) > 0.25  # chance: 0.1 (10 balanced classes)
    for key in ("val/micro_acc", "val/acc/a", "val/acc/s4", "val/acc/airport", "val/acc/real", "val/acc/unseen"):
        assert key in metrics


@pytest.mark.slow
def test_complexity_gate_passes_in_fit_and_int8_test(demo_scenes, tmp_path):
    gate = ComplexityGate(input_shape=(1, 1, 256, 65), precision="fp16")
    task = SceneClassification(warmup_steps=1, test_precision="int8", calibration_batches=1)
    run = trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1, limit_test_batches=1,
                  callbacks=[gate])
    dm = datamodule(demo_scenes, batch_size=4)
    run.fit(task, dm)
    assert gate.report.params == 61_148 and gate.report.macs == 29_419_156 and not gate.report.violations
    run.test(task, dm, verbose=False)
    assert any("quantized" in type(m).__module__ for m in task.deployed_network().modules())
    assert 0.0 <= float(run.callback_metrics["test/macro_acc"]) <= 1.0


@pytest.mark.slow
def test_distillation_and_fp16_test(demo_scenes, tmp_path):
    names = list(AudioH5(os.path.join(demo_scenes, "scenes_train.h5")).names)
    teacher = str(tmp_path / "teacher.h5")
    write_teacher_logits(teacher, names, np.random.default_rng(0).standard_normal((len(names), 10)) * 3)
    task = SceneClassification(warmup_steps=1, test_precision="fp16", **TINY)
    run = trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, limit_test_batches=2,
                  log_every_n_steps=1)
    dm = datamodule(demo_scenes, teacher_logits=teacher, batch_size=8)
    run.fit(task, dm)
    assert "train/kd_loss" in run.callback_metrics and "train/label_loss" in run.callback_metrics
    assert float(run.callback_metrics["train/teacher_coverage"]) == 1.0
    run.test(task, dm, verbose=False)
    assert next(task.deployed_network().parameters()).dtype == torch.float16
    assert 0.0 <= float(run.callback_metrics["test/macro_acc"]) <= 1.0


DDP_SCRIPT = """
import json, sys
import pytorch_lightning as pl
import torch
from datamodules.asc import ASCDataModule
from experiments.asc import SceneClassification

out, data, weights, devices, tiny = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), json.loads(sys.argv[5])
torch.set_num_threads(1)
task = SceneClassification(test_precision="fp32", **tiny)
task.load_state_dict(torch.load(weights))
dm = ASCDataModule(test_h5=data, batch_size=4, num_workers=0)
trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
metrics = {**trainer.validate(task, dm, verbose=False)[0], **trainer.test(task, dm, verbose=False)[0]}
if trainer.is_global_zero:
    with open(f"{out}/metrics.json", "w") as f:
        json.dump(metrics, f)
"""


def _scene_file(path: str, clips: int) -> str:
    """``clips`` 1 s noise clips at 44.1 kHz with scene and device labels, TAU-named."""
    from datamodules.format.audio_io import encode_audio
    from datamodules.format.hdf5 import ClipRecord, write_h5
    from metrics.asc import SCENE_CLASSES

    rng = np.random.default_rng(0)
    records = []
    for i in range(clips):
        scene, device = i % 10, i % len(DEVICES)
        name = f"audio/{SCENE_CLASSES[scene]}-lisbon-{i}-0-0-{DEVICES[device]}.wav"
        wave = 0.1 * rng.standard_normal(44100) * (1 + scene)
        records.append(ClipRecord(name, encode_audio(wave, 44100, "pcm16"), 1.0, scene=scene, device=device))
    write_h5(path, records, clips, codec="pcm16", sample_rate=44100, scene_names=SCENE_CLASSES, device_names=DEVICES,
             name_width=64)
    return path


@pytest.mark.slow
@pytest.mark.bad_input
def test_two_ddp_processes_score_every_clip_exactly_once(tmp_path):
    """15 clips on 2 processes: the sampler pads with a repeated clip, which must not count twice."""
    data = _scene_file(str(tmp_path / "scenes.h5"), 15)
    torch.manual_seed(0)
    torch.save(SceneClassification(test_precision="fp32", **TINY).state_dict(), tmp_path / "weights.pt")
    runs = {}
    for devices in (1, 2):
        out = tmp_path / f"devices{devices}"
        out.mkdir()
        run_script(DDP_SCRIPT, tmp_path, out, data, tmp_path / "weights.pt", devices, json.dumps(TINY))
        runs[devices] = json.loads((out / "metrics.json").read_text())
    single, ddp = runs[1], runs[2]
    assert set(single) == set(ddp) >= {"val/loss", "val/macro_acc", "val/micro_acc", "val/acc/s6", "test/macro_acc"}
    for key in single:
        if key.endswith("loss"):
            assert ddp[key] == pytest.approx(single[key], rel=1e-6), key  # a mean over the same clips
        else:
            assert ddp[key] == single[key], key


@pytest.mark.slow
def test_int8_test_of_one_checkpoint_is_reproducible(demo_scenes, tmp_path):
    """Calibration reads a fixed draw of un-augmented training clips: two int8 tests give identical files."""
    from callbacks.asc_submission import ASCSubmissionWriter

    torch.manual_seed(0)
    task = SceneClassification(test_precision="int8", calibration_batches=3, **TINY)
    dm = datamodule(demo_scenes, batch_size=5)
    outputs, metrics = [], []
    for run_index in range(2):
        writer = ASCSubmissionWriter(str(tmp_path / f"run{run_index}"))
        run = trainer(tmp_path, limit_test_batches=4, callbacks=[writer])
        run.test(task, dm, verbose=False)
        outputs.append((tmp_path / f"run{run_index}" / "output.csv").read_bytes())
        metrics.append({k: float(v) for k, v in run.callback_metrics.items()})
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 1 + 20
    assert metrics[0] == metrics[1] and "test/macro_acc" in metrics[0]


SCENES = ["forest_day", "harbour", "market"]
PHONES = ["phoneA", "phoneB", "mic3"]


def _custom_scene_files(folder) -> tuple:
    """Train clips of phoneA/phoneB, test clips also of mic3 (only in test); non-TAU names, custom vocabularies."""
    import soundfile as sf

    from datamodules.format.pack import PackItem, pack

    rng = np.random.default_rng(0)
    tables = {"train": [(s, d) for s in range(3) for d in (0, 1) for _ in range(2)],
              "test": [(s, d) for s in range(3) for d in (0, 1, 2) for _ in range(2)]}
    paths = {}
    for split, rows in tables.items():
        items = []
        for i, (scene, device) in enumerate(rows):
            name = f"{split}_{SCENES[scene]}_{PHONES[device]}_{i}.wav"
            tone = np.sin(2 * np.pi * (300 + 900 * scene) * np.arange(44100) / 44100)
            sf.write(str(folder / name), 0.2 * tone + 0.05 * rng.standard_normal(44100), 44100)
            items.append(PackItem(str(folder / name), name, scene=scene, device=device, city=0))
        paths[split] = str(folder / f"{split}.h5")
        pack(items, paths[split], codec="pcm16", sample_rate=44100, scene_names=SCENES,
             device_names=PHONES[:2] if split == "train" else PHONES, city_names=["oslo"], workers=0, progress=False)
    return paths["train"], paths["test"], tables["test"]


@pytest.mark.slow
def test_metrics_carry_the_files_vocabularies(tmp_path):
    from callbacks.confusion_image import ConfusionMatrixImage

    train, test, rows = _custom_scene_files(tmp_path)
    dm = ASCDataModule(train, test, batch_size=6, num_workers=0)
    torch.manual_seed(0)
    task = SceneClassification(num_classes=3, test_precision="fp32", **TINY)
    run = trainer(tmp_path, callbacks=[ConfusionMatrixImage(device_accuracy=False)])
    run.test(task, dm, verbose=False)
    logged = {k: float(v) for k, v in run.callback_metrics.items()}
    # by hand, from the predictions of the same network
    predicted = {}
    for out in run.predict(task, dm):
        predicted.update({n: int(p.argmax()) for n, p in zip(out["name"], out["probs"])})
    names = [f"test_{SCENES[s]}_{PHONES[d]}_{i}.wav" for i, (s, d) in enumerate(rows)]
    hits = [predicted[n] == s for n, (s, d) in zip(names, rows)]
    assert len(predicted) == 18

    def rate(keep):
        chosen = [h for h, r in zip(hits, rows) if keep(*r)]
        return sum(chosen) / len(chosen)

    assert logged["test/acc/forest_day"] == pytest.approx(rate(lambda s, d: s == 0))
    assert logged["test/acc/market"] == pytest.approx(rate(lambda s, d: s == 2))
    assert logged["test/acc/unseen_devices"] == pytest.approx(rate(lambda s, d: d == 2))  # mic3: not in training
    assert logged["test/acc/seen_devices"] == pytest.approx(rate(lambda s, d: d < 2))
    assert logged["test/acc/mic3"] == pytest.approx(rate(lambda s, d: d == 2))
    assert not any(k in logged for k in ("test/acc/0", "test/acc/real", "test/acc/unseen"))
    table = (tmp_path / "asc" / "version_0" / "confusion_test.tsv").read_text().splitlines()
    assert table[0].split("\t") == ["true\\predicted", *SCENES] and [r.split("\t")[0] for r in table[1:]] == SCENES


@pytest.mark.slow
def test_fit_says_which_set_validates(demo_scenes, tmp_path, capsys):
    task = SceneClassification(warmup_steps=1, test_precision="fp32", **TINY)
    limits = dict(max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer(tmp_path, **limits).fit(task, datamodule(demo_scenes, batch_size=4))
    out = capsys.readouterr().out
    assert ("validating on the test set scenes_test.h5, as the DCASE'24 baseline does; set "
            "data.init_args.val_fraction=0.1 (val_group: recording|city) for a held-out split\n") in out
    trainer(tmp_path, **limits).fit(task, datamodule(demo_scenes, batch_size=4, val_fraction=0.1))
    assert ("validating on held-out recordings of scenes_train.h5 (val_fraction 0.1, seed 0: 20 clips, 10.0% of the "
            "training split, left out of training)\n") in capsys.readouterr().out


def test_predict_uses_the_deployed_network_of_test_precision():
    """`sonolab predict` answers with the network a test evaluates (here the fp16 copy), not the fp32 one."""
    task = SceneClassification(test_precision="fp16", **TINY)
    task.on_predict_start()
    assert task.deployed_network() is not task.model
    assert {p.dtype for p in task.deployed_network().parameters()} == {torch.float16}
