"""The transformer zoo: BEATs, ATST-Frame, fPaSST, PaSST-S, M2D and ASiT backbones, and :class:`FrameSED`
(PretrainedSED's frame-level wrapper). Importing registers their catalogue names (see :mod:`.catalogue`)."""
from models.transformers import catalogue  # noqa: F401
