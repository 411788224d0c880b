"""The figure builders: each figure carries its class names, axis titles and numbers, and renders headless."""
import numpy as np
import pytest
from matplotlib.collections import LineCollection

from callbacks.figures import (ActivityClip, class_ap_figure, confusion_figure, device_accuracy_figure,
                               figure_to_image, sed_activity_figure, shown_classes)


def tick_labels(axis):
    return [label.get_text() for label in axis.get_ticklabels()]


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_confusion_figure_names_classes_and_shows_counts_with_row_percentages():
    figure = confusion_figure(np.array([[3, 1, 0], [0, 2, 2], [0, 0, 0]]), ["airport", "bus", "tram"], "val confusion")
    ax = figure.axes[0]
    assert tick_labels(ax.xaxis) == ["airport", "bus", "tram"] and tick_labels(ax.yaxis) == ["airport", "bus", "tram"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert ax.get_title() == "val confusion: accuracy 62.5% (5/8 clips)"
    cells = texts(ax)  # row by row; empty cells show a bare zero
    assert cells == ["3\n75%", "1\n25%", "0", "0", "2\n50%", "2\n50%", "0", "0", "0"]
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.75, 0.25, 0], [0, 0.5, 0.5], [0, 0, 0]])


def test_confusion_figure_rejects_names_that_do_not_match():
    with pytest.raises(ValueError, match=r"counts \(2, 2\) do not match 3 class names"):
        confusion_figure(np.eye(2), ["a", "b", "c"])


def test_device_accuracy_figure_labels_devices_rates_and_counts():
    figure = device_accuracy_figure([8, 1, 0], [10, 4, 0], ["a", "b", "s4"], {"a": "real", "b": "real", "s4": "unseen"},
                                    "val accuracy per device")
    ax = figure.axes[0]
    assert tick_labels(ax.xaxis) == ["a", "b", "s4"]
    assert ax.get_xlabel() == "recording device" and ax.get_ylabel() == "accuracy (%)"
    assert ax.get_title() == "val accuracy per device: 64.3% over 14 clips"
    assert texts(ax) == ["80.0%\n(n=10)", "25.0%\n(n=4)", "no clips"]
    assert [round(bar.get_height(), 6) for bar in ax.patches] == [80.0, 25.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["all devices 64.3%", "real"]


def test_class_ap_figure_sorts_and_shows_the_best_and_worst_of_many_classes():
    ap = np.linspace(0.01, 0.5, 50)
    ap[7] = np.nan
    names = [f"class_{i}" for i in range(50)]
    ax = class_ap_figure(ap, names, "val AP", show=3).axes[0]
    assert tick_labels(ax.yaxis) == ["class_49", "class_48", "class_47", "class_2", "class_1", "class_0"]
    assert "... 43 classes not shown ..." in texts(ax)
    assert ax.get_xlabel() == "average precision"
    assert ax.get_title() == f"val AP: mAP {np.nanmean(ap):.3f} over 49 classes (1 without positives left out)"
    few = class_ap_figure([0.2, 0.9], ["dog", "cat"], "test AP").axes[0]
    assert tick_labels(few.yaxis) == ["cat", "dog"] and texts(few) == ["0.900", "0.200"]


def _clip():
    target, probs = np.zeros((4, 50)), np.full((4, 50), 0.1)
    target[1, 10:20] = 1
    probs[1, 12:22] = 0.9
    probs[3, 30:35] = 0.7  # a false alarm above the threshold
    return ActivityClip("clip_7.wav", np.random.default_rng(0).random((16, 100)), 5.0, target, probs, 0.1)


def test_sed_activity_figure_names_classes_time_axis_and_threshold():
    figure = sed_activity_figure([_clip()], ["alarm", "dog", "cat", "speech"], threshold=0.5)
    spec_ax, act_ax = figure.axes
    assert spec_ax.get_title() == "clip_7.wav" and spec_ax.get_ylabel() == "mel bin"
    assert tick_labels(act_ax.yaxis) == ["dog", "speech"]  # only classes in the target or above the threshold
    assert act_ax.get_xlabel() == "time (s)" and act_ax.get_xlim() == (0.0, 5.0)
    assert spec_ax.images[0].get_extent() == [0.0, 5.0, 0, 16]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["target", "prediction", "threshold 0.5"]
    # one dashed threshold line per class row, at 0.9 x 0.5 above the row's base (rows 1 and 0 from the top)
    dashed = [c for c in act_ax.collections if isinstance(c, LineCollection) and c.get_linestyle()[0][1]]
    assert [[tuple(p) for p in c.get_segments()[0]] for c in dashed] == [[(0.0, 1.45), (5.0, 1.45)],
                                                                          [(0.0, 0.45), (5.0, 0.45)]]


def test_shown_classes_fall_back_to_the_top_class_and_respect_the_limit():
    clip = _clip()
    assert shown_classes(clip, 0.5).tolist() == [1, 3]
    assert shown_classes(clip, 0.5, limit=1).tolist() == [1]  # classes of the target come first
    silent = ActivityClip("x", clip.mel, 5.0, np.zeros((4, 50)), np.tile([[0.1], [0.2], [0.4], [0.3]], 50), 0.1)
    assert shown_classes(silent, 0.5).tolist() == [2]


def test_figure_to_image_renders_rgb_at_the_figure_size():
    figure = confusion_figure(np.eye(2, dtype=int), ["a", "b"], dpi=50)
    image = figure_to_image(figure)
    width, height = figure.get_size_inches() * 50
    assert image.dtype == np.uint8 and image.shape == (round(height), round(width), 3)
    assert image.min() < 100 and image.max() == 255  # dark text and cells on a white background
