"""LPIPS and rFVD inside ucf101-recon: null with the reason without weights, per-sample values and I3D features in
the cached records with them, and rFVD recomputed from the cache."""
import json

import numpy as np
import pytest

from harness.runner import RunSpec, run
from tests.fvd_fixtures import write_scripted_detector
from tests.test_lpips import _write_weights

ARGS = {"lpips_nets": "alex", "fvd_detectors": "styleganv", "fvd_bootstrap_iters": 20}


def _run(tmp_path, model, overwrite=False):
    spec = RunSpec(task="ucf101-recon", model=model, task_args=dict(ARGS), limit=3, results_root=str(tmp_path / "res"),
                   cache_root=str(tmp_path / "cache"), progress=False, overwrite=overwrite)
    return run(spec, log=lambda msg: None)


def test_without_weights_the_metrics_are_null_with_the_reason_and_cost_nothing(tmp_path, monkeypatch):
    import torch

    from harness.registry import TASKS
    from harness.task import Record

    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(tmp_path / "empty"))
    task = TASKS.get("ucf101-recon")(**ARGS)
    assert task.protocol.lpips_nets == ("alex",) and task.protocol.fvd_detectors == ("styleganv",)
    assert task.protocol_dict()["metric_weights"] == {"alexnet-owt-7be5be79.pth": None, "alex.pth": None,
                                                      "i3d_torchscript.pt": None}
    frames = torch.zeros(2, 17, 32, 32, 3, dtype=torch.uint8)
    assert task.features.video_values(frames, frames, "cpu") == [{}, {}]
    assert task.features.clip_features(frames, frames, "cpu") == {}
    m = task.features.aggregate([Record("a"), Record("b")], 10)
    assert m["lpips_alex"].value is None and "alexnet-owt-7be5be79.pth not found" in m["lpips_alex"].reason
    assert m["rfvd_styleganv"].value is None and "i3d_torchscript.pt" in m["rfvd_styleganv"].reason
    assert set(m) == {"lpips_alex", "rfvd_styleganv"}
    with pytest.raises(ValueError, match="unknown LPIPS backbone or FVD detector"):
        TASKS.get("ucf101-recon")(fvd_detectors="tf")


@pytest.mark.slow  # end to end through the runner (the SSIM of 17 frames dominates on 2 cores)
def test_with_weights_lpips_and_rfvd_are_computed_and_recomputable_from_the_cache(tmp_path, monkeypatch, ucf_mini):
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(weights))
    _write_weights(weights, "alex")
    write_scripted_detector(weights)

    ident = _run(tmp_path, "identity").result["metrics"]
    assert ident["lpips_alex"]["value"] == 0.0
    assert abs(ident["rfvd_styleganv_eig"]["value"]) < 1e-6 and abs(ident["rfvd_styleganv"]["value"]) < 1e-6

    out = _run(tmp_path, "downsample")
    m = out.result["metrics"]
    assert m["lpips_alex"]["value"] > 0 and m["lpips_alex"]["n"] == 3 and m["lpips_alex"]["stderr"] > 0
    fvd = m["rfvd_styleganv"]
    assert fvd["value"] > 0 and fvd["n"] == 3 and "fewer than 256" in fvd["warning"]
    assert fvd["ci_low"] <= fvd["ci_high"] and "sha256" in fvd["variant"]
    assert m["rfvd_styleganv_eig"]["value"] == pytest.approx(fvd["value"], rel=1e-4)
    hashes = out.result["task"]["protocol"]["metric_weights"]
    assert all(len(h) == 64 for h in hashes.values())
    rows = [json.loads(line) for line in (out.path.parent / "samples.jsonl").read_text().splitlines()]
    assert len(rows[0]["lpips_alex_frames"]) == 17
    assert rows[0]["lpips_alex"] == pytest.approx(np.mean(rows[0]["lpips_alex_frames"]))

    again = _run(tmp_path, "downsample", overwrite=True).result  # every sample from the cache, same numbers
    assert again["timing"]["reused"] == 3 and again["timing"]["computed"] == 0
    assert again["metrics"]["rfvd_styleganv"]["value"] == fvd["value"]
    assert again["metrics"]["lpips_alex"]["value"] == m["lpips_alex"]["value"]
