"""Resolution scaling on tiny heights: result JSON, merging by height, memory-budget skips, OOM handling, codebook
utilization checked against an independent count, and the PNG/SVG plots (also embedded by the report)."""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.cli import main
from harness.registry import MODELS
from harness.report.build import write_report
from harness.report.plots import write_scaling_plots
from harness.studies.scaling import (ScaleOptions, adapter_tiles, estimate_bytes, frame_size, load_clip, run_scaling,
                                     spatial_alignment)
from harness.video import to_model_input
from models.base import RECONSTRUCT, CodeLevel, ModelAdapter, ModelMetadata, Tokens


class ToyBinary(ModelAdapter):
    """Sign of each 8x8 block mean of R, G, B: a 3-bit code per block (codebook of 8), decoded as +-0.5."""

    capabilities = frozenset({RECONSTRUCT})
    metadata = ModelMetadata("toy binary", family="test", compression=(1, 8, 8), code_bits=3)

    def encode(self, video):
        lat = F.avg_pool3d(video, (1, 8, 8))
        bits = (lat > 0).permute(0, 2, 3, 4, 1).to(torch.uint8)
        n = torch.full((video.shape[0],), 3.0 * bits[0, ..., 0].numel(), dtype=torch.float64)
        return Tokens(tuple(video.shape[2:]), levels=[CodeLevel("l1", bits=bits)], bits=n)

    def decode(self, tokens):
        x = tokens.levels[0].bits.float().sub(0.5).permute(0, 4, 1, 2, 3)
        return x.repeat_interleave(8, 3).repeat_interleave(8, 4)


class FailsAbove64(ToyBinary):
    def encode(self, video):
        if video.shape[3] > 64:
            raise MemoryError("out of memory (simulated)")
        return super().encode(video)


@pytest.fixture(autouse=True)
def toy_models():
    MODELS.register("toy-binary", ToyBinary, overwrite=True)
    MODELS.register("toy-oom", FailsAbove64, overwrite=True)
    yield
    MODELS.unregister("toy-binary")
    MODELS.unregister("toy-oom")


def test_frame_sizes_follow_16_9_rounded_to_the_alignment():
    assert frame_size(240, (16, 9), 8) == (240, 424)
    assert frame_size(1080, (16, 9), 8) == (1080, 1920)
    assert frame_size(1080, (16, 9), 16) == (1088, 1920)
    assert frame_size(64, (16, 9), 2) == (64, 114)
    assert spatial_alignment(ToyBinary()) == 8


def test_scale_cli_writes_versioned_json_merges_heights_and_plots(tmp_path):
    out = tmp_path / "scaling"
    for height in (64, 128):  # two runs of one configuration: one file, points merged by height
        run_scaling(ScaleOptions("downsample", heights=[height], frames=5, clips=["carphone"], out=str(out),
                                 warmup=False), log=lambda m: None)
    assert main(["scale", "--model", "h264", "--heights", "64,128", "--frames", "3", "--clips", "carphone", "--out",
                 str(out), "--no-warmup"]) == 0
    files = sorted(out.glob("*.json"))
    assert [f.name.split("-")[0] for f in files] == ["downsample", "h264"]
    ds, h264 = (json.loads(f.read_text()) for f in files)
    assert ds["schema"] == "pyratok-bench/scaling" and ds["schema_version"] == 1
    assert [p["height"] for p in ds["points"]] == [64, 128]  # the second run merged into the first file
    assert [(p["frame_height"], p["frame_width"]) for p in ds["points"]] == [(64, 112), (128, 224)]
    assert [(p["frame_height"], p["frame_width"]) for p in h264["points"]] == [(64, 114), (128, 228)]
    for p in ds["points"] + h264["points"]:
        assert p["status"] == "ok" and 10 < p["psnr"] < 60 and 0 < p["ssim"] < 1
        assert p["encode_s_per_frame"] > 0 and p["decode_s_per_frame"] > 0 and p["peak_memory_bytes"] > 2**20
        assert p["utilization"]["value"] is None and "no discrete code levels" in p["utilization"]["reason"]
    assert ds["points"][0]["bpp"] == pytest.approx(24 / (8 * 8) * 2 / 5)  # 2 latent frames for 5, 8-bit RGB
    assert h264["model"]["spatial_alignment"] == 2 and ds["model"]["args"] == {"t": 4, "h": 8, "w": 8}
    stems = {"scaling_quality", "scaling_time", "scaling_memory", "scaling_utilization"}
    assert {p.stem for p in out.glob("*.png")} == stems == {p.stem for p in out.glob("*.svg")}
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = ET.parse(out / "scaling_utilization.svg").getroot()
    assert svg.tag.endswith("svg") and "Fig. 29" in (out / "scaling_utilization.svg").read_text()
    # the report embeds the plots (relative links) when results/scaling exists
    rep = write_report(tmp_path)
    assert any(p.name == "scaling_memory.svg" for p in rep.written)
    html = (tmp_path / "leaderboard.html").read_text()
    assert 'src="scaling/scaling_quality.svg"' in html
    assert "![scaling_time](scaling/scaling_time.svg)" in (tmp_path / "leaderboard.md").read_text()


def test_a_tiling_adapter_is_recognised_and_trusted_with_a_smaller_working_set():
    from models.baselines.identity import IdentityAdapter

    assert adapter_tiles(IdentityAdapter(tiling="auto")) and adapter_tiles(IdentityAdapter(tiling=True))
    assert not adapter_tiles(IdentityAdapter(tiling="off")) and not adapter_tiles(IdentityAdapter())
    tiled, plain = estimate_bytes(IdentityAdapter(tiling="auto"), 17, 2160, 3840), estimate_bytes(
        IdentityAdapter(), 17, 2160, 3840)
    clip = 4 * 3 * 17 * 2160 * 3840
    assert tiled[0] == 2 * clip + 2 * clip // 4 and plain[0] == 6 * clip + 2 * clip // 4


def test_clips_are_real_frames_at_the_requested_size(ucf_mini):
    for name in ("ucf101", "bikes", "carphone"):  # carphone (176x144) is upscaled
        clip = load_clip(name, 3, 72, 128)
        assert clip.shape == (3, 72, 128, 3) and clip.dtype == np.uint8 and clip.std() > 10
    with pytest.raises(Exception, match="unknown clip"):
        load_clip("nope", 3, 72, 128)


def test_utilization_matches_an_independent_count_of_codes(tmp_path):
    path = run_scaling(ScaleOptions("toy-binary", heights=[32, 64], frames=3, clips=["carphone", "bikes"],
                                    out=str(tmp_path), warmup=False), log=lambda m: None)
    doc = json.loads(path.read_text())
    for p in doc["points"]:
        codes = set()
        for clip in ("carphone", "bikes"):
            x = to_model_input(load_clip(clip, 3, p["frame_height"], p["frame_width"]))[None]
            bits = (F.avg_pool3d(x, (1, 8, 8)) > 0).long().permute(0, 2, 3, 4, 1).reshape(-1, 3).numpy()
            codes |= set((bits @ np.array([4, 2, 1])).tolist())
        assert p["utilization"]["value"] == pytest.approx(len(codes) / 8)
        assert p["utilization"]["levels"]["l1"]["codebook_size"] == 8
        assert p["bpp"] == pytest.approx(3 / 64)


def test_memory_budget_and_out_of_memory_skip_with_a_reason(tmp_path):
    path = run_scaling(ScaleOptions("toy-binary", heights=[32, 64], frames=2, clips=["carphone"], out=str(tmp_path),
                                    memory_budget_gb=1e-5, warmup=False), log=lambda m: None)
    points = json.loads(path.read_text())["points"]
    assert [p["status"] for p in points] == ["skipped", "skipped"]
    assert all("exceeds the memory budget" in p["reason"] and "no tiling" in p["reason"] for p in points)
    path = run_scaling(ScaleOptions("toy-oom", heights=[64, 128], frames=2, clips=["carphone"], out=str(tmp_path),
                                    warmup=False), log=lambda m: None)
    points = json.loads(path.read_text())["points"]
    assert [p["status"] for p in points] == ["ok", "skipped"] and "out of memory" in points[1]["reason"]
    plots = write_scaling_plots(tmp_path)  # skipped heights are named in the legend, not plotted
    assert "not measured at 128p" in Path(next(p for p in plots if p.name == "scaling_quality.svg")).read_text()
