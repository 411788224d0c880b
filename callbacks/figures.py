"""Figures of evaluation results, drawn headless with matplotlib's object-oriented API (no pyplot, no backend switch).

Every builder returns a :class:`~matplotlib.figure.Figure` that carries its names: class labels on the axes, axis
titles, counts and rates as text; :func:`figure_to_image` turns one into the RGB array that TensorBoard's
``add_image`` takes (``dataformats="HWC"``). Figures are sized by their content at a small DPI so that rendering
stays cheap (0.1-0.4 s each for 10 scenes, 3 SED clips or 40 AP bars on a busy 2-core CPU).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 80
# Matrices larger than this get no per-cell text (it would be unreadable), only the colour of the row rate.
MAX_ANNOTATED_CLASSES = 30
_GROUP_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:grey")


def figure_to_image(figure: Figure) -> np.ndarray:
    """Renders ``figure`` -> (H, W, 3) uint8 RGB array."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def log_figure(trainer: pl.Trainer, tag: str, figure: Figure) -> np.ndarray:
    """Renders ``figure`` and adds it as image ``tag`` at the current step to every logger that takes images."""
    image = figure_to_image(figure)
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image(tag, image, global_step=trainer.global_step, dataformats="HWC")
    return image


def class_names_of(trainer: pl.Trainer, count: int, fallback: Optional[Sequence[str]] = None) -> list:
    """The datamodule's ``class_names`` when it has ``count`` of them, else ``fallback``, else the indices."""
    names = getattr(getattr(trainer, "datamodule", None), "class_names", None)
    for candidate in (names, fallback):
        if candidate is not None and len(candidate) == count:
            return [str(n) for n in candidate]
    return [str(i) for i in range(count)]


def confusion_figure(counts: np.ndarray, class_names: Sequence[str], title: str = "confusion matrix",
                     dpi: int = DPI) -> Figure:
    """Confusion matrix: rows true classes, columns predictions, colour = row rate; cells show count and row %
    (a bare 0 where no clip fell).

    Args:
        counts: (C, C) clip counts [true, predicted].
        class_names: The C class names in label-index order.
        title: Heading; the overall accuracy is appended.
        dpi: Resolution.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.shape[0]
    if counts.shape != (n, n) or len(class_names) != n:
        raise ValueError(f"confusion_figure: counts {counts.shape} do not match {len(class_names)} class names")
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    correct, total = int(np.trace(counts)), int(counts.sum())
    side = 2.5 + 0.6 * n
    figure = Figure(figsize=(side + 1.0, side), dpi=dpi, layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    if n <= MAX_ANNOTATED_CLASSES:
        for t in range(n):
            for p in range(n):
                text = f"{counts[t, p]}\n{100 * rates[t, p]:.0f}%" if counts[t, p] else "0"  # no clutter
                ax.text(p, t, text, ha="center", va="center", fontsize=7,
                        color="white" if rates[t, p] > 0.5 else "black")
    ax.set_xticks(range(n), list(class_names), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = f"{100 * correct / total:.1f}%" if total else "n/a"
    ax.set_title(f"{title}: accuracy {accuracy} ({correct}/{total} clips)")
    return figure


def device_accuracy_figure(correct: Sequence[int], counts: Sequence[int], device_names: Sequence[str],
                           groups: Optional[Mapping[str, str]] = None, title: str = "accuracy per device",
                           dpi: int = DPI) -> Figure:
    """Bars of the accuracy of each recording device, labelled with the rate and the clip count.

    Args:
        correct: Correctly classified clips per device.
        counts: Clips per device; devices without clips get no bar and the label "no clips".
        device_names: The device names, in the order of ``correct`` and ``counts``.
        groups: Device -> group name (e.g. real / seen / unseen); bars are coloured by group, with a legend.
        title: Heading; the pooled accuracy is appended and drawn as a dashed line.
        dpi: Resolution.
    """
    correct, counts = np.asarray(correct, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    if not len(correct) == len(counts) == len(device_names):
        raise ValueError(f"device_accuracy_figure: {len(correct)} correct, {len(counts)} counts, "
                         f"{len(device_names)} device names")
    accuracy = 100.0 * np.divide(correct, counts, out=np.zeros(len(counts)), where=counts > 0)
    names = [groups.get(d, "other") for d in device_names] if groups else ["all"] * len(device_names)
    colours = {g: _GROUP_COLOURS[i % len(_GROUP_COLOURS)] for i, g in enumerate(dict.fromkeys(names))}
    figure = Figure(figsize=(2.0 + 0.7 * len(device_names), 3.6), dpi=dpi, layout="constrained")
    ax = figure.add_subplot()
    x = np.arange(len(device_names))
    for group, colour in colours.items():
        rows = [i for i, g in enumerate(names) if g == group and counts[i] > 0]
        if rows:
            ax.bar(x[rows], accuracy[rows], color=colour, label=group if groups else None)
    for i in x:
        label = f"{accuracy[i]:.1f}%\n(n={counts[i]})" if counts[i] else "no clips"
        ax.text(i, (accuracy[i] if counts[i] else 0.0) + 1.5, label, ha="center", va="bottom", fontsize=7)
    total = int(counts.sum())
    pooled = 100.0 * correct.sum() / total if total else float("nan")
    if total:
        ax.axhline(pooled, color="black", linestyle="--", linewidth=0.8, label=f"all devices {pooled:.1f}%")
    ax.set_xticks(x, list(device_names))
    ax.set_ylim(0, 115)
    ax.set_xlabel("recording device")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{title}: {pooled:.1f}% over {total} clips" if total else title)
    ax.legend(loc="upper right", fontsize=7, ncol=len(colours) + 1)
    return figure


def class_ap_figure(ap: Sequence[float], class_names: Sequence[str], title: str = "average precision per class",
                    show: int = 20, dpi: int = DPI) -> Figure:
    """Horizontal bars of the AP of each class, best on top; with more than ``2 * show`` classes only the best and
    the worst ``show`` are drawn. Classes whose AP is NaN (no positive clip) are left out and counted in the title.

    Args:
        ap: Average precision per class (NaN where undefined).
        class_names: The class names, in the order of ``ap``.
        title: Heading; the mean AP over the defined classes is appended.
        show: How many of the best and of the worst classes to draw when there are too many for all.
        dpi: Resolution.
    """
    ap = np.asarray(ap, dtype=np.float64)
    if len(ap) != len(class_names):
        raise ValueError(f"class_ap_figure: {len(ap)} AP values, {len(class_names)} class names")
    defined = np.flatnonzero(~np.isnan(ap))
    order = defined[np.argsort(-ap[defined], kind="stable")]
    hidden = 0
    if len(order) > 2 * show:
        hidden = len(order) - 2 * show
        order = np.concatenate([order[:show], order[-show:]])
    rows = len(order) + (1 if hidden else 0)
    figure = Figure(figsize=(6.5, 1.2 + 0.22 * max(rows, 1)), dpi=dpi, layout="constrained")
    ax = figure.add_subplot()
    # Row positions from the top; a blank row marks the classes left out between the best and the worst.
    positions = [i if not hidden or i < show else i + 1 for i in range(len(order))]
    ax.barh(positions, ap[order], color="tab:blue")
    for y, c in zip(positions, order):
        ax.text(ap[c] + 0.01, y, f"{ap[c]:.3f}", va="center", fontsize=7)
    if hidden:
        ax.text(0.5, show, f"... {hidden} classes not shown ...", ha="center", va="center", fontsize=7)
    ax.set_yticks(positions, [class_names[c] for c in order], fontsize=7)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("average precision")
    mean = f"mAP {ap[defined].mean():.3f} over {len(defined)} classes" if len(defined) else "no class has positives"
    undefined = len(ap) - len(defined)
    ax.set_title(f"{title}: {mean}" + (f" ({undefined} without positives left out)" if undefined else ""),
                 fontsize=9)
    return figure


@dataclass
class ActivityClip:
    """One clip for :func:`sed_activity_figure`.

    Attributes:
        name: Clip id shown as the heading.
        mel: (mel bins, mel frames) log-mel spectrogram spanning the clip.
        duration: Clip length in seconds (the extent of ``mel``).
        target: (C, T) frame targets in [0, 1].
        probs: (C, T) predicted frame probabilities.
        frame_hop: Seconds per frame of ``target`` and ``probs`` (frame i covers [i, i + 1) * frame_hop).
    """

    name: str
    mel: np.ndarray
    duration: float
    target: np.ndarray
    probs: np.ndarray
    frame_hop: float


def shown_classes(clip: ActivityClip, threshold: float, limit: int = 8) -> np.ndarray:
    """Indices of the classes worth a row: present in the target or predicted above ``threshold`` (at most
    ``limit``, targets first, then by peak score); the top-scoring class when there is none."""
    present = np.asarray(clip.target).max(axis=1) > 0
    peak = np.asarray(clip.probs).max(axis=1)
    chosen = np.flatnonzero(present | (peak > threshold))
    if chosen.size == 0:
        return np.array([int(np.argmax(peak))])
    ranked = chosen[np.lexsort((-peak[chosen], ~present[chosen]))][:limit]
    return np.sort(ranked)


def sed_activity_figure(clips: Sequence[ActivityClip], class_names: Sequence[str], threshold: float = 0.5,
                        dpi: int = DPI) -> Figure:
    """Per clip, the mel spectrogram above one row per class: the target activity as a shaded band, the predicted
    probability as a line and the decision threshold as a dashed line; time in seconds on a shared axis.

    Args:
        clips: The clips to draw, one above the other.
        class_names: Names of the C classes of ``target`` and ``probs``.
        threshold: Decision threshold (a frame is active when its probability exceeds it).
        dpi: Resolution.
    """
    if not clips:
        raise ValueError("sed_activity_figure: no clips to draw")
    rows = [shown_classes(clip, threshold) for clip in clips]
    heights = [h for r in rows for h in (1.4, 0.4 + 0.4 * len(r))]
    figure = Figure(figsize=(8.0, 0.6 + sum(heights)), dpi=dpi, layout="constrained")
    axes = figure.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights})
    for k, (clip, shown) in enumerate(zip(clips, rows)):
        spec_ax, act_ax = axes[2 * k], axes[2 * k + 1]
        act_ax.sharex(spec_ax)
        spec_ax.imshow(clip.mel, origin="lower", aspect="auto", cmap="magma",
                       extent=(0.0, clip.duration, 0, clip.mel.shape[0]))
        spec_ax.set_ylabel("mel bin")
        spec_ax.set_title(clip.name, fontsize=9)
        spec_ax.tick_params(labelbottom=False)
        frames = clip.target.shape[1]
        edges = np.arange(frames + 1) * clip.frame_hop
        for r, c in enumerate(shown):
            base = len(shown) - 1 - r  # first class on top
            target = np.append(clip.target[c], clip.target[c, -1])
            probs = np.append(clip.probs[c], clip.probs[c, -1])
            act_ax.fill_between(edges, base, base + 0.9 * target, step="post", color="tab:green", alpha=0.35,
                                linewidth=0, label="target" if r == 0 else None)
            act_ax.step(edges, base + 0.9 * probs, where="post", color="tab:blue", linewidth=1.0,
                        label="prediction" if r == 0 else None)
            act_ax.hlines(base + 0.9 * threshold, 0.0, edges[-1], colors="tab:red", linestyles="dashed",
                          linewidth=0.8, label=f"threshold {threshold:g}" if r == 0 else None)
        act_ax.set_yticks([len(shown) - 1 - r + 0.45 for r in range(len(shown))],
                          [class_names[c] for c in shown], fontsize=7)
        act_ax.set_ylim(-0.1, len(shown))
        act_ax.set_xlim(0.0, max(clip.duration, edges[-1]))
        act_ax.set_xlabel("time (s)")
    figure.legend(*axes[1].get_legend_handles_labels(), loc="outside upper right", fontsize=7, ncol=3)
    return figure
