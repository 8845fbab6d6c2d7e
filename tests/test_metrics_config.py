"""Metric settings: validated up front with a message naming the fix, recorded as scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from metric_helpers import score_maps
from omegaconf import OmegaConf

from wsl_bench.config import settings_from as _protocol
from wsl_bench.errors import ConfigError
from wsl_bench.metrics import create_metrics, metric_from_config
from wsl_bench.metrics.energy_pointing import EnergyPointingSettings as EnergyProtocol
from wsl_bench.metrics.localization import LocalizationSettings as LocalizationProtocol
from wsl_bench.metrics.pointing import PointingSettings as PointingProtocol

CONF = Path(__file__).resolve().parent.parent / "conf"


def boxacc_protocol(node):
    """The maxboxacc unit's settings from its config node, None when disabled."""
    unit, enabled = metric_from_config("maxboxacc", node)
    return unit.settings if enabled else None


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
    occlusion, enabled = metric_from_config("occlusion_corr", OmegaConf.create({"enabled": True, "patch": 9, "stride": 3, "target": "gt", "cache_dir": None}))
    assert occlusion.settings.patch == 9 and occlusion.settings.target == "gt" and occlusion.settings.cache_dir is None and enabled
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        metric = compose(config_name="config").metric
    assert metric.avg_drop.enabled and not metric.insertion_deletion.enabled and not metric.occlusion_corr.enabled  # defaults: only the cheap one on
    with pytest.raises(ConfigError, match="metric.avg_drop.target"):
        metric_from_config("avg_drop", OmegaConf.create({"target": "top3"}))
    with pytest.raises(ConfigError, match="metric.occlusion_corr"):
        metric_from_config("occlusion_corr", OmegaConf.create({"enabled": True, "patch_size": 9}))
    settings = create_metrics({"pointing": {}, "maxboxacc": {"iou_thresholds": [0.5]}}).provenance()
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
    with pytest.raises(ConfigError, match="energy_pointing.normalize"):
        EnergyProtocol(normalize="softmax")


def test_unknown_metric_keys_are_config_errors():
    with pytest.raises(ConfigError, match="pointing: .*tolerence.*valid keys: tolerance"):
        _protocol(PointingProtocol, {"tolerence": 15}, "pointing")
    with pytest.raises(ConfigError, match="maxboxacc: .*valid keys"):
        boxacc_protocol(OmegaConf.create({"steps": 0.01}))
