"""Model loading: local checkpoints in training-wrapper layouts, default target layers, offline
behaviour of online weights, multi-label scoring. Nothing here downloads anything."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torchvision
from omegaconf import OmegaConf

from wsl_bench.errors import ConfigError
from wsl_bench.models import LoadedModel, create_model
from wsl_bench.models.checkpoint import host_reachable
from wsl_bench.models.layers import default_target_layer

CONF = Path(__file__).resolve().parent.parent / "conf"


def model_cfg(config: str, **overrides):
    cfg = OmegaConf.load(CONF / "model" / f"{config}.yaml")
    cfg.pop("defaults", None)
    base = OmegaConf.load(CONF / "model" / "torchvision.yaml") if config not in ("timm", "torchvision", "efficientnet_lite0") else {}
    return OmegaConf.merge(base, cfg, overrides)


@pytest.fixture(scope="module")
def resnet18_voc():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=20).eval()


@pytest.mark.parametrize("layout", ["plain", "state_dict+module.", "model+_orig_mod.", "model_state_dict", "safetensors"])
def test_checkpoint_wrappers_load_exactly(tmp_path, resnet18_voc, layout):
    state = resnet18_voc.state_dict()
    path = tmp_path / ("w.safetensors" if layout == "safetensors" else "w.pth")
    if layout == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        wrapped = {
            "plain": state,
            "state_dict+module.": {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}},
            "model+_orig_mod.": {"model": {f"_orig_mod.{k}": v for k, v in state.items()}, "optimizer": {"lr": torch.tensor(0.1)}},
            "model_state_dict": {"model_state_dict": state, "best_acc": 0.9},
        }[layout]
        torch.save(wrapped, path)
    loaded = create_model(model_cfg("torchvision", name="resnet18", checkpoint=str(path), num_classes=20, multilabel=True))
    assert loaded.num_classes == 20 and loaded.multilabel and loaded.target_layer == "layer4"
    assert "sha256" in loaded.weights
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), resnet18_voc(x))


def test_checkpoint_problems_are_one_line_errors(tmp_path, resnet18_voc):
    torch.save(resnet18_voc.state_dict(), tmp_path / "voc20.pth")
    with pytest.raises(ConfigError, match=r"shape of fc.bias: checkpoint \(20,\) vs model \(1000,\); set model.num_classes=20$"):
        create_model(model_cfg("torchvision", name="resnet18", checkpoint=str(tmp_path / "voc20.pth")))
    torch.save(resnet18_voc, tmp_path / "pickled_module.pth")  # a whole pickled model, not a state dict
    with pytest.raises(ConfigError, match=r"holds Python objects other than tensors.*torch.save\(model.state_dict\(\), path\)$"):
        create_model(model_cfg("torchvision", name="resnet18", checkpoint=str(tmp_path / "pickled_module.pth"), num_classes=20))
    with pytest.raises(ConfigError, match=r"122 missing key\(s\) e.g. conv1.weight, bn1.weight, .*; 1 unexpected key\(s\) e.g. head.weight$"):
        torch.save({"head.weight": torch.zeros(1)}, tmp_path / "partial.pth")
        create_model(model_cfg("torchvision", name="resnet18", checkpoint=str(tmp_path / "partial.pth"), num_classes=20))
    with pytest.raises(ConfigError, match=r"model.checkpoint=.*nope.pth not found"):
        create_model(model_cfg("torchvision", name="resnet18", checkpoint=str(tmp_path / "nope.pth"), num_classes=20))


def test_default_target_layers_of_common_architectures():
    expected = {"vgg16": "features.29", "resnet50": "layer4", "googlenet": "inception5b", "alexnet": "features.11",
                "densenet121": "features.norm5", "efficientnet_b0": "features.8", "convnext_tiny": "features.7"}
    for arch, layer in expected.items():
        kwargs = {"aux_logits": False, "init_weights": False} if arch == "googlenet" else {}
        with torch.device("meta"):  # structure only, no weights allocated
            model = torchvision.models.get_model(arch, weights=None, **kwargs)
        assert default_target_layer(model, arch) == layer, arch
        assert (CONF / "model" / f"{arch}.yaml").is_file()


def test_online_weights_offline_fail_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache
    start = time.monotonic()
    with pytest.raises(ConfigError) as error:
        create_model(model_cfg("vgg16", download=False))
    message = str(error.value)
    assert "\n" not in message and "VGG16_Weights.IMAGENET1K_V1 are not in the local cache" in message
    assert f"copy it to {tmp_path}/hub/checkpoints/vgg16-397923af.pth" in message and "model.checkpoint=" in message
    assert not host_reachable("https://wsl-bench.invalid/weights.pth", timeout=2.0)  # RFC 2606: never resolves
    assert time.monotonic() - start < 10


def test_timm_model_from_a_local_checkpoint(tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    torch.save({"state_dict": source.state_dict()}, tmp_path / "t.pth")
    loaded = create_model(OmegaConf.merge(OmegaConf.load(CONF / "model" / "timm.yaml"),
                                          {"name": "resnet18", "checkpoint": str(tmp_path / "t.pth"), "num_classes": 5}))
    assert loaded.num_classes == 5 and loaded.target_layer == "layer4"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), source(x))


def test_multilabel_heads_score_with_sigmoids():
    logits = torch.tensor([[0.0, 2.0, -2.0]])
    single = LoadedModel(torch.nn.Identity(), "m", "", (0.5,) * 3, (0.5,) * 3, 3)
    multi = LoadedModel(torch.nn.Identity(), "m", "", (0.5,) * 3, (0.5,) * 3, 3, multilabel=True)
    e = torch.exp(torch.tensor([0.0, 2.0, -2.0]))
    assert torch.allclose(single.probabilities(logits)[0], e / e.sum())
    assert torch.allclose(multi.probabilities(logits)[0], torch.tensor([0.5, 0.880797, 0.119203]), atol=1e-6)


def test_unknown_names_list_what_exists():
    with pytest.raises(ConfigError, match=r"model.weights='IMAGENET1K_V9' is not a weight of resnet50; use one of: IMAGENET1K_V1, IMAGENET1K_V2"):
        create_model(model_cfg("resnet50", weights="IMAGENET1K_V9"))
    with pytest.raises(ConfigError, match=r"model.name='resnet51' is not a torchvision classification model; e.g. .*resnet50"):
        create_model(model_cfg("torchvision", name="resnet51"))


def test_timm_pretrained_offline_says_how_to_fetch():
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "model" / "timm.yaml"), {"name": "resnet10t.c3_in1k", "download": False})
    with pytest.raises(ConfigError, match=r"^model resnet10t.c3_in1k: pretrained weights are not in the local cache and "
                                          r"model.download=false; .*huggingface-cli download timm/resnet10t.c3_in1k.*model.checkpoint="):
        create_model(cfg)
