"""The default model: real EfficientNet-Lite0 ImageNet weights, real demo photos."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from wsl_bench.data import DecodedImages, ProtocolTransform, build_dataset, collate_samples


def test_demo_dataset_has_seven_real_photos_with_boxes():
    data = build_dataset(OmegaConf.create({"name": "demo", "limit": None}))
    assert [e.image_id for e in data.entries] == [
        "chelsea", "coffee", "camera", "motorcycle", "rocket", "clock", "grace_hopper",
    ]
    for entry in data.entries:
        assert entry.path.is_file()
        assert entry.boxes.shape == (1, 4) and list(entry.box_labels) == [entry.labels[0]]
    assert data.class_names[285] == "Egyptian cat" and len(data.class_names) == 1000


def test_real_top1_predictions_on_demo_photos(lite0):
    data = build_dataset(OmegaConf.create({"name": "demo", "limit": 4}))
    transform = ProtocolTransform("squash", 224, lite0.mean, lite0.std)
    batches, skipped = collate_samples([DecodedImages(data.entries, transform)[i] for i in range(4)])
    assert not skipped and len(batches) == 1
    batch = batches[0]
    # decoded at the stored size: (height, width) from the annotation table
    assert [s.orig_size for s in batch.samples] == [(300, 451), (400, 600), (512, 512), (500, 741)]
    with torch.no_grad():
        logits = lite0.module(batch.images)
    top1 = dict(zip([s.entry.image_id for s in batch.samples], logits.argmax(1).tolist()))
    assert top1 == {"chelsea": 285, "coffee": 967, "camera": 872, "motorcycle": 665}
    probs = logits.softmax(1).max(1).values
    assert (probs[:3] > 0.75).all()  # confident with the [-1, 1] input scaling
