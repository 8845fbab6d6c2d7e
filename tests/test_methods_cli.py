"""Methods through the real CLI on the demo: a user's own CAM variant plugged in from outside the
package and scored against built-ins with one command; every cheap built-in on the real model."""

from __future__ import annotations

import pandas as pd

from conftest import run_cli

USER_MODULE = '''
import torch
from wsl_bench import register_method
from wsl_bench.methods import Pass


@register_method("poscam", layer_grads=True)
def poscam(p: Pass, power: float = 1.0) -> torch.Tensor:
    """Grad-CAM, but averaging only the positive gradients, raised to `power`."""
    weights = torch.relu(p.layer_grads).pow(power).mean(dim=(-2, -1))  # [B, T, C]
    return torch.relu(torch.einsum("btk,bkhw->bthw", weights, p.activations))
'''


def test_user_method_plugs_in_through_yaml_and_is_scored_beside_builtins(tmp_path):
    (tmp_path / "my_cams.py").write_text(USER_MODULE)
    methods = tmp_path / "my_conf" / "method"
    methods.mkdir(parents=True)
    # by decorator: the yaml names the module to import
    (methods / "poscam.yaml").write_text("# @package method.poscam\nname: poscam\nmodule: my_cams\nparams: {power: 2.0}\n")
    # by Hydra-style _target_: the same function under another name
    (methods / "poscam3.yaml").write_text(
        "# @package method.poscam3\nname: poscam3\n_target_: my_cams.poscam\nparams: {power: 3.0}\n"
    )
    result = run_cli(
        "method=[gradcam,gradcampp,cam,poscam,poscam3]", f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]",
        "dataset.limit=2", "targets.topk=1", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| poscam |" in result.stdout and "| poscam3 |" in result.stdout
    records = pd.read_parquet(tmp_path / "run" / "records.parquet")
    counts = records.groupby("method").size()
    assert set(counts.index) == {"gradcam", "gradcampp", "cam", "poscam", "poscam3"} and counts.nunique() == 1
    assert records["skip_reason"].isna().all() and (records["map_status"] == "ok").all()


def test_every_other_builtin_runs_through_the_cli_on_the_real_model(tmp_path):
    # An early, narrow target layer (16 channels) keeps Score-/Ablation-CAM to 16 forwards;
    # cam needs the GAP head's layer and runs in the test above.
    names = (
        "gradcam_neg,hirescam,smoothgradcampp,xgradcam,layercam,eigencam,gradient,guided_backprop,"
        "guided_gradcam,center,random,scorecam,scorecam_channel_softmax,ablationcam,occlusion,rise,smoothgrad,"
        "integrated_gradients,meaningful_perturbation"
    )
    result = run_cli(
        f"method=[{names}]", "model.target_layer=blocks.0", "transform.size=112",
        "method.smoothgradcampp.params.samples=2", "method.occlusion.params.patch=56",
        "method.occlusion.params.stride=56", "method.rise.params.n_masks=8", "method.smoothgrad.params.samples=2",
        "method.integrated_gradients.params.steps=2", "method.meaningful_perturbation.params.iterations=2",
        "dataset.limit=1", "targets.topk=1", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = pd.read_parquet(tmp_path / "run" / "records.parquet")
    assert set(records["method"]) == set(names.split(","))
    assert records["skip_reason"].isna().all() and records["point_x"].notna().all()
