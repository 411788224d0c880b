"""The SED task: masked supervision, consistency on the chosen domains, the EMA teacher, shipped configs run tiny,
and a tiny fit on demo strong data whose validation PSDS beats the untrained model's."""
import glob
import math
import os
import random
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from callbacks.sed_events_image import SEDEventsImage
from datamodules.format.hdf5 import AudioH5
from datamodules.sed.datamodule import SEDDataModule, SEDSource
from datamodules.sed.embeddings import write_frame_embeddings
from experiments.cli import run_lightning_cli
from datamodules.sed.mixup_groups import MixupGroupsError, resolve_mixup_groups
from experiments.sed import SoundEventDetection

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "sed")
SMALL = dict(channels=[8, 8, 16, 16, 16, 16, 16], rnn_hidden=16)


class _Data:
    source_domains = ["desed", "maestro", "desed"]
    class_names = ("a", "b", "c")


def _task(monkeypatch, **kwargs):
    monkeypatch.setattr(SoundEventDetection, "datamodule", property(lambda self: _Data()))
    return SoundEventDetection(num_classes=3, model_overrides=SMALL, median_windows=1, **kwargs)


def _batch(b=6, frames=15):
    torch.manual_seed(0)
    return {"audio": torch.randn(b, 16000), "strong": (torch.rand(b, 3, frames) > 0.7).float(),
            "weak": (torch.rand(b, 3) > 0.5).float(), "mask": torch.tensor([[True, True, False]] * b),
            "has_strong": torch.tensor([True, True, False, False, True, True]),
            "has_weak": torch.tensor([False, False, True, True, False, False]),
            "source": torch.tensor([0, 0, 1, 1, 2, 2]), "name": [f"c{i}" for i in range(b)]}


def test_supervised_loss_ignores_masked_classes_and_uses_the_right_rows(monkeypatch):
    task = _task(monkeypatch, mixup_p=0.0).eval()
    batch = _batch()
    x = task._inputs(batch, train=False)
    strong, weak = task.model(x["features"], None, x["mask"])
    base = task._supervised(strong, weak, x, batch)
    changed = dict(x, strong=x["strong"].clone(), weak=x["weak"].clone())
    changed["strong"][:, 2] = 1 - changed["strong"][:, 2]  # masked class
    changed["weak"][:, 2] = 1 - changed["weak"][:, 2]
    changed["strong"][2:4] = 1 - changed["strong"][2:4]  # weak-only rows' frame targets
    for a, b in zip(base, task._supervised(strong, weak, changed, batch)):
        torch.testing.assert_close(a, b)
    rows = batch["has_strong"]
    expected = torch.nn.functional.binary_cross_entropy(strong[rows][:, :2], x["strong"][rows][:, :2],
                                                        reduction="sum") / strong[rows].numel()
    torch.testing.assert_close(base[0], expected)


def test_consistency_applies_to_the_configured_domains_only(monkeypatch):
    task = _task(monkeypatch)
    batch = _batch()
    assert task._consistency_rows(batch).tolist() == [True, True, False, False, True, True]
    task.hparams.consistency_domains = ["maestro"]
    assert task._consistency_rows(batch).tolist() == [False, False, True, True, False, False]


def test_mixup_stays_inside_each_source(monkeypatch):
    task = _task(monkeypatch, mixup_p=1.0, mixup_mode="per_source")
    batch = _batch()
    batch["strong"] = batch["source"].float().view(-1, 1, 1).expand(-1, 3, 15).clone()  # target = source id
    x = task._inputs(batch, train=True)
    torch.testing.assert_close(x["strong"], batch["strong"])  # mixing equal rows changes nothing


# The DCASE'24 baseline's sources: two rows of each (rows 0-1 maestro, 2-3 synth, 4-5 strong, 6-7 weak, 8-9 unlabeled).
BASELINE_SOURCES = [SEDSource("maestro", "m.h5", 2, "strong", "maestro"), SEDSource("synth", "s.h5", 2, "strong"),
                    SEDSource("strong", "r.h5", 2, "strong"), SEDSource("weak", "w.h5", 2, "weak"),
                    SEDSource("unlabeled", "u.h5", 2, "none")]


class _BaselineData(_Data):
    sources = BASELINE_SOURCES
    source_domains = [s.domain for s in BASELINE_SOURCES]


def _baseline_task(monkeypatch, **kwargs):
    monkeypatch.setattr(SoundEventDetection, "datamodule", property(lambda self: _BaselineData()))
    return SoundEventDetection(num_classes=3, model_overrides=SMALL, median_windows=1, **kwargs)


def _baseline_batch(embeddings=False):
    torch.manual_seed(0)
    source = torch.arange(5).repeat_interleave(2)
    batch = {"audio": torch.randn(10, 4000), "strong": torch.arange(10.0).view(-1, 1, 1).expand(-1, 3, 4).clone(),
             "weak": torch.rand(10, 3), "mask": torch.ones(10, 3, dtype=torch.bool),
             "has_strong": source < 3, "has_weak": source == 3, "source": source}
    batch["weak"][6:8] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if embeddings:
        batch["embeddings"] = torch.randn(10, 8, 5)
    return batch


def test_default_mixup_groups_are_the_baselines_in_its_call_order():
    assert resolve_mixup_groups(BASELINE_SOURCES, None) == [[3], [1, 2], [0]]  # weak, synth + strong, maestro
    assert resolve_mixup_groups(BASELINE_SOURCES, [["maestro", "strong"], ["weak"]]) == [[0, 2], [3]]


@pytest.mark.bad_input
@pytest.mark.parametrize("groups, message", [
    ([["weak"], ["nope"]], r"mixup_groups\[1\]: 'nope' is not a source \(sources: \['maestro'"),
    ([["weak"], ["weak"]], r"mixup_groups\[1\]: 'weak' is in two groups"),
    ([["unlabeled"]], r"mixup_groups\[0\]: source 'unlabeled' is unlabeled \(labels: none\)"),
    ([["synth", "weak"]], r"mixup_groups\[0\]: \['synth', 'weak'\] has labels \['strong', 'weak'\]"),
])
def test_bad_mixup_groups_name_the_group_and_the_source(groups, message):
    with pytest.raises(MixupGroupsError, match=message):
        resolve_mixup_groups(BASELINE_SOURCES, groups)


def test_baseline_mixup_draws_one_coin_per_batch(monkeypatch):
    calls, betas, beta = [], [], np.random.beta
    monkeypatch.setattr(random, "random", lambda: calls.append(1) or 0.7)
    monkeypatch.setattr(np.random, "beta", lambda a, b: betas.append((a, b)) or beta(a, b))
    batch = _baseline_batch()
    task = _baseline_task(monkeypatch, mixup_p=0.5)
    x = task._inputs(batch, train=True)  # the coin (0.7) fails: nothing mixed, outputs as without mixup
    assert len(calls) == 1 and not betas and torch.equal(x["features"], task.frontend(batch["audio"]))
    assert torch.equal(x["strong"], batch["strong"]) and torch.equal(x["weak"], batch["weak"])
    task.hparams.mixup_p = 1.0
    x = task._inputs(batch, train=True)  # one coin for every group
    assert len(calls) == 2 and betas == [(0.2, 0.2)] * 3  # then one c per group: weak, synth + strong, maestro
    task.hparams.mixup_p = 0.0
    assert torch.equal(task._inputs(batch, train=True)["features"], task.frontend(batch["audio"]))
    assert len(calls) == 2  # p = 0: no coin


def test_baseline_mixup_permutes_only_inside_each_group_and_never_touches_unlabeled_rows(monkeypatch):
    monkeypatch.setattr(np.random, "beta", lambda a, b: 0.0)  # c = 0: each row becomes exactly its partner
    task = _baseline_task(monkeypatch, mixup_p=1.0)
    batch = _baseline_batch(embeddings=True)
    random.seed(0)
    torch.manual_seed(3)
    x = task._inputs(batch, train=True)
    features = task.frontend(batch["audio"])
    partners = x["strong"][:, 0, 0].long()  # the strong targets are the row numbers
    for rows in ([0, 1], [2, 3, 4, 5], [6, 7]):  # maestro; synth + strong; weak
        assert sorted(partners[rows].tolist()) == rows
    assert partners[2:6].tolist() != [2, 3, 4, 5] or partners[[0, 1, 6, 7]].tolist() != [0, 1, 6, 7]
    assert partners[8:].tolist() == [8, 9]
    for key, value in (("features", features), ("embeddings", batch["embeddings"]), ("weak", batch["weak"])):
        assert torch.equal(x[key][8:], value[8:]), key  # unlabeled rows bit-for-bit


def test_baseline_mixup_mixes_the_linear_mel_before_the_db_and_min_max(monkeypatch):
    monkeypatch.setattr(np.random, "beta", lambda a, b: 0.3)
    monkeypatch.setattr(torch, "randperm", lambda n: torch.arange(n).flip(0))  # rows 2, 3 swap partners
    task = _baseline_task(monkeypatch, mixup_p=1.0, mixup_groups=[["synth"]])
    batch = _baseline_batch()
    x = task._inputs(batch, train=True)
    a, b = task.frontend.linear(batch["audio"][2:4])
    mixed = torch.stack([0.3 * a + 0.7 * b, 0.3 * b + 0.7 * a])
    db = (20.0 * torch.log10(mixed.clamp(min=1e-5))).clamp(-50.0, 80.0)
    lo, hi = db.amin(dim=(1, 2), keepdim=True), db.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(x["features"][2:4, 0], 2 * (db - lo) / (hi - lo + 1e-8) - 1)
    log_a, log_b = task.frontend(batch["audio"][2:4])
    after_log = 0.3 * log_a + 0.7 * log_b  # what mixing after the frontend would give
    assert (x["features"][2, 0] - after_log).abs().max() > 0.1
    torch.testing.assert_close(x["strong"][2:4, 0, 0], torch.tensor([0.3 * 2 + 0.7 * 3, 0.3 * 3 + 0.7 * 2]))
    assert torch.equal(x["features"][4:], task.frontend(batch["audio"])[4:])  # strong, weak: not in a group


def test_baseline_mixup_gives_embeddings_their_own_draw_and_mixes_the_targets_again(monkeypatch):
    draws = iter([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])  # per group (weak, synth + strong, maestro): features, embeddings
    monkeypatch.setattr(np.random, "beta", lambda a, b: next(draws))
    monkeypatch.setattr(torch, "randperm", lambda n: torch.arange(n).flip(0))
    task = _baseline_task(monkeypatch, mixup_p=1.0)
    batch = _baseline_batch(embeddings=True)
    x = task._inputs(batch, train=True)
    lin = task.frontend.linear(batch["audio"])
    emb, y = batch["embeddings"], batch["strong"][:, 0, 0]
    for rows, c_feat, c_emb in (([6, 7], 0.1, 0.2), ([2, 3, 4, 5], 0.3, 0.4), ([0, 1], 0.5, 0.6)):
        flip = rows[::-1]
        torch.testing.assert_close(x["features"][rows],
                                   task.frontend.finish(c_feat * lin[rows] + (1 - c_feat) * lin[flip]))
        torch.testing.assert_close(x["embeddings"][rows], c_emb * emb[rows] + (1 - c_emb) * emb[flip])
        once = c_feat * y[rows] + (1 - c_feat) * y[flip]
        torch.testing.assert_close(x["strong"][rows, 0, 0], c_emb * once + (1 - c_emb) * once.flip(0))
    assert x["weak"][6:8].tolist() == [[1.0, 1.0, 0.0]] * 2  # weak rows: the union of the mixed clips' labels
    torch.testing.assert_close(x["weak"][:2], 0.6 * (0.5 * batch["weak"][:2] + 0.5 * batch["weak"][[1, 0]])
                               + 0.4 * (0.5 * batch["weak"][[1, 0]] + 0.5 * batch["weak"][:2]))  # soft elsewhere


def test_teacher_moves_before_the_optimizer_step_with_the_scheduler_count(monkeypatch):
    """As the baseline: at the first batch the teacher averages (alpha 0.5) with the student's weights before the
    optimizer changes them."""
    task = _task(monkeypatch)
    task._trainer = SimpleNamespace(global_step=0)
    before = next(task.teacher.parameters()).clone()
    with torch.no_grad():
        for p in task.model.parameters():
            p.add_(2.0)  # the student's weights of this batch
    task.on_before_optimizer_step(None)
    torch.testing.assert_close(next(task.teacher.parameters()), before + 1.0)


def test_teacher_follows_the_student_after_each_step(monkeypatch):
    task = _task(monkeypatch)
    first = next(task.teacher.parameters()).clone()
    with torch.no_grad():
        for p in task.model.parameters():
            p.add_(1.0)
    task.teacher.update(task.model, step=1)  # alpha 0.5
    torch.testing.assert_close(next(task.teacher.parameters()), first + 0.5)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="warmup_epochs <= cosine_start"):
        SoundEventDetection(num_classes=3, model_overrides=SMALL, warmup_epochs=10, cosine_start=5)


def _scheduled(max_epochs: int, steps_per_epoch: int, **schedule):
    """A task attached to a stand-in trainer, with its LR multiplier per step."""
    task = SoundEventDetection(num_classes=3, model_overrides=SMALL, median_windows=1, **schedule)
    task._trainer = SimpleNamespace(max_epochs=max_epochs, estimated_stepping_batches=max_epochs * steps_per_epoch)
    scheduler = task.configure_optimizers()["lr_scheduler"]["scheduler"]
    return task, scheduler.lr_lambdas[0]


def test_derived_schedule_is_the_published_one_at_300_epochs():
    derived, derived_lr = _scheduled(300, 3)
    published, published_lr = _scheduled(300, 3, warmup_epochs=50, cosine_start=100, cosine_end=300)
    assert derived.schedule_epochs() == published.schedule_epochs() == (50.0, 100.0, 300.0)
    assert [derived_lr(step) for step in range(901)] == [published_lr(step) for step in range(901)]
    # DESED_task ExponentialWarmup: the first step at the full lr, step k >= 1 at the counter k + 1 (steps)
    assert derived_lr(0) == 1.0 and derived_lr(1) == pytest.approx(math.exp(-5.0 * (1 - 2 / 150) ** 2))
    assert derived_lr(149) == 1.0 and derived_lr(298) == 1.0  # warm-up ends at step 150, the cosine starts at 300
    assert derived_lr(599) == pytest.approx(math.cos(math.pi / 4)) and derived_lr(899) == derived_lr(950) == 1e-5


def test_short_run_schedule_keeps_the_ratios_and_leaves_the_warm_up_after_one_epoch():
    task, lr = _scheduled(6, 4)  # epochs: warm-up to 1, flat to 2, cosine to 6
    assert task.schedule_epochs() == (1.0, 2.0, 6.0)
    assert lr(2) < 1.0 and lr(3) == lr(6) == 1.0 and lr(8) < 1.0 and lr(23) == 1e-5
    task._trainer.global_step = 3  # the fourth batch: the consistency weight is full from there
    assert task._schedule_factor(task._scheduler_count()) == 1.0 and task._schedule_factor(3) < 1.0
    task, _ = _scheduled(6, 4, warmup_epochs=0.5)  # set values stay, the others are derived
    assert task.schedule_epochs() == (0.5, 2.0, 6.0)


@pytest.mark.bad_input
def test_derived_schedule_needs_max_epochs():
    task = SoundEventDetection(num_classes=3, model_overrides=SMALL, median_windows=1)
    task._trainer = SimpleNamespace(max_epochs=-1, estimated_stepping_batches=float("inf"))
    with pytest.raises(ValueError, match="derive from trainer.max_epochs, which is -1: set trainer.max_epochs or"):
        task.schedule_epochs()
    task = SoundEventDetection(num_classes=3, model_overrides=SMALL, median_windows=1, warmup_epochs=3)
    task._trainer = SimpleNamespace(max_epochs=6, estimated_stepping_batches=24)  # 3 > the derived cosine start 2
    with pytest.raises(ValueError, match=r"got 3.0, 2.0, 6.0 \(unset ones derived from trainer.max_epochs 6\)$"):
        task.schedule_epochs()


def _demo_module(demo_data, classes, **kwargs):
    root = demo_data[0]
    sources = [SEDSource("strong", f"{root}/events_train.h5", 8, "strong"),
               SEDSource("unlabeled", f"{root}/events_test.h5", 4, "none")]
    return SEDDataModule(sources, f"{root}/events_val.h5", test_h5=f"{root}/events_val.h5", classes=classes,
                         clip_seconds=4.0, val_batch_size=20, **kwargs)


@pytest.mark.slow
def test_tiny_fit_on_demo_strong_data_beats_the_untrained_psds(demo_data, tmp_path):
    # A one-class label space ("engine_hum") of the demo events: a 6-epoch CPU fit is enough for it, while all eight
    # demo classes need far more epochs than a test can afford before PSDS (mean - std over classes) leaves 0.
    pl.seed_everything(0)
    data = _demo_module(demo_data, ["engine_hum"], eval_other_classes="ignore")  # score engine_hum only
    task = SoundEventDetection(num_classes=1, lr=1e-2, warmup_epochs=1, cosine_start=1, cosine_end=6,
                               median_windows=5, mixup_p=0.0,
                               model_overrides=dict(channels=[16, 16, 32, 32, 32, 32, 32], rnn_hidden=32,
                                                    dropout=0.0, dropstep_prob=0.0, bn_momentum=0.1))
    trainer = pl.Trainer(max_epochs=6, accelerator="cpu", logger=pl.loggers.TensorBoardLogger(str(tmp_path)),
                         enable_checkpointing=False, enable_progress_bar=False, num_sanity_val_steps=0,
                         gradient_clip_val=5.0, enable_model_summary=False, callbacks=[SEDEventsImage(clips=3)])
    untrained = trainer.validate(task, data, verbose=False)[0]
    trainer.fit(task, data)
    trained = trainer.validate(task, data, verbose=False)[0]
    assert trained["val/psds1"] > untrained["val/psds1"] + 0.3
    assert trained["val/loss"] < untrained["val/loss"]
    figure = trainer.callbacks[0]
    assert len(figure.examples) == 3 and figure.last.ndim == 3 and figure.last.shape[2] == 3  # RGB, height x width


def _tiny_cli(config_args, demo_data, tmp_path, extra=()):
    root = demo_data[0]
    sources = (f"[{{name: strong, h5: {root}/events_train.h5, batch_size: 4, labels: strong{{emb}}}}, "
               f"{{name: weak, h5: {root}/events_val.h5, batch_size: 2, labels: weak{{emb}}}}, "
               f"{{name: unlabeled, h5: {root}/events_test.h5, batch_size: 2, labels: none{{emb}}}}]")
    return sources, [
        f"--data.init_args.val_h5={root}/events_val.h5", f"--data.init_args.test_h5={root}/events_test.h5",
        f"--data.init_args.classes={root}/events/classes.txt", "--data.init_args.clip_seconds=4.0",
        "--data.init_args.num_workers=0", "--data.init_args.val_batch_size=8", "--model.init_args.median_windows=5",
        "--model.init_args.test_engine=psds_eval", "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2", "--trainer.accelerator=cpu",
        "--trainer.devices=1", f"--trainer.logger.init_args.save_dir={tmp_path}", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("deltas", [[], ["beats.yaml"]])
def test_shipped_sed_configs_run_tiny_on_demo_data(deltas, demo_data, tmp_path):
    root = demo_data[0]
    configs = ["--config", os.path.join(ROOT, "baseline.yaml")]
    for delta in deltas:
        configs += ["--config", os.path.join(ROOT, delta)]
    sources, args = _tiny_cli(configs, demo_data, tmp_path)
    emb = ""
    if deltas:  # random 768-d BEATs-like frame embeddings (496 frames per clip) for every demo clip
        rng = np.random.default_rng(0)
        for split in ("train", "val", "test"):
            names = list(AudioH5(f"{root}/events_{split}.h5").names)
            write_frame_embeddings(str(tmp_path / f"emb_{split}.h5"), names,
                                   rng.standard_normal((len(names), 768, 496)).astype(np.float16))
        sources = sources.replace("strong{emb}", f"strong, embeddings: {tmp_path}/emb_train.h5") \
            .replace("weak{emb}", f"weak, embeddings: {tmp_path}/emb_val.h5") \
            .replace("none{emb}", f"none, embeddings: {tmp_path}/emb_test.h5")
        args += [f"--data.init_args.val_embeddings={tmp_path}/emb_val.h5",
                 f"--data.init_args.test_embeddings={tmp_path}/emb_test.h5"]
    cli = run_lightning_cli(["fit", *configs, f"--data.init_args.sources={sources.replace('{emb}', emb)}", *args])
    assert "val/psds1" in cli.trainer.callback_metrics and "val/psds1_teacher" in cli.trainer.callback_metrics
    (run_dir,) = glob.glob(str(tmp_path / "*" / "version_*"))
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["best.ckpt", "last.ckpt"]
    result = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    assert {"test/psds1", "test/psds2", "test/f1_intersection", "test/f1_event_macro",
            "test/f1_segment_macro", "test/psds1_teacher"} <= set(result)
    score_files = glob.glob(os.path.join(run_dir, "scores", "student", "*.tsv"))
    assert len(score_files) == 16  # limit_test_batches=2 x val_batch_size 8
    header = open(score_files[0]).readline().rstrip("\n").split("\t")
    assert header[:2] == ["onset", "offset"] and len(header) == 2 + 8
