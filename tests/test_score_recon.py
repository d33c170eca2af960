import json

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from harness.cli import main
from harness.video import read_frames, write_video
from tests.conftest import moving_frames


def _expected(ref, rec):
    a, b = ref.astype(np.float64), rec.astype(np.float64)
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(1)
    ssim = np.mean([structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                          data_range=255, channel_axis=-1) for x, y in zip(ref, rec)])
    return np.mean(10 * np.log10(255 ** 2 / mse)), 10 * np.log10(255 ** 2 / mse.mean()), ssim


def test_score_recon_on_two_files_matches_an_independent_computation(tmp_path):
    ref_path, rec_path = tmp_path / "ref.mp4", tmp_path / "rec.mp4"
    write_video(ref_path, moving_frames(10, 48, 64, seed=4), 25, options={"crf": 10})
    write_video(rec_path, moving_frames(10, 48, 64, seed=4), 25, options={"crf": 40})
    out = tmp_path / "out.json"
    assert main(["score", "recon", "--reference", str(ref_path), "--reconstruction", str(rec_path),
                 "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    psnr_frame, psnr_video, ssim = _expected(read_frames(ref_path), read_frames(rec_path))
    assert got["frames"] == 10
    assert got["psnr_frame"] == pytest.approx(psnr_frame, abs=1e-9)
    assert got["psnr_video"] == pytest.approx(psnr_video, abs=1e-9)
    assert got["ssim"] == pytest.approx(ssim, abs=1e-9)


def test_score_recon_on_folders_and_mismatched_inputs(tmp_path, capsys):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    for name, seed in (("x.mp4", 1), ("y.mp4", 2)):
        write_video(tmp_path / "a" / name, moving_frames(6, 32, 32, seed=seed), 25, options={"crf": 5})
        write_video(tmp_path / "b" / name, moving_frames(6, 32, 32, seed=seed), 25, options={"crf": 35})
    out = tmp_path / "o.json"
    assert main(["score", "recon", "--reference", str(tmp_path / "a"), "--reconstruction", str(tmp_path / "b"),
                 "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["videos"] == 2 and got["frames"] == 12 and set(got["per_video"]) == {"x.mp4", "y.mp4"}
    write_video(tmp_path / "b" / "y.mp4", moving_frames(5, 32, 32), 25)
    assert main(["score", "recon", "--reference", str(tmp_path / "a"), "--reconstruction",
                 str(tmp_path / "b")]) == 2
    assert "y.mp4" in capsys.readouterr().err
