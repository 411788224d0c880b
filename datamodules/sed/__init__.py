"""Sound event detection data: class lists and the event <-> frame label encoder."""
from datamodules.sed.label_encoder import (
    DESED_CLASSES,
    MAESTRO_EVAL_CLASSES,
    MAESTRO_REAL_CLASSES,
    EventLabelEncoder,
    active_runs,
)
from datamodules.sed.masks import (  # after label_encoder: masks imports it
    DESED_TO_MAESTRO,
    MAESTRO_TO_DESED,
    SED_CLASSES_DCASE24,
    ClassMapping,
    apply_aliases,
    map_classes,
    resolve_classes,
)
from datamodules.sed.embeddings import FrameEmbeddings, write_frame_embeddings
# SEDDataModule / SEDSource live in datamodules.sed.datamodule (not imported here: it pulls in Lightning)

__all__ = [
    "DESED_CLASSES",
    "MAESTRO_EVAL_CLASSES",
    "MAESTRO_REAL_CLASSES",
    "EventLabelEncoder",
    "active_runs",
    "DESED_TO_MAESTRO",
    "MAESTRO_TO_DESED",
    "SED_CLASSES_DCASE24",
    "ClassMapping",
    "apply_aliases",
    "map_classes",
    "resolve_classes",
    "FrameEmbeddings",
    "write_frame_embeddings",
]
