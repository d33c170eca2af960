"""End-to-end runs of ucf101-recon on the mini split, through the CLI as a user would."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import CapabilityError
from harness.metrics.pixel import PSNR_CAP_DB
from harness.registry import MODELS
from harness.runner import RunSpec, check_capabilities, run
from models.baselines.identity import IdentityAdapter

pytestmark = pytest.mark.slow


def _run(args, capsys=None) -> dict:
    code = main(["run", *args, "--no-progress"])
    assert code == 0
    out_dir = Path(args[args.index("--results") + 1])
    paths = sorted(out_dir.glob("*/*/*/result.json"), key=os.path.getmtime)
    return json.loads(paths[-1].read_text())


def test_identity_is_perfect_and_result_files_are_complete(tmp_path, ucf_mini):
    res = _run(["--task", "ucf101-recon", "--model", "identity", "--results", str(tmp_path)])
    m = res["metrics"]
    assert m["ssim"]["value"] == 1.0
    assert m["psnr_frame"]["value"] == PSNR_CAP_DB == m["psnr_video"]["value"]
    assert m["identical_frames"]["value"] == 16 * 17
    assert m["bpp"]["value"] == 24.0 and m["compression_ratio"]["value"] == 1.0
    assert res["status"] == "complete" and res["task"]["data"]["mini"] is True
    assert res["task"]["protocol"]["num_frames"] == 17 and res["task"]["protocol"]["split"] == "testlist01"
    assert res["task"]["data"]["n_evaluated"] == 16 and not res["task"]["data"]["limited"]
    folder = next(tmp_path.glob("identity/ucf101-recon@v1/*"))
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and rows[0]["frame_indices"] == list(range(3, 20))  # centred 17 of 24 frames
    assert "num_frames: 17" in (folder / "protocol.yaml").read_text()
    for key in ("harness", "env", "model", "timing", "failures", "seed"):
        assert key in res


def test_baselines_give_finite_numbers_and_the_report_lists_them(tmp_path, ucf_mini):
    for model in ("downsample", "h264"):
        res = _run(["--task", "ucf101-recon", "--model", model, "--results", str(tmp_path)])
        m = res["metrics"]
        assert 10 < m["psnr_frame"]["value"] < 60 and 0 < m["ssim"]["value"] < 1
        assert 0 < m["bpp"]["value"] < 0.2
    _run(["--task", "ucf101-recon", "--model", "identity", "--results", str(tmp_path)])
    assert main(["report", "--results", str(tmp_path)]) == 0
    board = (tmp_path / "leaderboard.md").read_text()
    for name in ("downsample", "h264", "identity"):
        assert f"| {name}" in board
    # the h264 budget is that of a 16-bit 4x8x8 tokenizer: 16 * 5*16*16 bits over 17*128*128 pixels
    h264 = json.loads(next(tmp_path.glob("h264/*/*/result.json")).read_text())
    assert h264["metrics"]["bpp"]["value"] <= 16 * 5 * 16 * 16 / (17 * 128 * 128)


class _Interrupting(IdentityAdapter):
    """Identity that raises KeyboardInterrupt on its 3rd batch, like a user pressing Ctrl-C mid-run."""
    calls = 0

    def encode(self, video):
        type(self).calls += 1
        if type(self).calls == 3:
            raise KeyboardInterrupt
        return super().encode(video)


def test_interrupted_run_resumes_with_identical_numbers(tmp_path, ucf_mini):
    MODELS.register("interrupting-identity", _Interrupting, overwrite=True)
    spec = RunSpec("ucf101-recon", "interrupting-identity", results_root=str(tmp_path / "r"),
                   cache_root=str(tmp_path / "c"), batch_size=2, progress=False)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(spec)
        resumed = run(spec).result
        assert resumed["timing"]["reused"] == 4 and resumed["timing"]["computed"] == 12
        fresh = run(RunSpec("ucf101-recon", "interrupting-identity", results_root=str(tmp_path / "r2"),
                            cache_root=str(tmp_path / "c2"), batch_size=2, progress=False)).result
        assert fresh["metrics"] == resumed["metrics"]
        again = run(spec)
        assert again.skipped
    finally:
        MODELS.unregister("interrupting-identity")


def test_killed_process_resumes_from_the_cache(tmp_path, ucf_mini):
    """SIGKILL a real run mid-way; the restarted run reuses what was finished and ends with the same numbers."""
    script = tmp_path / "slow_run.py"
    script.write_text(
        "import sys, time\n"
        "from harness.registry import MODELS\n"
        "from models.baselines.downsample import DownsampleAdapter\n"
        "class Slow(DownsampleAdapter):\n"
        "    def encode(self, video):\n"
        "        time.sleep(0.4)\n"
        "        return super().encode(video)\n"
        "MODELS.register('slow-downsample', Slow)\n"
        "from harness.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    args = ["run", "--task", "ucf101-recon", "--model", "slow-downsample", "--results", str(tmp_path / "r"),
            "--cache", str(tmp_path / "c"), "--batch-size", "1", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "c").rglob("*.json"))) < 5:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list((tmp_path / "c").rglob("*.json")))
    assert 5 <= done_before < 16
    assert subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True).returncode == 0
    resumed = json.loads(next((tmp_path / "r").rglob("result.json")).read_text())
    assert resumed["timing"]["reused"] == done_before and resumed["status"] == "complete"
    plain = run(RunSpec("ucf101-recon", "downsample", results_root=str(tmp_path / "r2"),
                        cache_root=str(tmp_path / "c2"), progress=False)).result
    assert resumed["metrics"] == plain["metrics"]


def test_corrupt_and_truncated_videos_are_recorded_and_the_run_completes(tmp_path, ucf_mini):
    root = tmp_path / "ucf"
    shutil.copytree(ucf_mini, root)
    truncated = root / "UCF-101" / "Biking" / "v_Biking_g01_c01.avi"
    truncated.write_bytes(truncated.read_bytes()[:3000])
    corrupt = root / "UCF-101" / "JumpRope" / "v_JumpRope_g01_c02.avi"
    corrupt.write_bytes(b"RIFF" + os.urandom(5000))
    res = _run(["--task", "ucf101-recon", "--model", "downsample", "--data-root", str(root), "--results",
                str(tmp_path / "r")])
    assert res["status"] == "partial" and res["task"]["data"]["n_evaluated"] == 14
    assert res["failures"]["n"] == 2
    failed = {f["path"] for f in res["failures"]["items"]}
    assert failed == {str(truncated), str(corrupt)}
    assert all(str(f["path"]) in f["error"] for f in res["failures"]["items"])
    assert res["metrics"]["psnr_frame"]["n"] == 14
    assert main(["run", "--task", "ucf101-recon", "--model", "downsample", "--data-root", str(root), "--results",
                 str(tmp_path / "r3"), "--strict", "--no-progress"]) == 2


def test_missing_split_file_is_a_clear_error(tmp_path, ucf_mini, capsys):
    root = tmp_path / "ucf"
    shutil.copytree(ucf_mini, root)
    (root / "ucfTrainTestlist" / "testlist01.txt").unlink()
    assert main(["run", "--task", "ucf101-recon", "--model", "identity", "--data-root", str(root), "--results",
                 str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(root / "ucfTrainTestlist" / "testlist01.txt") in err and "crcv.ucf.edu" in err


def test_limit_takes_a_stratified_subset_and_is_marked(tmp_path, ucf_mini):
    res = _run(["--task", "ucf101-recon", "--model", "identity", "--limit", "8", "--results", str(tmp_path)])
    assert res["task"]["data"]["limited"] and res["task"]["data"]["n_evaluated"] == 8
    folder = next(tmp_path.glob("identity/*/*"))
    classes = {json.loads(line)["sample_id"].split("/")[0] for line in (folder / "samples.jsonl").open()}
    assert len(classes) == 8  # one per class, not the first 8 files
    assert main(["report", "--results", str(tmp_path)]) == 0
    assert "| identity" not in (tmp_path / "leaderboard.md").read_text()


def test_capability_mismatch_is_refused_before_any_work():
    class NeedsFeatures:
        name = "fake"
        requires = frozenset({"features"})

    with pytest.raises(CapabilityError, match="features"):
        check_capabilities(NeedsFeatures(), IdentityAdapter)


def test_unknown_names_fail_with_suggestions(capsys):
    assert main(["run", "--task", "ucf101-recn", "--model", "identity", "--no-progress"]) == 2
    assert "did you mean ucf101-recon" in capsys.readouterr().err


def test_pipelined_scoring_equals_serial_and_a_failed_batch_is_reevaluated_item_by_item(tmp_path, ucf_mini,
                                                                                        monkeypatch):
    """Reconstruction scores batch i on a helper thread while the model answers batch i + 1: same numbers as the
    serial path; a batch whose metrics crash is evaluated again item by item, so only the bad item is lost."""
    from tasks.reconstruction import ReconstructionTask

    def spec(name):
        return RunSpec("ucf101-recon", "downsample", results_root=str(tmp_path / name / "r"),
                       cache_root=str(tmp_path / name / "c"), batch_size=4, progress=False)

    monkeypatch.setattr(ReconstructionTask, "pipelined", False)
    serial = run(spec("serial")).result
    monkeypatch.setattr(ReconstructionTask, "pipelined", True)
    piped = run(spec("piped")).result
    assert piped["metrics"] == serial["metrics"] and piped["task"]["data"]["n_evaluated"] == 16

    real, seen = ReconstructionTask.score, []
    bad = sorted(json.loads(line)["sample_id"] for line in
                 next((tmp_path / "serial" / "r").glob("*/*/*/samples.jsonl")).read_text().splitlines())[5]

    def flaky(self, batch, prediction):
        seen.append(len(batch))
        if any(sample.id == bad for sample, _ in batch):
            raise RuntimeError("this item's metric crashed")
        return real(self, batch, prediction)

    monkeypatch.setattr(ReconstructionTask, "score", flaky)
    res = run(spec("flaky")).result
    # the bad item's batch: in the thread, again whole, then item by item; the three other batches once each
    assert sorted(seen) == [1, 1, 1, 1, 4, 4, 4, 4, 4]
    assert [f["sample_id"] for f in res["failures"]["items"]] == [bad]
    assert res["task"]["data"]["n_evaluated"] == 15 and res["status"] == "partial"
