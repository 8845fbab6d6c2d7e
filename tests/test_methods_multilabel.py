"""Methods whose rule reads a class probability use the model's scoring function (Pass.probabilities,
given to the Explainer): with a multi-label head that is a sigmoid per class, not a softmax."""

from __future__ import annotations

import pytest
import torch

from wsl_bench import explain
from wsl_bench.methods import Explainer

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
