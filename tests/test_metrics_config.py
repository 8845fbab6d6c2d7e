"""Metric settings: validated up front with a message naming the fix, recorded as scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from wsl_bench.errors import ConfigError
from wsl_bench.metrics.protocol import (
    EnergyProtocol, LocalizationProtocol, MetricProtocols, PointingProtocol, boxacc_protocol, score_maps,
)
from wsl_bench.pipeline import faithfulness_settings


@pytest.mark.parametrize("kwargs, key", [
    ({"comparison": ">="}, "localization.comparison"),
    ({"normalize": "l2"}, "localization.normalize"),
    ({"connectivity": 6}, "localization.connectivity"),
])
def test_bad_localization_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        LocalizationProtocol(**kwargs)


def test_boxacc_and_faithfulness_config_nodes():
    proto = boxacc_protocol(OmegaConf.create({"enabled": True, "step": 0.05, "iou_thresholds": [0.5], "comparison": "gt", "connectivity": 4, "v1_iou": 0.5}))
    assert proto.iou_thresholds == (0.5,) and proto.step == 0.05
    assert boxacc_protocol(OmegaConf.create({"enabled": False})) is None
    with pytest.raises(ConfigError, match="maxboxacc.step"):
        boxacc_protocol(OmegaConf.create({"step": 2.0}))
    with pytest.raises(ConfigError, match="maxboxacc.comparison"):
        boxacc_protocol(OmegaConf.create({"comparison": "geq"}))
    f = faithfulness_settings(OmegaConf.create({"occlusion": {"enabled": True, "patch": 9, "stride": 3, "target": "gt", "cache_dir": None}}))
    assert f.occlusion.patch == 9 and f.targets["occlusion"] == "gt" and f.cache_dir is None
    assert f.confidence is not None and f.insertion_deletion is None  # defaults: only the cheap one on
    with pytest.raises(ConfigError, match="faithfulness.confidence.target"):
        faithfulness_settings(OmegaConf.create({"confidence": {"target": "top3"}}))
    with pytest.raises(ConfigError, match="faithfulness.occlusion"):
        faithfulness_settings(OmegaConf.create({"occlusion": {"enabled": True, "patch_size": 9}}))
    settings = MetricProtocols(boxacc=proto).to_dict()
    assert settings["maxboxacc"]["iou_thresholds"] == [0.5] and settings["pointing"]["tolerance"] == 15


def test_energy_of_a_non_positive_map_is_scored_not_failed():
    m = -np.ones((10, 10))
    m[:, :5] = -0.5  # the higher half is the left one
    box = np.array([[0, 0, 4, 9]])
    maps = torch.tensor(m[None], dtype=torch.float32)
    out = score_maps(maps, [box], LocalizationProtocol(), PointingProtocol(), energy=EnergyProtocol(normalize="minmax"))
    assert out.status == ["non_positive"] and out.energy[0] == pytest.approx(1.0)
    out = score_maps(maps, [box], LocalizationProtocol(), PointingProtocol(), energy=EnergyProtocol(normalize="none"))
    assert out.energy[0] == 0.0  # nothing positive: no energy anywhere
    with pytest.raises(ConfigError, match="energy.normalize"):
        EnergyProtocol(normalize="softmax")


def test_unknown_metric_keys_are_config_errors():
    from wsl_bench.pipeline import _protocol

    with pytest.raises(ConfigError, match="pointing: .*tolerence.*valid keys: tolerance"):
        _protocol(PointingProtocol, {"tolerence": 15}, "pointing")
    with pytest.raises(ConfigError, match="maxboxacc: .*valid keys"):
        boxacc_protocol(OmegaConf.create({"steps": 0.01}))
