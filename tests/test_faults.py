"""The fault matrix: each fault is reported precisely and nothing already computed is lost."""
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import harness.io
from harness.cli import main
from harness.errors import HarnessError
from harness.io import safe_join
from harness.registry import MODELS
from harness.results import safe_name
from harness.runner import RunSpec, run
from harness.video import write_video
from models.base import parse_model_args
from models.baselines.identity import IdentityAdapter
from tests.conftest import moving_frames

ROOT = Path(__file__).resolve().parent.parent
FLAWED_ID = "JumpingJack/v_JumpingJack_g01_c01"


@pytest.fixture
def ucf_copy(tmp_path, ucf_mini) -> Path:
    root = tmp_path / "ucf"
    shutil.copytree(ucf_mini, root)
    return root


def _spec(tmp_path, model, **kw) -> RunSpec:
    return RunSpec("ucf101-recon", model, results_root=str(tmp_path / "r"), cache_root=str(tmp_path / "c"),
                   progress=False, **kw)


def test_zero_length_and_unknown_codec_videos_are_recorded(ucf_copy, tmp_path):
    empty = ucf_copy / "UCF-101" / "Biking" / "v_Biking_g01_c02.avi"
    empty.write_bytes(b"")
    alien = ucf_copy / "UCF-101" / "Hammering" / "v_Hammering_g01_c01.avi"
    # a valid AVI whose video stream declares a codec (fourcc) FFmpeg has no decoder for
    write_video(alien, moving_frames(20, 32, 32), 25, codec="mpeg4", codec_tag="XVID")
    alien.write_bytes(alien.read_bytes().replace(b"XVID", b"QQQQ"))
    res = run(_spec(tmp_path, "downsample", data_root=str(ucf_copy))).result
    assert res["status"] == "partial" and res["task"]["data"]["n_evaluated"] == 14
    errors = {f["path"]: f["error"] for f in res["failures"]["items"]}
    assert set(errors) == {str(empty), str(alien)}
    assert "unsupported codec" in errors[str(alien)]


class _Broken(IdentityAdapter):
    """Answers NaN for one clip and a wrongly shaped video for another (recognised by their mean value), inside
    batches with healthy clips: the runner must retry the batch item by item and fail only those two."""

    nan_key = shape_key = None

    def reconstruct(self, video):
        tokens, out = super().reconstruct(video)
        keys = [round(float(v.mean()), 5) for v in video]
        if self.nan_key in keys:
            out = out.clone()
            out[keys.index(self.nan_key)] = float("nan")
        if self.shape_key in keys:
            out = out[:, :, :-1]
        return tokens, out


def test_nan_and_wrong_shape_outputs_fail_only_their_samples(tmp_path, ucf_mini):
    from harness.runner import build_task
    from harness.video import to_model_input

    task = build_task("ucf101-recon")
    samples = sorted(task.samples(ucf_mini).samples, key=lambda s: s.id)
    key = lambda s: round(float(to_model_input(task.load(s)["frames"]).mean()), 5)  # noqa: E731
    _Broken.nan_key, _Broken.shape_key = key(samples[2]), key(samples[9])
    MODELS.register("broken", _Broken, overwrite=True)
    try:
        res = run(_spec(tmp_path, "broken", batch_size=4)).result
    finally:
        MODELS.unregister("broken")
    failed = {f["sample_id"]: f["error"] for f in res["failures"]["items"]}
    assert set(failed) == {samples[2].id, samples[9].id}
    assert "NaN" in failed[samples[2].id] and "shape" in failed[samples[9].id]
    assert res["task"]["data"]["n_evaluated"] == 14 and res["status"] == "partial"
    assert res["metrics"]["ssim"]["value"] == 1.0


def test_full_disk_while_writing_the_result_leaves_nothing_half_written(tmp_path, ucf_mini, monkeypatch):
    real = harness.io.atomic_path

    def failing_atomic_path(path):
        if Path(path).name == "result.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path)

    monkeypatch.setattr(harness.io, "atomic_path", failing_atomic_path)
    with pytest.raises(HarnessError, match="No space left on device") as err:
        run(_spec(tmp_path, "identity"))
    assert "in the cache" in str(err.value)
    assert not list((tmp_path / "r").rglob("result.json"))
    assert not list((tmp_path / "r").rglob("*.tmp"))
    monkeypatch.setattr(harness.io, "atomic_path", real)
    res = run(_spec(tmp_path, "identity")).result
    assert res["timing"]["reused"] == 16 and res["status"] == "complete"


def test_full_disk_while_caching_is_a_clear_error(tmp_path, ucf_mini, monkeypatch):
    from harness.cache import SampleCache

    def no_space(self, sample, record):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SampleCache, "put", no_space)
    with pytest.raises(HarnessError, match="cannot write to the cache"):
        run(_spec(tmp_path, "identity"))


def test_two_runs_writing_the_same_results_folder(tmp_path, ucf_mini, cache_root):
    args = [sys.executable, "-m", "harness", "run", "--task", "ucf101-recon", "--model", "downsample",
            "--results", str(tmp_path / "r"), "--cache", str(tmp_path / "c"), "--no-progress"]
    env = dict(os.environ, PYRATOK_BENCH_CACHE=str(cache_root))
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    results = list((tmp_path / "r").rglob("result.json"))
    assert len(results) == 1
    res = json.loads(results[0].read_text())
    assert res["status"] == "complete" and res["task"]["data"]["n_evaluated"] == 16
    rows = (results[0].parent / "samples.jsonl").read_text().splitlines()
    assert len(rows) == 16 and all(json.loads(r)["sample_id"] for r in rows)
    assert not list((tmp_path / "r").rglob("*.tmp")) and not list((tmp_path / "c").rglob("*.tmp"))


def test_names_from_outside_never_escape_their_folder(tmp_path):
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert "/" not in safe_name("a/b") and safe_name("..") == "_"
    assert safe_join(tmp_path, "seq", "00001.png") == tmp_path.resolve() / "seq" / "00001.png"
    for bad in (["..", "x"], ["/etc/passwd"], ["a/../../b"]):
        with pytest.raises(ValueError, match="escape"):
            safe_join(tmp_path, *bad)


def test_yaml_model_args_are_parsed_safely():
    assert parse_model_args(["levels=3", "align=[1, 2]", "name=x"]) == {"levels": 3, "align": [1, 2], "name": "x"}
    import yaml

    with pytest.raises(yaml.YAMLError):
        parse_model_args(["evil=!!python/object/apply:os.system ['true']"])


def test_a_run_makes_no_network_connection(tmp_path, ucf_mini, monkeypatch):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"

    def refuse(*args, **kwargs):
        raise AssertionError(f"network connection attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert run(_spec(tmp_path, "identity", limit=4)).result["status"] == "complete"


def test_strict_stops_at_the_first_fault(ucf_copy, tmp_path):
    (ucf_copy / "UCF-101" / "Biking" / "v_Biking_g01_c02.avi").write_bytes(b"")
    code = main(["run", "--task", "ucf101-recon", "--model", "identity", "--data-root", str(ucf_copy), "--strict",
                 "--results", str(tmp_path / "r"), "--cache", str(tmp_path / "c"), "--no-progress"])
    assert code == 2 and not list((tmp_path / "r").rglob("result.json"))
