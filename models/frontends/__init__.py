"""Frontends: waveform (B, n) -> spectrogram (B, 1, F, T). Importing registers ``efficientat_mel`` and ``mel``."""
from models.frontends.efficientat_mel import EfficientATMel, kaldi_mel_banks  # noqa: F401
from models.frontends.masking import SpecMasking  # noqa: F401
from models.frontends.mel import MelSpectrogram, mel_filterbank  # noqa: F401
from models.registry import register_frontend

register_frontend("efficientat_mel", EfficientATMel)
register_frontend("mel", MelSpectrogram)
