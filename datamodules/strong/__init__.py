"""AudioSet strong (PretrainedSED's pre-training data): clips of AudioSet HDF5 files with 40 ms frame targets.

Labels come from Google's strong-label tables and class map (:mod:`datamodules.sources.audioset_strong`: events of one
class merged, class sets, clip-id matching); audio from HDF5 files in the community layout (read unchanged) or
sonolab's. The output columns are the trained classes (447, sorted display names, as PretrainedSED); metrics are
computed on the 407 classes that are trained and evaluated (:attr:`AudioSetStrongDataModule.metric_classes`).

Batch (a dict; B clips, C = ``num_classes``, T = ``frames``):
    audio           (B, n) float32     at ``sample_rate``, zero-padded or cut to ``clip_seconds``; the start is kept
                                       (no random crop: the targets are tied to the clip's time axis)
    strong          (B, C, T) float32  frame targets
    name            list[str]          clip ids as stored in the HDF5 files
    teacher_logits  (B, C, T) float32  training batches when ``teacher_logits`` is given: the ensemble's logits
    index           (B,) long          position of the clip in its split
    skipped         (B,) long          undecodable clips the row stands for (datamodules.datasets.DecodeGuard)

Frame targets (PretrainedSED, ``helpers/encode.py`` ``ManyHotEncoder.encode_strong_df``): frame k covers
``[k, k + 1) * clip_seconds / frames``; an event makes frames ``floor(onset / hop)`` to ``ceil(offset / hop) - 1``
active, i.e. every frame it overlaps (an event ending exactly on a frame boundary does not reach the next frame);
times are clipped to the clip. PretrainedSED computes the frame positions from float32 times (its HF dataset's
feature type), so about half of the boundaries that fall exactly on a multiple of 40 ms land one frame off (an offset
of 0.2 s also marks frame 5); here times within 1e-6 frames of a boundary snap to it
(:class:`~datamodules.sed.label_encoder.EventLabelEncoder`, shared with the DCASE SED data).
"""
from datamodules.strong.clips import MissingClipsWarning, StrongClips, active_frame_counts, collect_clips
from datamodules.strong.datamodule import AudioSetStrongDataModule
from datamodules.strong.dataset import StrongClipDataset, TeacherFrames

__all__ = ["AudioSetStrongDataModule", "MissingClipsWarning", "StrongClipDataset", "StrongClips", "TeacherFrames",
           "active_frame_counts", "collect_clips"]
