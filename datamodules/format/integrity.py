"""Checks of source audio files for the packer: files cut short (a WAV whose ``data`` chunk or an MP3 whose
Xing/Info frame count declares more than the file holds) and float samples beyond full scale."""
from __future__ import annotations

import os
import struct
from typing import NamedTuple, Optional

import numpy as np

MP3_SHORTFALL = 0.05  # an MP3 decoding this much shorter than its Xing/Info header declares counts as truncated
_MP3_SCAN_BYTES = 1 << 16  # where the first MPEG frame (after an ID3v2 tag) is looked for
_LAME_TAGS = (b"LAME", b"Lavf", b"Lavc")  # encoders writing the LAME tag (encoder delay and padding)


class HeaderLength(NamedTuple):
    """The length a file's header declares, in sample frames at the file's rate.

    Attributes:
        frames: Frames the header declares.
        present: Frames the file's size can hold (WAV), or None when only decoding tells (MP3).
        slack: Frames a decoder may deliver fewer without the file being cut (MP3 frame granularity); 0 for WAV.
    """

    frames: int
    present: Optional[int]
    slack: int


def header_length(path: str) -> Optional[HeaderLength]:
    """The length a WAV (RIFF/RIFX ``data`` chunk) or MP3 (Xing/Info frame count) header declares.

    None for other formats, for lengths the header leaves open (streamed WAVs write 0 or 0xFFFFFFFF, MP3s without
    a Xing/Info frame) and for unreadable headers: those files are not checked.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
                return _wav_length(f, "<" if head[:4] == b"RIFF" else ">", os.fstat(f.fileno()).st_size)
            f.seek(0)
            return _mp3_length(f.read(_MP3_SCAN_BYTES))
    except (OSError, struct.error):
        return None


def _wav_length(f, endian: str, file_size: int) -> Optional[HeaderLength]:
    block_align = None
    for _ in range(1000):  # chunks before ``data``: fmt, fact, LIST, bext, ... (a bound against garbage sizes)
        head = f.read(8)
        if len(head) < 8:
            return None
        size = struct.unpack(endian + "I", head[4:])[0]
        if head[:4] == b"fmt ":
            block_align = struct.unpack(endian + "H", f.read(16)[12:14])[0]
            f.seek(size - 16 + (size & 1), 1)
        elif head[:4] == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):
                return None
            return HeaderLength(size // block_align, max(0, file_size - f.tell()) // block_align, 0)
        else:
            f.seek(size + (size & 1), 1)
    return None


def _mp3_length(data: bytes) -> Optional[HeaderLength]:
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # ID3v2 tag: syncsafe size, plus a footer when flagged
        pos = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10])) + (10 if data[5] & 0x10 else 0)
    for i in range(pos, len(data) - 4):  # the first MPEG audio frame header
        b1, b2, b3 = data[i + 1], data[i + 2], data[i + 3]
        version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
        if data[i] != 0xFF or b1 & 0xE0 != 0xE0 or version == 1 or layer == 0 or b2 >> 4 in (0, 15):
            continue
        if (b2 >> 2) & 3 == 3 or layer != 1:  # reserved rate, or not Layer III
            return None
        mpeg1, mono = version == 3, b3 >> 6 == 3
        xing = i + 4 + ((17 if mono else 32) if mpeg1 else (9 if mono else 17))  # after the side information
        if data[xing : xing + 4] not in (b"Xing", b"Info") or len(data) < xing + 12:
            return None
        flags = struct.unpack(">I", data[xing + 4 : xing + 8])[0]
        if not flags & 1:  # no frame count
            return None
        per_frame = 1152 if mpeg1 else 576
        frames = struct.unpack(">I", data[xing + 8 : xing + 12])[0] * per_frame
        lame = xing + 8 + sum(n for bit, n in ((1, 4), (2, 4), (4, 100), (8, 4)) if flags & bit)
        if data[lame : lame + 4] in _LAME_TAGS and len(data) >= lame + 24:
            trim = int.from_bytes(data[lame + 21 : lame + 24], "big")  # 12 bits encoder delay, 12 bits padding
            return HeaderLength(frames - (trim >> 12) - (trim & 0xFFF), None, per_frame)
        return HeaderLength(frames, None, 3 * per_frame)  # delay and padding unknown: up to about 3 frames
    return None


def truncation_message(path: str, start: float, end: Optional[float], decoded: int, rate: int) -> str:
    """Why the window [start, end) s of ``path``, decoded to ``decoded`` samples at ``rate``, stops early ("" when
    it does not): the file decodes shorter than its header declares (:func:`header_length`).

    WAV: the ``data`` chunk is larger than the file holds, and the window reaches the cut (the last window of a cut
    recording counts, one before the cut does not). MP3: the window decodes more than :data:`MP3_SHORTFALL` of its
    length (and more than the frame slack) shorter than the header allows.
    """
    header = header_length(path)
    if header is None:
        return ""
    first = int(round(start * rate))
    stop = first + decoded  # where the decoded window ends in the file
    if header.present is not None:  # WAV: the file size tells where the audio stops
        cut = header.present
        short = header.frames - cut > header.slack and stop >= cut
    else:  # MP3: only decoding tells
        cut = stop
        wanted = header.frames if end is None else min(int(round(end * rate)), header.frames)
        short = wanted - stop > max(header.slack, MP3_SHORTFALL * (wanted - first))
    if not short:
        return ""
    return f"truncated file: its header declares {header.frames / rate:.3f} s, the audio stops at {cut / rate:.3f} s"


def float_clipping_message(path: str, wave: np.ndarray) -> str:
    """"" unless ``path`` stores float samples (e.g. a 32-bit float WAV) beyond [-1, 1]: then what the peak is.

    Integer formats cannot exceed full scale; the overshoot of lossy decoders is not reported (their source was
    within range).
    """
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak <= 1.0:
        return ""
    import soundfile as sf

    try:
        subtype = sf.info(path).subtype
    except Exception:  # not a libsndfile format: a compressed one, decoded by PyAV
        return ""
    if subtype not in ("FLOAT", "DOUBLE"):
        return ""
    return f"float samples beyond [-1, 1] (peak {peak:.3f}) clipped to [-1, 1]"
