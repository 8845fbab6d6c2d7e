"""TorchRay's Caffe-layout VGG16 / ResNet-50 files: written here with TorchRay's key names and
random weights, loaded by wsl_bench, and checked against forward passes written out below with
torch.nn.functional on the file's own tensors (BGR first layer fed BGR input, fully connected
layers as matrix products over 7 x 7 windows, Caffe batch norm pairs, Caffe strides)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from omegaconf import OmegaConf

from wsl_bench.data.transforms import ProtocolTransform
from wsl_bench.errors import ConfigError
from wsl_bench.models import create_model
from wsl_bench.models.zoo.torchray_models import (
    CAFFE_RGB_MEAN, VGG16_LAYOUT, CaffeResNet50, CaffeVGG16, load_caffe_checkpoint, resnet50_from_caffe, vgg16_from_caffe,
)

CONF = Path(__file__).resolve().parent.parent / "conf"
NARROW_VGG = (4, 6, 8, 8, 8)  # channels per stage instead of 64 ... 512: same layout, cheap at 224 px
NARROW_RESNET = 4  # base width instead of 64


def model_cfg(name: str, **overrides):
    return OmegaConf.merge(OmegaConf.load(CONF / "model" / f"{name}.yaml"), overrides)


def caffe_vgg16_file(widths=NARROW_VGG, hidden: int = 16, classes: int = 20) -> dict[str, torch.Tensor]:
    """TorchRay's vgg16_<dataset>.pth.tar layout: features.<i> (torchvision's indices), BGR first
    conv, classifier.0 / .2 / .4 (no dropout layers) as fully connected [out, in] matrices."""
    torch.manual_seed(0)
    state, index, in_ch, stage = {}, 0, 3, 0
    for item in VGG16_LAYOUT:
        if item == "M":
            index, stage = index + 1, stage + 1
            continue
        state[f"features.{index}.weight"] = torch.randn(widths[stage], in_ch, 3, 3) * (2 / (9 * in_ch)) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(widths[stage]) * 0.1
        in_ch, index = widths[stage], index + 2
    for key, (out, inp) in {"classifier.0": (hidden, in_ch * 49), "classifier.2": (hidden, hidden), "classifier.4": (classes, hidden)}.items():
        state[f"{key}.weight"] = torch.randn(out, inp) * (2 / inp) ** 0.5
        state[f"{key}.bias"] = torch.randn(out) * 0.1
    return state


def vgg16_reference(state: dict[str, torch.Tensor], rgb: torch.Tensor) -> torch.Tensor:
    """Class score map [B, K, h, w] of the Caffe network: BGR input, ceil-mode pooling, then fc6-8
    as matrix products on every 7 x 7 window of pool5."""
    x = rgb[:, [2, 1, 0]]
    index = 0
    for item in VGG16_LAYOUT:
        if item == "M":
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            index += 1
        else:
            x = F.relu(F.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))
            index += 2
    batch, _, height, width = x.shape
    windows = F.unfold(x, 7).transpose(1, 2)  # [B, positions, C * 49], C-major like torch's flatten
    h = F.relu(windows @ state["classifier.0.weight"].T + state["classifier.0.bias"])
    h = F.relu(h @ state["classifier.2.weight"].T + state["classifier.2.bias"])
    scores = h @ state["classifier.4.weight"].T + state["classifier.4.bias"]
    return scores.transpose(1, 2).reshape(batch, -1, height - 6, width - 6)


def caffe_resnet50_file(base: int = NARROW_RESNET, classes: int = 20) -> dict[str, torch.Tensor]:
    """TorchRay's resnet50_<dataset>.pth.tar layout: torchvision's names with conv1.bias, Caffe's
    BatchNorm + Scale pairs as bn<i>.0.{running_mean,running_var} / bn<i>.1.{weight,bias} (also
    downsample.1.0 / .1), BGR conv1, fc as an [out, in] matrix."""
    torch.manual_seed(1)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        state[f"{name}.weight"] = torch.randn(out, inp, k, k) * (2 / (k * k * inp)) ** 0.5

    def bn(name: str, channels: int) -> None:
        state[f"{name}.0.running_mean"] = torch.randn(channels) * 0.1
        state[f"{name}.0.running_var"] = torch.rand(channels) + 0.5
        state[f"{name}.1.weight"] = torch.rand(channels) * 0.5 + 0.5
        state[f"{name}.1.bias"] = torch.randn(channels) * 0.1

    conv("conv1", base, 3, 7)
    state["conv1.bias"] = torch.randn(base) * 0.1
    bn("bn1", base)
    inp = base
    for stage, blocks in enumerate((3, 4, 6, 3)):
        width = base * 2**stage
        for block in range(blocks):
            prefix = f"layer{stage + 1}.{block}"
            conv(f"{prefix}.conv1", width, inp, 1)
            bn(f"{prefix}.bn1", width)
            conv(f"{prefix}.conv2", width, width, 3)
            bn(f"{prefix}.bn2", width)
            conv(f"{prefix}.conv3", width * 4, width, 1)
            bn(f"{prefix}.bn3", width * 4)
            if block == 0:
                conv(f"{prefix}.downsample.0", width * 4, inp, 1)
                bn(f"{prefix}.downsample.1", width * 4)
            inp = width * 4
    state["fc.weight"] = torch.randn(classes, inp) * (1 / inp) ** 0.5
    state["fc.bias"] = torch.randn(classes) * 0.1
    return state


def resnet50_reference(state: dict[str, torch.Tensor], rgb: torch.Tensor, pool: str = "window") -> torch.Tensor:
    """Caffe ResNet-50: conv1 with bias on BGR, 3x3/2 max pooling without padding in ceil mode,
    the stride on each stage's first 1x1 convolution; class scores of every 7 x 7 window of
    layer4 ([B, K, h, w]) or, pool="global", of the global average ([B, K])."""

    def bn(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(x, state[f"{name}.0.running_mean"], state[f"{name}.0.running_var"], state[f"{name}.1.weight"], state[f"{name}.1.bias"], eps=1e-5)

    x = F.conv2d(rgb[:, [2, 1, 0]], state["conv1.weight"], state["conv1.bias"], stride=2, padding=3)
    x = F.max_pool2d(F.relu(bn(x, "bn1")), 3, 2, 0, ceil_mode=True)
    for stage, blocks in enumerate((3, 4, 6, 3)):
        for block in range(blocks):
            prefix = f"layer{stage + 1}.{block}"
            stride = 2 if stage > 0 and block == 0 else 1
            out = F.relu(bn(F.conv2d(x, state[f"{prefix}.conv1.weight"], stride=stride), f"{prefix}.bn1"))
            out = F.relu(bn(F.conv2d(out, state[f"{prefix}.conv2.weight"], padding=1), f"{prefix}.bn2"))
            out = bn(F.conv2d(out, state[f"{prefix}.conv3.weight"]), f"{prefix}.bn3")
            identity = bn(F.conv2d(x, state[f"{prefix}.downsample.0.weight"], stride=stride), f"{prefix}.downsample.1") if block == 0 else x
            x = F.relu(out + identity)
    if pool == "global":
        return x.mean(dim=(2, 3)) @ state["fc.weight"].T + state["fc.bias"]
    pooled = F.avg_pool2d(x, 7, stride=1)
    return torch.einsum("bchw,kc->bkhw", pooled, state["fc.weight"]) + state["fc.bias"][:, None, None]


# arch: (the file, the narrow module, its converter, the written-out score map, the written-out image scores)
ARCHS = {
    "vgg16": (caffe_vgg16_file, lambda: CaffeVGG16(20, widths=NARROW_VGG, hidden=16), vgg16_from_caffe,
              vgg16_reference, lambda state, x: vgg16_reference(state, x).mean(dim=(2, 3))),
    "resnet50": (caffe_resnet50_file, lambda: CaffeResNet50(20, base=NARROW_RESNET), resnet50_from_caffe,
                 resnet50_reference, lambda state, x: resnet50_reference(state, x, pool="global")),
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("height, width", [(224, 224), (224, 300)])
def test_caffe_models_equal_the_written_out_networks(tmp_path, arch, height, width):
    write, make, convert, score_map, image_scores = ARCHS[arch]
    state = {k: v.double() for k, v in write().items()}  # float64: equality up to rounding
    torch.save(state, tmp_path / f"{arch}_voc-test.pth.tar")
    model = make().double()
    assert "sha256" in load_caffe_checkpoint(model, tmp_path / f"{arch}_voc-test.pth.tar", convert)
    x = torch.rand(2, 3, height, width, dtype=torch.float64) * 255 - 120
    with torch.no_grad():
        reference = score_map(state, x)
        scores = model.eval().score_map(x)
        logits, image = model(x), model.image_scores(x)
    # at 224 x 300, VGG16's pool5 and ResNet-50's layer4 are 7 x 10 (ceil-mode pooling: 300 -> 150
    # -> 75 -> 38 -> 19 -> 10; conv1 -> 150, 3x3/2 pooling -> 75, then /8), so 1 x 4 windows of 7 x 7
    assert scores.shape == reference.shape == (2, 20, 1, 1 if width == 224 else 4)
    torch.testing.assert_close(scores, reference, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(logits, torch.logsumexp(reference.flatten(2), dim=2), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(image, image_scores(state, x), rtol=1e-9, atol=1e-9)


def torchvision_caffe_names(classes: int) -> dict[str, torch.Tensor]:
    """A full-size ResNet-50 file named as TorchRay's converted one, from torchvision's own key
    names (an independent source): conv1.bias added, batch norms split into Caffe's pairs."""
    torch.manual_seed(2)
    out = {}
    for key, value in torchvision.models.resnet50(num_classes=classes).state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        key = re.sub(r"(bn\d|downsample\.1)\.(running_mean|running_var)$", r"\1.0.\2", key)
        key = re.sub(r"(bn\d|downsample\.1)\.(weight|bias)$", r"\1.1.\2", key)
        out[key] = value.clone() if not key.endswith("running_var") else value.clone() + torch.rand_like(value)
    out["conv1.bias"] = torch.randn(64) * 0.1
    return out


@pytest.fixture(scope="module")
def resnet50_coco_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("torchray") / "resnet50_coco-e99468c5.pth.tar"
    torch.save(torchvision_caffe_names(80), path)
    return path


def test_full_size_resnet50_from_config_with_classes_from_the_file_name(resnet50_coco_file):
    loaded = create_model(model_cfg("torchray_resnet50", checkpoint=str(resnet50_coco_file)))
    assert (loaded.name, loaded.num_classes, loaded.multilabel, loaded.target_layer) == ("torchray_resnet50", 80, True, "layer4")
    assert "coco" in loaded.weights and "sha256" in loaded.weights
    x = torch.randn(1, 3, 224, 300)
    with torch.no_grad():
        assert loaded.module.score_map(x).shape == (1, 80, 1, 4) and loaded.module(x).shape == (1, 80)
    # Caffe preprocessing: the pipeline's (x/255 - mean) / std with the model's mean/std is x - mean in 0-255
    image = torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8)
    transform = ProtocolTransform("torchray", 224, loaded.mean, loaded.std)
    out, _ = transform(image)
    expected = image.float() - torch.tensor(CAFFE_RGB_MEAN)[:, None, None]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


def test_file_that_does_not_fit_names_the_keys(tmp_path, resnet50_coco_file):
    state = torch.load(resnet50_coco_file, weights_only=True)
    state.pop("layer3.2.bn2.1.weight")
    state["fc.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "resnet50_coco-broken.pth.tar")
    with pytest.raises(ConfigError) as err:
        create_model(model_cfg("torchray_resnet50", checkpoint=str(tmp_path / "resnet50_coco-broken.pth.tar")))
    message = str(err.value)
    assert "\n" not in message and "layer3.2.bn2.weight" in message and "fc.extra" in message
    # the wrong class count: named, with the fix
    with pytest.raises(ConfigError, match=r"shape of fc\.\w+: checkpoint \(80.*set model.num_classes=80"):
        create_model(model_cfg("torchray_resnet50", checkpoint=str(resnet50_coco_file), dataset="voc"))


def test_dataset_of_the_weights_must_be_known(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "my_vgg16.pth")
    with pytest.raises(ConfigError, match="model.dataset=voc"):
        create_model(model_cfg("torchray_vgg16", checkpoint=str(tmp_path / "my_vgg16.pth")))
    with pytest.raises(ConfigError, match="vgg16_voc-b050e8c3.pth.tar"):
        create_model(model_cfg("torchray_vgg16"))
    with pytest.raises(ConfigError, match="not one of voc, coco"):
        create_model(model_cfg("torchray_vgg16", checkpoint=str(tmp_path / "my_vgg16.pth"), dataset="imagenet"))
