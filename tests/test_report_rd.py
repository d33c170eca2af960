"""The rate–distortion view (`harness report --rd`) on hand-made result folders: which results become points,
their order and metadata, continuous latents kept off the bpp axis, the CSV at full precision, the plot files."""
import csv
import io
import re

import numpy as np

from harness.cli import main
from harness.report.index import load_results
from harness.report.rd import params_text, rd_points, write_rd
from tests.report_fixtures import UCF_PROTOCOL, fake_result

CODEC_META = {"display_name": "H.264", "family": "codec", "compression": None, "code_bits": None,
              "latent_channels": None, "discrete": True, "license": "GPL-2.0 (x264)", "source": "libx264"}
VAE_META = {"display_name": "CogVideoX VAE", "family": "vae", "compression": [4, 8, 8], "code_bits": None,
            "latent_channels": 16, "discrete": False, "license": "Apache-2.0", "source": "diffusers"}


def _samples(psnr: float, ssim: float, bpp: float | None, n: int = 4) -> dict[str, dict[str, float]]:
    rows = {}
    for i in range(n):
        row = {"psnr_frame": psnr + 0.5 * (i - 1.5), "psnr_video": psnr - 0.1, "ssim": ssim}
        if bpp is not None:
            row["bpp"] = bpp
        rows[f"Class{i}/v_{i:02d}"] = row
    return rows


def _results(root):
    for bpp, psnr in ((0.4, 36.0), (0.05, 29.0), (0.1, 31.5)):
        fake_result(root, "h264", _samples(psnr, 0.9, bpp), args={"bpp": bpp}, metadata=CODEC_META,
                    extra_metrics={"compression_ratio": {"value": 24 / bpp, "n": 4, "higher_is_better": True}})
    fake_result(root, "tok", _samples(30.0, 0.88, 0.0735), args={"bits": 16}, parameters=123_456_789,
                metadata={"family": "lfq", "compression": [4, 8, 8], "code_bits": 16, "discrete": True},
                extra_metrics={"tokens_per_clip": {"value": 1280.0, "n": 4, "higher_is_better": None}})
    fake_result(root, "cogvideox-vae", _samples(33.0, 0.93, None), parameters=215_617_923, metadata=VAE_META,
                extra_metrics={"bpp": {"value": None, "n": 4, "higher_is_better": False,
                                       "reason": "continuous latent: no bit count (20480 latent values per clip)"},
                               "latent_elements": {"value": 20480.0, "n": 4, "higher_is_better": None}})
    # not usable: limited, non-standard protocol, partial (the older complete one of that row is used instead)
    fake_result(root, "h264", _samples(40.0, 0.95, 1.0), args={"bpp": 1.0}, limit=2)
    fake_result(root, "h264", _samples(20.0, 0.5, 0.2), args={"bpp": 0.2}, protocol={**UCF_PROTOCOL, "num_frames": 9})
    fake_result(root, "tok", _samples(10.0, 0.1, 0.07), args={"bits": 16}, status="partial",
                created_at="2026-02-01T00:00:00+00:00")
    fake_result(root, "h264", _samples(35.0, 0.9, 0.3), args={"bpp": 0.3}, mini=False)


def test_points_are_the_usable_rows_in_bpp_order(tmp_path):
    _results(tmp_path)
    points, skipped = rd_points(load_results(tmp_path), "ucf101-recon")
    labels = [(p.label, p.ref.data_kind) for p in points]
    assert labels == [("h264 (bpp=0.3)", "full"), ("h264 (bpp=0.05)", "mini"), ("tok (bits=16)", "mini"),
                      ("h264 (bpp=0.1)", "mini"), ("h264 (bpp=0.4)", "mini"), ("cogvideox-vae", "mini")]
    tok = next(p for p in points if p.ref.model_id == "tok")
    assert tok.metric("psnr_frame") == 30.0 and tok.ref.status == "complete"  # not the newer partial run
    assert sorted(skipped) == ["h264 (bpp=0.2) [mini]: non-standard", "h264 (bpp=1.0) [mini]: limited"]
    with_limited, _ = rd_points(load_results(tmp_path), "ucf101-recon", include_limited=True)
    assert "h264 (bpp=1.0)" in [p.label for p in with_limited]
    assert rd_points(load_results(tmp_path), "other-task") == ([], [])


def test_table_csv_and_plot(tmp_path):
    _results(tmp_path)
    written = write_rd(tmp_path, "ucf101-recon")
    assert [p.name for p in written] == ["rd-ucf101-recon.md", "rd-ucf101-recon.csv", "rd-ucf101-recon.png",
                                         "rd-ucf101-recon.svg"]
    md = written[0].read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| [")]
    assert len(rows) == 6 and "(rd-ucf101-recon.svg)" in md
    vae = next(r for r in rows if "cogvideox-vae" in r)
    cells = [c.strip() for c in vae.strip("|").split("|")]
    assert cells[7] == "n/a (continuous)" and cells[9] == "215.6M" and cells[10] == "4×8×8"
    assert cells[11] == "16 ch, continuous" and cells[12] == "20480 values" and cells[13] == "Apache-2.0"
    tok = [c.strip() for c in next(r for r in rows if "[tok]" in r).strip("|").split("|")]
    assert tok[4] == "30.00" and tok[7] == "0.0735" and tok[11] == "16 bit/token" and tok[12] == "1280"
    assert re.search(r"\[h264\]\(h264/ucf101-recon@v1/\w+/result\.json\)", md)
    assert "- h264 (bpp=1.0) \\[mini\\]: limited" in md
    table = list(csv.DictReader(io.StringIO(written[1].read_text())))
    by_label = {r["model"]: r for r in table}
    assert float(by_label["h264 (bpp=0.05)"]["compression_ratio"]) == 24 / 0.05
    assert by_label["cogvideox-vae"]["bpp"] == "" and "continuous latent" in by_label["cogvideox-vae"]["bpp_reason"]
    assert float(by_label["cogvideox-vae"]["psnr_frame"]) == np.mean([33.0 + 0.5 * (i - 1.5) for i in range(4)])
    svg = written[3].read_text()
    assert "cogvideox-vae" in svg and "continuous latent, no bpp" in svg and "h264 (4 configs)" not in svg
    assert "h264 (3 configs)" in svg and "h264 (1 config)" in svg  # mini curve of 3, full data apart
    assert written[2].stat().st_size > 10_000


def test_rd_cli_and_nothing_usable(tmp_path, capsys):
    _results(tmp_path / "r")
    assert main(["report", "--results", str(tmp_path / "r"), "--rd", "ucf101-recon"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Rate–distortion: ucf101-recon") and "written: " in out
    fake_result(tmp_path / "lim", "h264", _samples(30.0, 0.9, 0.1), limit=2)
    assert main(["report", "--results", str(tmp_path / "lim"), "--rd", "ucf101-recon"]) == 2
    assert "no usable ucf101-recon result" in capsys.readouterr().err


def test_only_continuous_points_give_a_table_without_a_plot(tmp_path):
    fake_result(tmp_path, "wan-vae", _samples(31.0, 0.9, None), metadata=VAE_META)
    written = write_rd(tmp_path, "ucf101-recon")
    assert [p.suffix for p in written] == [".md", ".csv"] and "![" not in written[0].read_text()


def test_params_text():
    assert [params_text(n) for n in (None, 0, 950, 17_915, 215_617_923, 2_000_000_000)] == [
        "–", "–", "950", "17.9k", "215.6M", "2.0B"]
