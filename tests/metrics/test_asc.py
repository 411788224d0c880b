"""ASC accuracies on a hand-made case."""
import math

import numpy as np
import pytest
import torch

from metrics.asc import DEVICES, SCENE_CLASSES, ASCAccuracy, asc_accuracies

# (device, true, predicted); classes 0..2 of the ten
CASE = [
    ("a", 0, 0), ("a", 0, 1), ("a", 1, 1),   # a: 2/3
    ("b", 1, 1), ("b", 2, 2),                # b: 2/2
    ("s1", 2, 0), ("s1", 0, 0),              # s1: 1/2
    ("s4", 1, 2), ("s5", 2, 2), ("s6", 0, 0),  # unseen: 2/3
]


def _unzip(rows):
    devices = [r[0] for r in rows]
    return torch.tensor([r[2] for r in rows]), torch.tensor([r[1] for r in rows]), devices


def _check(result):
    # class 0: a ok, a wrong, s1 ok, s6 ok -> 3/4; class 1: a ok, b ok, s4 wrong -> 2/3;
    # class 2: b ok, s1 wrong, s5 ok -> 2/3
    assert result["acc/airport"] == pytest.approx(3 / 4)
    assert result["acc/bus"] == pytest.approx(2 / 3)
    assert result["acc/metro"] == pytest.approx(2 / 3)
    assert result["macro_acc"] == pytest.approx((3 / 4 + 2 / 3 + 2 / 3) / 3)  # classes without samples ignored
    assert result["micro_acc"] == pytest.approx(7 / 10)
    assert result["acc/a"] == pytest.approx(2 / 3) and result["acc/b"] == 1.0 and result["acc/s1"] == 0.5
    assert math.isnan(result["acc/c"]) and math.isnan(result["acc/park"])
    assert result["acc/real"] == pytest.approx(4 / 5)  # pooled over a, b, c
    assert result["acc/seen"] == pytest.approx(1 / 2)
    assert result["acc/unseen"] == pytest.approx(2 / 3)


def test_functions_on_hand_case():
    preds, targets, devices = _unzip(CASE)
    _check(asc_accuracies(preds, targets, devices))
    scores = torch.nn.functional.one_hot(preds, 10).float()
    _check(asc_accuracies(scores, targets, torch.tensor([DEVICES.index(d) for d in devices])))


def _names(rows, start=0):
    return [f"clip{i}" for i in range(start, start + len(rows))]


def test_metric_accumulates_batches_and_confusion_matrix():
    metric = ASCAccuracy()
    for start, rows in ((0, CASE[:4]), (4, CASE[4:])):
        metric.update(*_unzip(rows), _names(rows, start))
    _check(metric.compute())
    cm = metric.confusion_matrix()
    assert cm.shape == (10, 10) and cm.dtype == np.int64 and cm.sum() == 10
    assert cm[0, 0] == 3 and cm[0, 1] == 1 and cm[2, 0] == 1 and cm[1, 2] == 1
    assert metric.confusion_matrix("a").sum() == 3
    metric.reset()
    assert metric.confusion.sum() == 0


@pytest.mark.bad_input
def test_metric_counts_a_repeated_clip_once():
    """DDP samplers pad with repeated clips: a clip id seen twice is one clip."""
    metric = ASCAccuracy()
    metric.update(*_unzip(CASE), _names(CASE))
    metric.update(*_unzip(CASE[:3]), _names(CASE[:3]))  # the first three again, as padding would repeat them
    _check(metric.compute())
    assert metric.confusion_matrix().sum() == 10


def test_official_metric_is_not_micro_when_classes_are_unbalanced():
    preds = torch.tensor([0] * 9 + [0])
    targets = torch.tensor([0] * 9 + [1])
    result = asc_accuracies(preds, targets, ["a"] * 10)
    assert result["micro_acc"] == pytest.approx(0.9) and result["macro_acc"] == pytest.approx(0.5)


@pytest.mark.bad_input
def test_unknown_device_is_an_error():
    with pytest.raises(ValueError, match="s7"):
        asc_accuracies(torch.tensor([0]), torch.tensor([0]), ["s7"])


def test_class_names_are_alphabetical():
    assert list(SCENE_CLASSES) == sorted(SCENE_CLASSES) and len(SCENE_CLASSES) == 10


def test_device_group_presets():
    from metrics.asc import device_groups

    assert device_groups(DEVICES) == {"a": "real", "b": "real", "c": "real", "s1": "seen", "s2": "seen",
                                      "s3": "seen", "s4": "unseen", "s5": "unseen", "s6": "unseen"}
    custom = ("phoneA", "phoneB", "mic3")
    assert device_groups(custom, None, ["phoneA", "phoneB"]) == {
        "phoneA": "seen_devices", "phoneB": "seen_devices", "mic3": "unseen_devices"}
    assert device_groups(custom) == {}  # from_training without training devices: no groups
    assert device_groups(DEVICES, "from_training", ["a", "b"])["s1"] == "unseen_devices"


def test_custom_vocabulary_and_training_groups_by_hand():
    classes, devices = ("forest_day", "harbour"), ("phoneA", "phoneB", "mic3")
    groups = {"phoneA": "seen_devices", "phoneB": "seen_devices", "mic3": "unseen_devices"}
    metric = ASCAccuracy(classes, devices, groups)
    rows = [("phoneA", 0, 0), ("phoneB", 0, 1), ("phoneB", 1, 1), ("mic3", 0, 0), ("mic3", 1, 0), ("mic3", 1, 0)]
    metric.update(*_unzip(rows), _names(rows))
    result = metric.compute()
    assert result["acc/forest_day"] == pytest.approx(2 / 3) and result["acc/harbour"] == pytest.approx(1 / 3)
    assert result["acc/seen_devices"] == pytest.approx(2 / 3) and result["acc/unseen_devices"] == pytest.approx(1 / 3)
    assert result["acc/mic3"] == pytest.approx(1 / 3) and result["acc/phoneA"] == 1.0
    assert not any(key in result for key in ("acc/0", "acc/real", "acc/unseen"))


@pytest.mark.bad_input
def test_a_class_and_a_device_of_one_name_is_an_error():
    with pytest.raises(ValueError, match=r"metric name clash: 'acc/bus' would be both the scene class 'bus' and the "
                                         r"device 'bus'"):
        ASCAccuracy(("bus", "park"), ("bus", "phone"), {})
