"""TorchRay's pointing-game classifiers: VGG16 and ResNet-50 fine-tuned on PASCAL VOC 2007
(20 classes) and MS COCO 2014 (80 classes), multi-label, converted from the Caffe models of
Zhang et al., "Top-down Neural Attention by Excitation Backprop" (ECCV 2016) and published by
TorchRay (Fong, Patrick & Vedaldi, ICCV 2019) as

    vgg16_voc-b050e8c3.pth.tar   vgg16_coco-d82c8150.pth.tar
    resnet50_voc-9ca920d6.pth.tar resnet50_coco-e99468c5.pth.tar

at https://dl.fbaipublicfiles.com/torchray/ (`model.checkpoint=` one of them; found in
TORCH_HOME/hub/checkpoints, where TorchRay itself caches them, when not given).

What the files need, as TorchRay's `benchmark/models.py` loads them:
- Caffe layout. The first convolution takes BGR (flipped here, so the network takes RGB); the
  VGG16 classifier is numbered without dropout layers (classifier.0 / .2 / .4 in the file); the
  ResNet-50 conv1 has a bias, the max pooling runs in ceil mode with no padding, and each stage's
  stride 2 sits on the first 1x1 convolution of its first block (torchvision puts it on the 3x3);
  Caffe's BatchNorm + Scale pairs are stored as `bn<i>.0.*` / `bn<i>.1.*` (also `downsample.1.0.*`).
- Fully convolutional, as the benchmark uses them: the linear layers are convolutions, so a
  non-square input gives a spatial map of class scores [B, K, h, w] (`score_map`); ResNet-50 pools
  layer4 with a 7x7 window at stride 1 before its 1x1 classifier (the benchmark's patch for the
  backpropagation methods).
- Caffe preprocessing: 0-255 RGB minus the channel means (123.68, 116.779, 103.939). The
  pipeline's transform computes (x/255 - mean) / std; with mean = m/255 and std = 1/255 it is the
  same computation as TorchRay's `get_transform` (Normalize(mean=m/255, std=1/255) on ToTensor).
- Multi-label: sigmoid scores.

Scores. `forward` returns per class the log-sum-exp of the spatial score map,
y_c = log sum_u exp s_c(u). Its gradient w.r.t. the map is exp(s_c) / sum_u exp(s_c(u)): exactly
the backward seed TorchRay's pointing game gives every backpropagation method
(`get_pointing_gradient`), so every gradient-based method gets that seed without any special
case (on a 1x1 map, y_c = s_c and the seed is 1). `image_scores` is the image-level score
TorchRay's perturbation methods (RISE, extremal perturbation) read: the mean of the VGG16 score
map (the global average pooling TorchRay adds to its fully convolutional models) and, for
ResNet-50, its classifier on globally pooled layer4 features (the network as trained, which the
benchmark uses for those methods).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ...errors import ConfigError
from ..base import LoadedModel, register_model
from ..layers import ResidualSum
from ..checkpoint import (
    describe_mismatch, download_allowed, file_provenance, host_reachable, offline_message, read_checkpoint, strip_prefixes, with_timeout,
)

CAFFE_RGB_MEAN = (123.68, 116.779, 103.939)  # TorchRay: BGR mean [103.939, 116.779, 123.68], reversed
DATASET_CLASSES = {"voc": 20, "coco": 80}
BASE_URL = "https://dl.fbaipublicfiles.com/torchray/"
PUBLISHED = {
    ("vgg16", "voc"): "vgg16_voc-b050e8c3.pth.tar",
    ("vgg16", "coco"): "vgg16_coco-d82c8150.pth.tar",
    ("resnet50", "voc"): "resnet50_voc-9ca920d6.pth.tar",
    ("resnet50", "coco"): "resnet50_coco-e99468c5.pth.tar",
}
# torchvision's VGG16 configuration "D": conv widths, "M" = 2x2 max pooling.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
RESNET50_BLOCKS = (3, 4, 6, 3)


def spatial_logsumexp(scores: torch.Tensor) -> torch.Tensor:
    """[B, K, h, w] -> [B, K]: log sum_u exp s(u); its gradient is the pointing-game seed."""
    return torch.logsumexp(scores.flatten(2), dim=2)


class CaffeVGG16(nn.Module):
    """VGG16 (torchvision module names: features.0-30, classifier.0-6) with max pooling in ceil
    mode and the classifier as convolutions: 7x7 (fc6), 1x1 (fc7), 1x1 (fc8). `widths` /
    `hidden` default to VGG16's; smaller values give the same architecture, narrower."""

    def __init__(self, num_classes: int, widths: Sequence[int] = (64, 128, 256, 512, 512), hidden: int = 4096) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, stage = 3, 0
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                stage += 1
                continue
            out_channels = widths[stage]
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 7), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Conv2d(hidden, num_classes, 1),
        )

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores at each position of the fully convolutional head: [B, K, h, w]."""
        return self.classifier(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spatial_logsumexp(self.score_map(x))

    def image_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the score map over positions: [B, K]."""
        return self.score_map(x).mean(dim=(2, 3))


class CaffeBottleneck(nn.Module):
    """ResNet bottleneck, Caffe style: the stride on conv1 (1x1), not conv2 (3x3)."""

    def __init__(self, in_channels: int, width: int, stride: int, expansion: int = 4) -> None:
        super().__init__()
        out_channels = width * expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))
        self.skip = ResidualSum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.skip(self.bn3(self.conv3(out)), identity))


class CaffeResNet50(nn.Module):
    """ResNet-50 (torchvision module names) as converted from Caffe: conv1 with bias, 3x3 max
    pooling at stride 2 without padding in ceil mode, strided first 1x1 convolutions, `avgpool`
    a 7x7 window at stride 1 and `fc` a 1x1 convolution. `base` defaults to ResNet-50's 64."""

    def __init__(self, num_classes: int, base: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True)
        in_channels = base
        for stage, blocks in enumerate(RESNET50_BLOCKS):
            width = base * 2**stage
            layer = []
            for block in range(blocks):
                layer.append(CaffeBottleneck(in_channels, width, stride=2 if stage > 0 and block == 0 else 1))
                in_channels = width * 4
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AvgPool2d(7, stride=1)
        self.fc = nn.Conv2d(in_channels, num_classes, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of each 7x7 window of layer4: [B, K, h - 6, w - 6]."""
        return self.fc(self.avgpool(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spatial_logsumexp(self.score_map(x))

    def image_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier on globally pooled layer4 features: [B, K]."""
        return self.fc(self.global_pool(self.features(x)))[:, :, 0, 0]


def _bgr_to_rgb(weight: torch.Tensor) -> torch.Tensor:
    return weight[:, [2, 1, 0]]


def _as_convolution(value: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor:
    """A fully connected [out, in] weight in the shape of the module's convolution [out, c, k, k]
    (out may differ: a wrong class count is then reported as such)."""
    if own is None or value.ndim == 0 or value[0].numel() != own[0].numel():
        return value
    return value.reshape(value.shape[0], *own.shape[1:])


def vgg16_from_caffe(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """TorchRay's VGG16 file -> this module's state dict (and new name -> file name): classifier
    .0/.2/.4 become .0/.3/.6, fully connected weights take the convolutions' shapes, the first
    convolution turns from BGR to RGB."""
    renamed = {"classifier.2.": "classifier.3.", "classifier.4.": "classifier.6."}
    out, origin = {}, {}
    for key, value in state.items():
        new = next((key.replace(a, b, 1) for a, b in renamed.items() if key.startswith(a)), key)
        if new == "features.0.weight":
            value = _bgr_to_rgb(value)
        elif new.startswith("classifier.") and new.endswith(".weight"):
            value = _as_convolution(value, own.get(new))
        out[new], origin[new] = value, key
    return out, origin


def resnet50_from_caffe(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """TorchRay's ResNet-50 file -> this module's state dict (and new name -> file name): Caffe's
    BatchNorm/Scale pairs `bn<i>.0.*`, `bn<i>.1.*` (and `downsample.1.0.*`) merge into one batch
    norm, conv1 turns from BGR to RGB, the fc weight takes the 1x1 convolution's shape. Batch-norm
    `num_batches_tracked` counters (not in Caffe) are taken from the module."""
    out, origin = {}, {}
    for key, value in state.items():
        new = re.sub(r"bn(\d)\.[01]\.", r"bn\1.", key)
        new = re.sub(r"downsample\.(\d)\.[01]\.", r"downsample.\1.", new)
        if new == "conv1.weight":
            value = _bgr_to_rgb(value)
        elif new == "fc.weight":
            value = _as_convolution(value, own.get(new))
        out[new], origin[new] = value, key
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = value
    return out, origin


def load_caffe_checkpoint(
    module: nn.Module, path: str | Path, convert: Callable[[dict, dict], tuple[dict, dict]]
) -> str:
    """Read TorchRay's file (torch.load weights_only), convert it, and load it exactly; a file
    whose tensors do not fit is a one-line error naming the keys that differ (unexpected keys by
    their names in the file). Returns the provenance string."""
    own = module.state_dict()
    state, origin = convert(strip_prefixes(read_checkpoint(path), set(own)), own)
    problems = describe_mismatch(own, {origin.get(k, k) if k not in own else k: v for k, v in state.items()})
    if problems:
        raise ConfigError(f"model.checkpoint={path} is not TorchRay's Caffe-layout {type(module).__name__}: {problems}")
    module.load_state_dict(state, strict=True)
    return file_provenance(path)


def checkpoint_dataset(cfg: Any, arch: str) -> tuple[Path | None, str | None]:
    """The checkpoint path (None when not given) and the dataset it was trained on: model.dataset,
    else voc / coco in the file name."""
    path = Path(str(cfg.checkpoint)).expanduser() if cfg.get("checkpoint") else None
    dataset = cfg.get("dataset")
    if not dataset and path is not None:
        found = [d for d in DATASET_CLASSES if d in path.name.lower()]
        dataset = found[0] if len(found) == 1 else None
    if dataset is not None and dataset not in DATASET_CLASSES:
        raise ConfigError(f"model.dataset={dataset!r} is not one of {', '.join(DATASET_CLASSES)} (TorchRay's {arch} models)")
    return path, dataset


def cached_published(arch: str, dataset: str, cfg: Any) -> Path:
    """TorchRay's published file for (arch, dataset) from torch's hub cache, where TorchRay keeps
    it; downloaded there only when model.download is true and the server answers."""
    name = PUBLISHED[(arch, dataset)]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if cached.is_file():
        return cached
    url = BASE_URL + name
    if not download_allowed(cfg):
        raise ConfigError(offline_message(f"torchray_{arch}", name, url, cached, "model.download=false"))
    if not host_reachable(url):
        raise ConfigError(offline_message(f"torchray_{arch}", name, url, cached, f"{url.split('/')[2]} cannot be reached"))
    cached.parent.mkdir(parents=True, exist_ok=True)
    with_timeout(torch.hub.download_url_to_file, url, str(cached), hash_prefix=name.split("-")[-1].split(".")[0], progress=False)
    return cached


def build_torchray(cfg: Any, arch: str, make: Callable[[int], nn.Module], convert: Callable, target_layer: str) -> LoadedModel:
    path, dataset = checkpoint_dataset(cfg, arch)
    num_classes = cfg.get("num_classes") or (DATASET_CLASSES[dataset] if dataset else None)
    if path is None:
        if dataset is None:
            raise ConfigError(
                f"model=torchray_{arch} needs its weights: model.checkpoint=/path/to/{PUBLISHED[(arch, 'voc')]} "
                f"(or {PUBLISHED[(arch, 'coco')]}), or model.dataset=voc|coco to use TorchRay's file from torch's cache"
            )
        path = cached_published(arch, dataset, cfg)
    if num_classes is None:
        raise ConfigError(
            f"model.checkpoint={path}: cannot tell VOC (20 classes) from COCO (80) by the file name; set model.dataset=voc|coco or model.num_classes="
        )
    module = make(int(num_classes))
    provenance = load_caffe_checkpoint(module, path, convert)
    return LoadedModel(
        module=module.eval(),
        name=f"torchray_{arch}",
        target_layer=target_layer,
        mean=tuple(m / 255.0 for m in CAFFE_RGB_MEAN),
        std=(1 / 255.0,) * 3,
        num_classes=int(num_classes),
        multilabel=True,
        weights=f"TorchRay Caffe {arch} ({dataset or f'{num_classes} classes'}), {provenance}",
    )


@register_model("torchray_vgg16")
def build_torchray_vgg16(cfg: Any) -> LoadedModel:
    return build_torchray(cfg, "vgg16", CaffeVGG16, vgg16_from_caffe, "features.29")


@register_model("torchray_resnet50")
def build_torchray_resnet50(cfg: Any) -> LoadedModel:
    return build_torchray(cfg, "resnet50", CaffeResNet50, resnet50_from_caffe, "layer4")
