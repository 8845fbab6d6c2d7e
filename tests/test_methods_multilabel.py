"""Methods whose rule reads a class probability use the model's scoring function (Pass.probabilities,
given to the Explainer): with a multi-label head that is a sigmoid per class, not a softmax."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from hydra import compose, initialize_config_dir

from wsl_bench import explain
from wsl_bench.data import DecodedImages
from wsl_bench.methods import Explainer
from wsl_bench.pipeline import build_run_spec, execute
from wsl_bench.records.maps import read_maps

from conftest import REPO
from dataset_fixtures import write_voc
from test_methods import TinyCNN


def multilabel_cnn(outputs_sigmoid: bool = False) -> TinyCNN:
    """test_methods' TinyCNN with 3 classes whose biases make them far from exclusive (sigmoid and
    softmax disagree); outputs_sigmoid: the same network with its sigmoid probabilities as outputs."""
    torch.manual_seed(7)
    model = SigmoidOutputs(classes=3) if outputs_sigmoid else TinyCNN(classes=3)
    with torch.no_grad():
        model.fc.bias += torch.tensor([2.0, 1.0, -1.0])
    return model.eval()


class SigmoidOutputs(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x))


CASES = {
    "occlusion": {"patch": 6, "stride": 5, "batch_size": 7},
    "rise": {"n_masks": 12, "cells": 3, "batch_size": 10},
    "integrated_gradients": {"steps": 6, "batch_size": 5},
    "smoothgrad": {"samples": 4, "batch_size": 5},
    "meaningful_perturbation": {"iterations": 5, "mask_scale": 4, "batch_size": 3},
}


@pytest.mark.parametrize("method", sorted(CASES))
def test_probability_rules_read_the_sigmoid_of_a_multilabel_head(method):
    """score=probability with probabilities=sigmoid on f is the raw score (score=logit) of
    sigmoid(f); and it differs from the default softmax."""
    x, targets = torch.randn(2, 3, 16, 16), torch.tensor([[0, 2], [1, 1]])
    params = {**CASES[method], "score": "probability"}
    sigmoid = explain(multilabel_cnn(), x, targets, methods=[method], target_layer="features.3", params={method: params}, probabilities=torch.sigmoid)[method]
    as_logits = {**CASES[method], "score": "logit"}
    reference = explain(multilabel_cnn(outputs_sigmoid=True), x, targets, methods=[method], target_layer="features.3", params={method: as_logits})[method]
    torch.testing.assert_close(sigmoid, reference, rtol=1e-4, atol=1e-6)
    softmax = explain(multilabel_cnn(), x, targets, methods=[method], target_layer="features.3", params={method: params})[method]
    assert not torch.allclose(sigmoid, softmax, rtol=1e-3, atol=1e-5)


def test_occlusion_drop_is_the_drop_of_the_sigmoid_by_hand():
    model = multilabel_cnn()
    x = torch.randn(1, 3, 16, 16)
    explainer = Explainer(model, "features.3", ["occlusion", "scorecam"], {"occlusion": {"patch": 6, "stride": 5}}, probabilities=torch.sigmoid)
    explainer.forward(x)
    maps = explainer.maps(torch.tensor([[2]]))
    occluded = x.clone()
    occluded[..., 5:11, 10:16] = 0
    with torch.no_grad():
        drop = torch.sigmoid(model(x))[0, 2] - torch.sigmoid(model(occluded))[0, 2]
        softmax_drop = torch.softmax(model(x), 1)[0, 2] - torch.softmax(model(occluded), 1)[0, 2]
    torch.testing.assert_close(maps["occlusion"][0, 0, 7, 12], drop)  # pixel (7, 12): covered by that window only
    assert not torch.isclose(drop, softmax_drop, rtol=1e-2)


def test_the_pipeline_gives_the_explainer_the_models_sigmoids(tmp_path: Path):
    """model.multilabel=true through build_run_spec + execute: the run's occlusion maps (kept with
    records.save_maps) are explain(probabilities=torch.sigmoid) on the run's own input, and
    differ from the softmax ones."""
    write_voc(tmp_path, {"000001": ((40, 48), [("dog", 5, 5, 20, 20), ("cat", 20, 10, 40, 38)])})
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=20).state_dict(), tmp_path / "voc20.pth")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "dataset=voc", f"dataset.root={tmp_path / 'VOCdevkit'}", "model=torchvision", "model.name=resnet18",
            f"model.checkpoint={tmp_path / 'voc20.pth'}", "model.num_classes=20", "model.multilabel=true",
            "transform.size=64", "targets.topk=0", "method=occlusion", "method.occlusion.params.patch=32",
            "method.occlusion.params.stride=16", "metric=[pointing]", "records.save_maps=true", "report.html=false",
            "device=cpu", "progress=false",
        ])
    spec = build_run_spec(cfg)
    kept = read_maps(execute(spec, tmp_path / "run").out_dir)
    ((key, meta),) = kept.images.items()
    saved = torch.from_numpy(kept.maps(key)["occlusion"])
    kept.close()
    image = DecodedImages(spec.dataset.entries, spec.transform)[0].image[None]
    targets = torch.tensor([meta["targets"]])
    args = (spec.model.module, image, targets, ["occlusion"], spec.model.target_layer, spec.method_params)
    sigmoid = explain(*args, probabilities=torch.sigmoid)["occlusion"][0]
    softmax = explain(*args)["occlusion"][0]
    assert sorted(meta["targets"]) == [7, 11]  # VOC's cat and dog
    scale = sigmoid.abs().amax()
    torch.testing.assert_close(saved, sigmoid, rtol=0, atol=float(scale) * 2e-3)  # float16 storage
    assert (saved - softmax).abs().amax() > 10 * float(scale) * 2e-3
