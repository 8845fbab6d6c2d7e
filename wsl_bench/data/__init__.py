"""Stage 1, data: datasets parsed into ImageEntry lists, decoded into protocol-transformed Samples."""

from .base import AnnotatedImages, DecodedImages, build_dataset, register_dataset
from .sample import Batch, ImageEntry, Sample, View, collate_samples
from .transforms import ProtocolTransform

__all__ = [
    "AnnotatedImages", "Batch", "DecodedImages", "ImageEntry", "ProtocolTransform", "Sample", "View",
    "build_dataset", "collate_samples", "register_dataset",
]
