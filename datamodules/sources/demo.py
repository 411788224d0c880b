"""A small synthetic world for demos and tests, in the real on-disk layouts, packed with the real packer.

``sonolab demo-data --seed 0 --out DIR`` writes (about 10-20 s on two cores)::

    DIR/events/audio/{train,val,test}/*.wav        4 s, 32 kHz: 0-3 of 8 synthetic event classes over scene noise
    DIR/events/metadata/{split}_strong.tsv         filename onset offset event_label (DESED; empty: no events)
    DIR/events/metadata/{split}_weak.tsv           filename event_labels
    DIR/events/metadata/{split}_durations.tsv      filename duration
    DIR/events/metadata/{split}_captions.tsv       filename caption (2-3 rows per clip)
    DIR/events/classes.txt
    DIR/events_{train,val,test}.h5                 mp3, 32 kHz, weak targets, strong events, captions
    DIR/audioset_strong/                           AudioSet-strong look-alike of the event clips (demo_strong.py)
    DIR/scenes/audio/<scene>-<city>-<location>-<segment>-<snippet>-<device>.wav   1 s, 44.1 kHz (TAU22 layout)
    DIR/scenes/meta.csv, split{5,10,25,50,100}.csv, test.csv
    DIR/scenes_{train,test}.h5                     pcm16, 44.1 kHz, scene/device/city labels (train = split100)
    DIR/dirs/*.wav                                 synthetic device impulse responses (44.1 and 48 kHz)

Everything is a function of the seed: every clip has its own random generator seeded by (seed, kind, index),
so a rerun with the same seed writes identical tables and audio.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
import soundfile as sf

from datamodules.sources import synth
from datamodules.format.label_tables import read_class_list, read_label_tables
from datamodules.format.pack import pack
from datamodules.sources.demo_strong import write_audioset_strong

EVENT_SR = 32000
EVENT_SECONDS = 4.0
SCENE_SR = 44100
SPLITS = ("train", "val", "test")
CITIES = ("barcelona", "helsinki", "lisbon", "london", "lyon", "milan", "paris", "prague", "stockholm", "vienna")
SEEN_DEVICES = ("a", "b", "c", "s1", "s2", "s3")
UNSEEN_DEVICES = ("s4", "s5", "s6")  # as in TAU22: only in the test split
SPLIT_PERCENTS = (5, 10, 25, 50, 100)
_MARKER = ".sonolab-demo"

# Caption clauses per event class (several wordings so that a clip's captions differ).
_CLAUSES: Dict[str, Tuple[str, ...]] = {
    "am_noise": ("noise pulses rhythmically", "a pulsing hiss swells and fades"),
    "bell": ("a bell rings", "a bell chimes and slowly fades"),
    "chirp_down": ("a chirp falls", "a tone sweeps downward"),
    "chirp_up": ("a chirp rises", "a tone sweeps upward"),
    "click_train": ("something clicks rapidly", "a fast train of clicks rattles"),
    "engine_hum": ("an engine hums", "a low engine drones"),
    "noise_burst": ("a short burst of noise hisses", "a sudden noise burst pops"),
    "tone_vibrato": ("a wavering tone sings", "a tone warbles with vibrato"),
}


@dataclass
class DemoSummary:
    """What :func:`generate` wrote.

    Attributes:
        out_dir: The demo folder.
        counts: Number of clips/files per part (``events_train``, ``scenes_test``, ``dirs``, ...).
        h5_files: Packed files by part name.
        seconds: Wall time.
    """

    out_dir: str
    counts: Dict[str, int] = field(default_factory=dict)
    h5_files: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def text(self) -> str:
        """A few lines for people."""
        lines = [f"demo data in {self.out_dir} ({self.seconds:.1f} s):"]
        for key, n in self.counts.items():
            h5 = self.h5_files.get(key)
            lines.append(f"  {key:<14} {n:4d}" + (f"  -> {os.path.relpath(h5, self.out_dir)}" if h5 else ""))
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Event clips (tagging, SED, captions)
# ---------------------------------------------------------------------------------------------------------------
def _caption(events: Sequence[Tuple[float, float, str]], background: str, rng: np.random.Generator) -> str:
    scene = background.replace("_", " ")
    if not events:
        return str(rng.choice([f"only {scene} ambience, nothing stands out", f"quiet background noise of a {scene}"]))
    clauses = [str(rng.choice(_CLAUSES[label])) for _, _, label in events]
    if len(clauses) == 1:
        text = clauses[0]
    elif len(clauses) == 2:
        overlap = events[1][0] < events[0][1]
        text = f"{clauses[0]} while {clauses[1]}" if overlap else f"{clauses[0]}, then {clauses[1]}"
    else:
        text = f"{clauses[0]}, {clauses[1]} and then {clauses[2]}"
    return text + (f" in a {scene}" if rng.random() < 0.4 else "")


def event_clip(seed: int, split: str, index: int) -> Tuple[np.ndarray, List[Tuple[float, float, str]], List[str]]:
    """One event clip: (waveform, events (onset, offset, label) sorted by onset, captions).

    Args:
        seed: World seed.
        split: ``train``, ``val`` or ``test``.
        index: Clip number within the split.
    """
    rng = np.random.default_rng([seed, 1, SPLITS.index(split), index])
    n = int(EVENT_SECONDS * EVENT_SR)
    background = str(rng.choice(synth.SCENES))
    wave = synth.scene_texture(background, rng, EVENT_SR, n) * rng.uniform(0.01, 0.03)
    noise_rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
    n_events = int(rng.choice(4, p=[0.1, 0.35, 0.35, 0.2]))
    events = []
    for label in rng.choice(synth.EVENT_CLASSES, n_events, replace=False):
        label = str(label)
        lo, hi = synth.EVENT_DURATIONS[label]
        duration = round(float(rng.uniform(lo, hi)), 3)
        onset = round(float(rng.uniform(0.0, EVENT_SECONDS - duration)), 3)
        sound = synth.event_sound(label, rng, EVENT_SR, duration)
        synth.add_at_snr(wave, sound, int(round(onset * EVENT_SR)), float(rng.uniform(6.0, 20.0)), noise_rms)
        events.append((onset, round(onset + duration, 3), label))
    events.sort()
    peak = float(np.max(np.abs(wave)))
    if peak > 0.9:  # keep the 16-bit files unclipped
        wave *= 0.9 / peak
    n_captions = int(rng.integers(2, 4))
    captions: List[str] = []
    for _ in range(20):  # draw until the wordings differ (few tries suffice)
        text = _caption(events, background, rng)
        if text not in captions:
            captions.append(text)
        if len(captions) == n_captions:
            break
    return wave.astype(np.float32), events, captions


def _write_event_clip(task: Tuple[int, str, int, str]) -> Tuple[List[Tuple[float, float, str]], List[str]]:
    seed, split, index, path = task
    wave, events, captions = event_clip(seed, split, index)
    sf.write(path, wave, EVENT_SR, subtype="PCM_16")
    return events, captions


def _write_tsv(path: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")


def _write_events(root: str, seed: int, counts: Sequence[int], pool) -> Dict[str, int]:
    """Writes the event clips and their DESED-style tables; returns clips per split."""
    os.makedirs(os.path.join(root, "metadata"), exist_ok=True)
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("\n".join(synth.EVENT_CLASSES) + "\n")
    written = {}
    for split, count in zip(SPLITS, counts):
        audio_dir = os.path.join(root, "audio", split)
        os.makedirs(audio_dir, exist_ok=True)
        names = [f"{split}_{i:04d}.wav" for i in range(count)]
        tasks = [(seed, split, i, os.path.join(audio_dir, name)) for i, name in enumerate(names)]
        results = pool.map(_write_event_clip, tasks, chunksize=8) if pool else list(map(_write_event_clip, tasks))
        strong, weak, captions = [], [], []
        for name, (events, caps) in zip(names, results):
            rows = [(name, f"{on:.3f}", f"{off:.3f}", label) for on, off, label in events]
            strong.extend(rows or [(name, "", "", "")])
            weak.append((name, ",".join(sorted({e[2] for e in events}))))
            captions.extend((name, c) for c in caps)
        meta = os.path.join(root, "metadata")
        _write_tsv(os.path.join(meta, f"{split}_strong.tsv"), ("filename", "onset", "offset", "event_label"), strong)
        _write_tsv(os.path.join(meta, f"{split}_weak.tsv"), ("filename", "event_labels"), weak)
        durations = [(n, f"{EVENT_SECONDS:.3f}") for n in names]
        _write_tsv(os.path.join(meta, f"{split}_durations.tsv"), ("filename", "duration"), durations)
        _write_tsv(os.path.join(meta, f"{split}_captions.tsv"), ("filename", "caption"), captions)
        written[split] = count
    return written


# ---------------------------------------------------------------------------------------------------------------
# Scene clips (acoustic scene classification, TAU Urban Acoustic Scenes 2022 Mobile layout)
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Segment:
    """One recording: ``snippets`` consecutive 1 s clips of one scene, place and device."""

    scene: str
    city: str
    location: int
    segment: int
    device: str
    test: bool

    def filenames(self, snippets: int) -> List[str]:
        stem = f"{self.scene}-{self.city}-{self.location}-{self.segment}"
        return [f"audio/{stem}-{k}-{self.device}.wav" for k in range(snippets)]


def _plan_segments(seed: int, train_per_scene: int, test_per_scene: int) -> List[_Segment]:
    """Recordings per scene: train ones by devices a, b, c, s1-s3; test ones also by the unseen s4-s6."""
    rng = np.random.default_rng([seed, 3])
    coloured = SEEN_DEVICES[1:]
    segments = []
    for si, scene in enumerate(synth.SCENES):
        for j in range(train_per_scene + test_per_scene):
            test = j >= train_per_scene
            if not test:  # device a dominates training, as in TAU
                device = "a" if j < 2 else coloured[(si * max(1, train_per_scene - 2) + j - 2) % len(coloured)]
            else:
                k = j - train_per_scene
                pool = SEEN_DEVICES if k % 2 == 0 else UNSEEN_DEVICES
                device = pool[(si + k // 2) % len(pool)]
            city = str(rng.choice(CITIES))
            segments.append(_Segment(scene, city, 1000 + 10 * si + j, 40000 + 10 * j, device, test))
    return segments


def _write_segment(task: Tuple[int, int, _Segment, int, str]) -> None:
    seed, index, seg, snippets, root = task
    rng = np.random.default_rng([seed, 2, index])
    n = SCENE_SR * snippets
    clean = synth.scene_texture(seg.scene, rng, SCENE_SR, n) * rng.uniform(0.05, 0.12)
    wave = synth.device_model(seg.device, seed).apply(clean, rng)
    peak = float(np.max(np.abs(wave)))
    if peak > 0.95:
        wave *= 0.95 / peak
    for k, name in enumerate(seg.filenames(snippets)):
        sf.write(os.path.join(root, name), wave[k * SCENE_SR : (k + 1) * SCENE_SR], SCENE_SR, subtype="PCM_16")


def _nested_splits(segments: List[_Segment], seed: int) -> Dict[int, List[_Segment]]:
    """Nested subsets of the train recordings; the order interleaves scenes so small splits cover many of them."""
    rng = np.random.default_rng([seed, 4])
    per_scene = [[s for s in segments if s.scene == scene and not s.test] for scene in synth.SCENES]
    for group in per_scene:
        rng.shuffle(group)
    order = []
    for j in range(max(len(g) for g in per_scene)):
        layer = [g[j] for g in per_scene if j < len(g)]
        rng.shuffle(layer)
        order.extend(layer)
    return {p: order[: max(1, round(len(order) * p / 100))] for p in SPLIT_PERCENTS}


def _write_scenes(
    root: str, seed: int, train_per_scene: int, test_per_scene: int, snippets: int, pool
) -> Dict[str, int]:
    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    segments = _plan_segments(seed, train_per_scene, test_per_scene)
    tasks = [(seed, i, seg, snippets, root) for i, seg in enumerate(segments)]
    if pool:
        pool.map(_write_segment, tasks, chunksize=2)
    else:
        list(map(_write_segment, tasks))
    rows = sorted(
        (name, seg.scene, f"{seg.city}-{seg.location}", seg.device)
        for seg in segments
        for name in seg.filenames(snippets)
    )
    _write_tsv(os.path.join(root, "meta.csv"), ("filename", "scene_label", "identifier", "source_label"), rows)
    scene_of = {r[0]: r[1] for r in rows}
    for percent, chosen in _nested_splits(segments, seed).items():
        names = sorted(n for seg in chosen for n in seg.filenames(snippets))
        split_rows = [(n, scene_of[n]) for n in names]
        _write_tsv(os.path.join(root, f"split{percent}.csv"), ("filename", "scene_label"), split_rows)
    test = sorted(n for seg in segments if seg.test for n in seg.filenames(snippets))
    _write_tsv(os.path.join(root, "test.csv"), ("filename",), [(n,) for n in test])
    return {"train": len(rows) - len(test), "test": len(test)}


# ---------------------------------------------------------------------------------------------------------------
# Device impulse responses
# ---------------------------------------------------------------------------------------------------------------
def _write_dirs(root: str, seed: int, count: int) -> int:
    os.makedirs(root, exist_ok=True)
    for k in range(count):
        rng = np.random.default_rng([seed, 5, k])
        rate = 48000 if k % 3 == 2 else 44100  # mostly 44.1 kHz, some 48 kHz, as in MicIRP
        ir = synth.impulse_response(rng, rate, float(rng.uniform(0.3, 0.5)))
        sf.write(os.path.join(root, f"ir_{k:02d}_{rate // 1000}k.wav"), ir, rate, subtype="PCM_24")
    return count


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------
def _prepare(out_dir: str) -> None:
    """Creates ``out_dir``, or clears an earlier demo there; refuses to touch any other non-empty folder."""
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not os.path.isfile(os.path.join(out_dir, _MARKER)):
            raise FileExistsError(f"{out_dir!r} is not empty and holds no earlier demo data; choose another --out")
        for entry in os.listdir(out_dir):
            full = os.path.join(out_dir, entry)
            shutil.rmtree(full) if os.path.isdir(full) and not os.path.islink(full) else os.remove(full)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, _MARKER), "w") as f:
        f.write("written by `sonolab demo-data`; the whole folder is replaced by the next run\n")


def generate(
    out_dir: str,
    seed: int = 0,
    *,
    event_clips: Tuple[int, int, int] = (240, 60, 60),
    scene_recordings: Tuple[int, int] = (4, 2),
    snippets: int = 5,
    n_dirs: int = 6,
    workers: int = 2,
    progress: bool = False,
) -> DemoSummary:
    """Writes the demo world of ``seed`` into ``out_dir`` and packs it.

    Args:
        out_dir: Target folder (created; an earlier demo there is replaced; any other non-empty folder is refused).
        seed: World seed.
        event_clips: Event clips in train, val, test.
        scene_recordings: Recordings per scene in train and test (each gives ``snippets`` 1 s clips).
        snippets: 1 s clips per recording.
        n_dirs: Impulse responses.
        workers: Processes for synthesis and packing (0: all in this process).
        progress: Progress bars while packing.

    Returns:
        A :class:`DemoSummary`.
    """
    start = time.monotonic()
    out_dir = os.path.abspath(out_dir)
    _prepare(out_dir)
    summary = DemoSummary(out_dir)
    pool = None
    if workers > 0:
        import multiprocessing

        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        pool = ctx.Pool(workers)
    try:
        event_counts = _write_events(os.path.join(out_dir, "events"), seed, event_clips, pool)
        scene_counts = _write_scenes(os.path.join(out_dir, "scenes"), seed, *scene_recordings, snippets, pool)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    summary.counts["dirs"] = _write_dirs(os.path.join(out_dir, "dirs"), seed, n_dirs)

    events = os.path.join(out_dir, "events")
    classes = read_class_list(os.path.join(events, "classes.txt"))
    for split in SPLITS:
        if not event_counts[split]:
            continue
        tables = [os.path.join(events, "metadata", f"{split}_{kind}.tsv") for kind in ("strong", "weak", "captions")]
        labels = read_label_tables(tables, os.path.join(events, "audio", split), classes=classes)
        out = os.path.join(out_dir, f"events_{split}.h5")
        _pack(labels, out, "mp3", EVENT_SR, workers, progress)
        summary.counts[f"events_{split}"] = event_counts[split]
        summary.h5_files[f"events_{split}"] = out
    strong = write_audioset_strong(out_dir, workers, progress)
    summary.counts.update(strong.counts)
    summary.h5_files.update(strong.h5_files)

    scenes = os.path.join(out_dir, "scenes")
    for part, subset in (("train", "split100.csv"), ("test", "test.csv")):
        labels = read_label_tables([os.path.join(scenes, "meta.csv")], scenes, subset=os.path.join(scenes, subset))
        out = os.path.join(out_dir, f"scenes_{part}.h5")
        _pack(labels, out, "pcm16", SCENE_SR, workers, progress)
        summary.counts[f"scenes_{part}"] = scene_counts[part]
        summary.h5_files[f"scenes_{part}"] = out
    summary.seconds = time.monotonic() - start
    return summary


def _pack(labels, out: str, codec: str, sample_rate: int, workers: int, progress: bool) -> None:
    report = pack(
        labels.items,
        out,
        codec=codec,
        sample_rate=sample_rate,
        class_names=labels.class_names,
        scene_names=labels.scene_names,
        device_names=labels.device_names,
        city_names=labels.city_names,
        workers=workers,
        progress=progress,
    )
    if report.skipped:  # our own files: any failure is a bug
        raise RuntimeError(f"demo packing skipped clips: {report.errors[:3]}")
