"""Device impulse responses (MicIRP, micirp.blogspot.com, or any folder of IRs) -> the folder ``dir_dir`` reads.

DIR augmentation (:mod:`datamodules.augment.dir`) loads every ``.wav``/``.flac`` under ``dir_dir`` (recursively,
sorted by path), mixes it to mono by the channel mean, resamples it to the rate the module works at (the stored
clips' rate, 44.1 kHz for TAU22) and uses it as is: no trimming, no normalisation (CP-JKU's recipe, specs/asc.md).
The packer writes exactly that, once, so that training reads ready responses::

    OUT/<relative path of the source, extension .wav>   mono float32 WAV at ``sample_rate``, the samples the DIR
                                                          loader would have computed from the source file
    OUT/irs.tsv      one row per packed response: name, source, source_rate, sample_rate, samples, seconds, peak
    OUT/errors.tsv   filename, kind, message: the skipped sources (only when there are any)

Float WAV keeps the samples bit-exact (no 16-bit rounding, no clipping of peaks above 1), so loading ``OUT`` at
``sample_rate`` gives the same tensors as loading the sources; the folder structure and stems are kept, so the
responses keep their order (the index drawn by the augmentation means the same response).

Skipped, each with one line in ``errors.tsv``: ``unreadable`` files, ``empty`` ones (no samples), ``silent`` ones
(peak below :data:`SILENCE_PEAK`), ``too_long`` ones (longer than ``max_seconds``: MicIRP's are 0.34-0.5 s, a file of
seconds is a recording, not a device response) and ``duplicate`` ones (another source has the same output name,
as ``x.wav`` and ``x.flac``: the ``.wav`` is kept). Reruns are idempotent: a response whose file already holds the
same samples is not rewritten, files written by an earlier pack whose source is gone or now skipped are removed, and a
``.wav``/``.flac`` in ``OUT`` that no pack wrote is an error (the augmentation would load it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from datamodules.augment.dir import IR_EXTENSIONS
from datamodules.format.audio_io import AudioDecodeError, read_audio_file, resample
from datamodules.format.encoding import one_line
from datamodules.sources.tau22 import STORAGE_RATE

SOURCE_EXTENSIONS = (".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3")  # what the packer reads (any case)
MANIFEST_NAME, ERRORS_NAME = "irs.tsv", "errors.tsv"
MANIFEST_COLUMNS = ("name", "source", "source_rate", "sample_rate", "samples", "seconds", "peak")
DEFAULT_MAX_SECONDS = 2.0
SILENCE_PEAK = 1e-5  # -100 dBFS: a response this quiet would mute the clip it is convolved with


class IRPackError(ValueError):
    """The folders cannot be packed (the message names the folder or file and what was expected)."""


class SkippedIR(ValueError):
    """One source is skipped: ``kind`` (unreadable, empty, silent, too_long, duplicate) and a one-line reason."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PackedIR:
    """One packed response: output ``name`` and ``source`` (relative, '/'-separated), the source's rate, the
    length and peak at the output rate, and ``status``: whether this run wrote the file (``written``) or found it
    holding these samples already (``unchanged``)."""

    name: str
    source: str
    source_rate: int
    sample_rate: int
    samples: int
    peak: float
    status: str

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate


@dataclass
class IRPackReport:
    """What :func:`pack_impulse_responses` did."""

    out_dir: str
    sample_rate: int
    irs: List[PackedIR]
    errors: List[Tuple[str, str, str]]  # (source, kind, message), in source order
    removed: List[str] = field(default_factory=list)  # stale outputs of an earlier pack
    errors_path: Optional[str] = None

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.out_dir, MANIFEST_NAME)

    def summary(self) -> str:
        written = sum(ir.status == "written" for ir in self.irs)
        text = (f"{len(self.irs)} impulse responses at {self.sample_rate} Hz in {self.out_dir} "
                f"({written} written, {len(self.irs) - written} unchanged")
        text += f", {len(self.removed)} stale removed)" if self.removed else ")"
        if self.errors:
            text += f"; {len(self.errors)} skipped, see {self.errors_path}"
        return text


def list_sources(ir_dir: str) -> List[str]:
    """Relative paths ('/'-separated) of the audio files under ``ir_dir``, recursively, sorted; dot files (such as
    the ``._x.wav`` resource forks of macOS archives) are left out."""
    found = []
    for root, dirs, files in os.walk(ir_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_root = os.path.relpath(root, ir_dir)
        for f in files:
            if not f.startswith(".") and f.lower().endswith(SOURCE_EXTENSIONS):
                found.append(f if rel_root == "." else os.path.join(rel_root, f).replace(os.sep, "/"))
    return sorted(found)


def output_name(source: str) -> str:
    """The packed file of a source: its relative path with the extension ``.wav`` (order-preserving)."""
    return os.path.splitext(source)[0] + ".wav"


def read_impulse_response(path: str, sample_rate: int, max_seconds: float = DEFAULT_MAX_SECONDS
                          ) -> Tuple[np.ndarray, int]:
    """(mono float32 response at ``sample_rate``, the file's rate), computed as the DIR loader does.

    Raises:
        SkippedIR: The file is unreadable, empty, silent or longer than ``max_seconds``.
    """
    if os.path.getsize(path) == 0:
        raise SkippedIR("empty", "empty file (0 bytes)")
    try:
        wave, rate = read_audio_file(path)
    except AudioDecodeError as err:
        message = str(err).replace(f"{path}: ", "")
        raise SkippedIR("empty" if message == "no samples" else "unreadable", message) from None
    except Exception as err:  # decoders raise many error types
        raise SkippedIR("unreadable", f"unreadable audio ({err})") from None
    if wave.size / rate > max_seconds:
        raise SkippedIR("too_long", f"{wave.size / rate:.2f} s long, more than the {max_seconds:g} s allowed for an "
                                    "impulse response (MicIRP's are 0.34-0.5 s); raise --max-seconds if it is one")
    peak = float(np.max(np.abs(wave)))
    if peak < SILENCE_PEAK:
        raise SkippedIR("silent", f"silent (peak {peak:.2g} < {SILENCE_PEAK:g}): it would mute the clips it is "
                                  "convolved with")
    return np.ascontiguousarray(resample(wave, rate, sample_rate), dtype=np.float32), int(rate)


def pack_impulse_responses(ir_dir: str, out_dir: str, sample_rate: int = STORAGE_RATE,
                           max_seconds: float = DEFAULT_MAX_SECONDS) -> IRPackReport:
    """Packs every impulse response under ``ir_dir`` into ``out_dir`` (see the module docstring).

    Args:
        ir_dir: Folder of responses (wav/flac/aiff/ogg/mp3, any rate, mono or multichannel; read recursively).
        out_dir: Output folder, the ``dir_dir`` of the training config (created if missing).
        sample_rate: Rate of the packed responses: the rate DIR works at (the task's ``storage_rate``).
        max_seconds: Longer sources are skipped as ``too_long``.

    Raises:
        IRPackError: A missing ``ir_dir``, folders inside one another, no audio file, nothing packable, or a
            ``.wav``/``.flac`` in ``out_dir`` that no pack wrote.
    """
    if sample_rate <= 0 or max_seconds <= 0:
        raise IRPackError(f"sample_rate and max_seconds must be positive, got {sample_rate} and {max_seconds}")
    if not os.path.isdir(ir_dir):
        raise IRPackError(f"impulse-response folder {ir_dir!r} does not exist")
    src, dst = os.path.realpath(ir_dir), os.path.realpath(out_dir)
    if src == dst or dst.startswith(src + os.sep) or src.startswith(dst + os.sep):
        raise IRPackError(f"--out-dir {out_dir!r} and --ir-dir {ir_dir!r} must not contain one another "
                          "(the packed files would be read as sources, or loaded next to them)")
    sources = list_sources(ir_dir)
    if not sources:
        raise IRPackError(f"no audio files ({'/'.join(SOURCE_EXTENSIONS)}) under {ir_dir!r}")

    packed: Dict[str, Tuple[str, np.ndarray, int]] = {}  # output name -> (source, samples, source rate)
    errors: List[Tuple[str, str, str]] = []
    # by output name (the order DIR loads them in); of sources sharing one, the .wav (read as is by CP-JKU) first
    for source in sorted(sources, key=lambda s: (output_name(s), not s.lower().endswith(".wav"), s)):
        name = output_name(source)
        try:
            if name in packed:
                raise SkippedIR("duplicate", f"its output name {name!r} is taken by {packed[name][0]!r}; rename one "
                                             "to pack both")
            wave, rate = read_impulse_response(os.path.join(ir_dir, source), sample_rate, max_seconds)
        except SkippedIR as skip:
            errors.append((source, skip.kind, one_line(str(skip))))
            continue
        packed[name] = (source, wave, rate)

    os.makedirs(out_dir, exist_ok=True)
    if not packed:
        errors_path = _write_errors(os.path.join(out_dir, ERRORS_NAME), errors)
        raise IRPackError(f"no impulse response under {ir_dir!r} could be packed; see {errors_path}")
    stale = _stale_outputs(out_dir, set(packed))
    errors_path = _write_errors(os.path.join(out_dir, ERRORS_NAME), errors)

    irs = []
    for name, (source, wave, rate) in packed.items():
        status = _write_ir(os.path.join(out_dir, *name.split("/")), wave, sample_rate)
        irs.append(PackedIR(name, source, rate, sample_rate, int(wave.size), float(np.max(np.abs(wave))), status))
    for name in stale:
        _remove(out_dir, name)
    _write_manifest(os.path.join(out_dir, MANIFEST_NAME), irs)
    return IRPackReport(out_dir, sample_rate, irs, errors, stale, errors_path)


# ---------------------------------------------------------------------------------------------------------------
def _stale_outputs(out_dir: str, produced: Set[str]) -> List[str]:
    """Files DIR would load from ``out_dir`` that this pack does not produce: those an earlier pack wrote (listed in
    its manifest) are returned for removal; any other is an error, raised before anything is written."""
    listed = set()
    manifest = os.path.join(out_dir, MANIFEST_NAME)
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as f:
            listed = {line.split("\t", 1)[0] for line in f.read().splitlines()[1:] if line}
    stale = []
    for root, _, files in os.walk(out_dir):
        for f in files:
            if not f.lower().endswith(IR_EXTENSIONS):
                continue
            name = os.path.relpath(os.path.join(root, f), out_dir).replace(os.sep, "/")
            if name in produced:
                continue
            if name not in listed:
                raise IRPackError(f"{os.path.join(out_dir, name)}: not written by `sonolab dir-pack` (not in "
                                  f"{MANIFEST_NAME}), but DIR augmentation would load it; remove it or choose an "
                                  "empty --out-dir")
            stale.append(name)
    return sorted(stale)


def _write_ir(path: str, wave: np.ndarray, sample_rate: int) -> str:
    """Writes ``wave`` as a float WAV atomically unless ``path`` already holds exactly it; 'written'/'unchanged'."""
    import soundfile as sf

    if os.path.isfile(path):
        try:
            old, rate = sf.read(path, dtype="float32", always_2d=False)
            if rate == sample_rate and old.shape == wave.shape and np.array_equal(old, wave):
                return "unchanged"
        except Exception:  # an unreadable earlier file is simply replaced
            pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"  # not .wav: an interrupted write is never loaded by DIR
    sf.write(tmp, wave, sample_rate, format="WAV", subtype="FLOAT")
    os.replace(tmp, path)
    return "written"


def _remove(out_dir: str, name: str) -> None:
    """Removes a stale output and the folders it leaves empty (never ``out_dir`` itself)."""
    path = os.path.join(out_dir, *name.split("/"))
    os.remove(path)
    folder, top = os.path.dirname(path), os.path.realpath(out_dir)
    while os.path.realpath(folder) != top and not os.listdir(folder):
        os.rmdir(folder)
        folder = os.path.dirname(folder)


def _write_errors(path: str, rows: List[Tuple[str, str, str]]) -> Optional[str]:
    """Writes ``errors.tsv`` (filename, kind, message) and returns its path; removes a stale one when all went well."""
    if not rows:
        if os.path.exists(path):
            os.remove(path)
        return None
    _write_text(path, "filename\tkind\tmessage\n" + "".join(f"{s}\t{k}\t{m}\n" for s, k, m in rows))
    return path


def _write_manifest(path: str, irs: List[PackedIR]) -> None:
    lines = ["\t".join(MANIFEST_COLUMNS)]
    lines += [f"{ir.name}\t{ir.source}\t{ir.source_rate}\t{ir.sample_rate}\t{ir.samples}\t{ir.seconds:.4f}\t"
              f"{ir.peak:.6g}" for ir in irs]
    _write_text(path, "\n".join(lines) + "\n")


def _write_text(path: str, text: str) -> None:
    """Writes ``text`` atomically, leaving the file untouched (mtime included) when it already holds it."""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
