"""The loader's unit: batch b is images b * batch_size ... (b + 1) * batch_size - 1 of the
dataset, decoded and grouped by input shape in a DataLoader worker. Batches are numbered so
that a run can be resumed, sharded or split over ranks by batch, and every image still meets
the network with the same batch-mates (the network's arithmetic depends on the batch)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from torch.utils.data import Dataset

from ..threads import torch_threads
from .base import DecodedImages
from .sample import Batch, Sample, collate_samples


@dataclass
class LoadedBatch:
    index: int
    batches: list[Batch]  # decoded images, one Batch per input shape
    skipped: list[Sample]  # images that could not be decoded, with their reason
    decode_seconds: float

    @property
    def n_images(self) -> int:
        return sum(len(b.samples) for b in self.batches) + len(self.skipped)

    def pin_memory(self) -> "LoadedBatch":
        """Called by the DataLoader (pin_memory=True, on a GPU) so the copy to the device can overlap."""
        for batch in self.batches:
            batch.images = batch.images.pin_memory()
        return self


class BatchedImages(Dataset):
    """Item b: loader batch b of the decoded images (sampled by batch number)."""

    def __init__(self, images: DecodedImages, batch_size: int) -> None:
        self.images, self.batch_size = images, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int) -> LoadedBatch:
        start = time.perf_counter()
        stop = min(len(self.images), (index + 1) * self.batch_size)
        with torch_threads(1):  # as in a DataLoader worker: the pixels must not depend on where they were decoded
            batches, skipped = collate_samples([self.images[i] for i in range(index * self.batch_size, stop)])
        return LoadedBatch(index, batches, skipped, time.perf_counter() - start)


def as_is(item: LoadedBatch) -> LoadedBatch:
    """The DataLoader's collate for BatchedImages (items are batches already)."""
    return item
