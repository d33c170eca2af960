"""Sweeps: grid expansion and names, validation with file:line, done/missing from result files, the train hook, the
per-device scheduler, and refusal of unregistered tasks (while --dry-run still shows the cells)."""
import json
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import DataError, HarnessError
from harness.report.index import load_results
from harness.studies import sweep_run
from harness.studies.sweep_file import fill, load_sweep, variant_name
from harness.studies.sweep_run import (SweepOptions, TrainError, arg_text, check_registered, ensure_checkpoint,
                                       run_on_devices, run_sequential)
from harness.studies.sweep_file import TrainSpec
from harness.studies.sweep_status import cell_status
from models.base import parse_model_args
from tests.report_fixtures import UCF_PROTOCOL, fake_result, sample_values


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


GRID = """
    sweep: 1
    name: toy
    base:
      model: pyratok
      model_args: {codebook_bits: 16, align_levels: all}
      tasks: [ucf101-recon, davis]
    grid:
      task_args.num_frames: [9, 17]
      model_args.levels: [1, 2]
    default: {model_args.levels: 2, task_args.num_frames: 17}
"""


def test_grid_expands_to_variants_x_tasks_with_names_from_sorted_overrides(tmp_path):
    sw = load_sweep(write(tmp_path, GRID))
    assert [v.name for v in sw.variants] == ["levels=1+task.num_frames=9", "levels=1+task.num_frames=17",
                                             "levels=2+task.num_frames=9", "levels=2+task.num_frames=17"]
    assert len(sw.cells) == 8 and sw.cells[1].name == "levels=1+task.num_frames=9/davis"
    v = sw.variants[1]
    assert v.model_args == {"codebook_bits": 16, "align_levels": "all", "levels": 1} and v.task_args == {
        "num_frames": 17}
    assert sw.default.name == "levels=2+task.num_frames=17"
    # the same grid written in another key order gives the same names, in the same order
    swapped = GRID.replace("      task_args.num_frames: [9, 17]\n      model_args.levels: [1, 2]\n",
                           "      model_args.levels: [1, 2]\n      task_args.num_frames: [9, 17]\n")
    assert swapped != GRID
    assert [v.name for v in load_sweep(write(tmp_path, swapped, "b.yaml")).variants] == [v.name for v in sw.variants]
    assert variant_name({}) == "base" and variant_name({"model": "h264", "seed": 1}) == "model=h264+seed=1"
    assert variant_name({"model_args.align": [1, 2]}) == "align=[1,2]"


def test_task_args_layer_base_then_task_entry_then_grid(tmp_path):
    sw = load_sweep(write(tmp_path, """
        sweep: 1
        base:
          model: identity
          task_args: {num_frames: 9, resize: 64}
          tasks: [ucf101-recon, {name: davis, task_args: {resize: 96, crop: 96}, data_root: /data/DAVIS}]
        grid: {task_args.num_frames: [5]}
    """))
    ucf, davis = sw.cells
    assert ucf.task_args == {"num_frames": 5, "resize": 64} and ucf.task.data_root is None
    assert davis.task_args == {"num_frames": 5, "resize": 96, "crop": 96} and davis.task.data_root == "/data/DAVIS"


def test_explicit_cells_join_the_grid_and_duplicates_are_refused(tmp_path):
    sw = load_sweep(write(tmp_path, """
        sweep: 1
        base: {model: identity, tasks: [ucf101-recon]}
        grid: {model_args.levels: [1, 2]}
        cells:
          - {model_args.levels: 6, model_args.residual_stages: 2}
    """))
    assert sw.name == "sweep" and [v.name for v in sw.variants] == ["levels=1", "levels=2",
                                                                   "levels=6+residual_stages=2"]
    with pytest.raises(DataError, match="listed twice") as exc:
        load_sweep(write(tmp_path, """
            sweep: 1
            base: {model: identity, tasks: [ucf101-recon]}
            grid: {model_args.levels: [1, 2]}
            cells:
              - {model_args.levels: 2}
        """, "dup.yaml"))
    assert exc.value.line == 5


@pytest.mark.parametrize("text, message, line", [
    ("sweep: 1\nbase: {model: m, tasks: [t]}\ngrdi: {}\n", "unknown key 'grdi'", 3),
    ("sweep: 1\nbase:\n  model: m\n  tasks: [t]\n  sed: 3\n", "unknown key 'sed'", 5),
    ("sweep: 1\nbase: {model: m, tasks: [t]}\ngrid:\n  model_args.levels: 4\n", "must be a non-empty list", 4),
    ("sweep: 1\nbase: {model: m, tasks: [t]}\ngrid:\n  levels: [1, 2]\n", "cannot vary 'levels'", 4),
    ("sweep: 1\nbase: {model: m, tasks: [t], seed: one}\n", "base.seed must be int", 2),
    ("sweep: 1\nbase: {model: m, tasks: []}\n", "non-empty list", 2),
    ("base: {model: m, tasks: [t]}\n", "missing 'sweep: 1'", 1),
    ("sweep: 2\nbase: {model: m, tasks: [t]}\n", "format 2 is not supported", 1),
    ("sweep: 1\nbase: {model: m, tasks: [t]\n", "not valid YAML", 3),
    ("sweep: 1\nbase: !!python/object/apply:os.system ['true']\n", "not valid YAML", 2),
    ("sweep: 1\nbase: {model: m, tasks: [t]}\ngrid: {model_args.levels: [1, 2]}\ndefault: {model_args.levels: 3}\n",
     "exactly one variant", 4),
    ("sweep: 1\nbase: {model: m, tasks: [t]}\ntrain: {checkpoint: 'c/{model_args.levls}.pt', command: [x]}\n",
     "names {model_args.levls}", 3),
    ("sweep: 1\nbase: {model: m, tasks: [t]}\ntrain: {checkpoint: c.pt, command: 'python train.py'}\n",
     "no shell string", 3),
    ("sweep: 1\nbase: {tasks: [t]}\n", "base.model is missing", 2),
])
def test_validation_names_the_file_line_and_problem(tmp_path, text, message, line):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as exc:
        load_sweep(path)
    assert message in str(exc.value) and str(path) in str(exc.value)
    assert exc.value.line == line


def test_templates_and_arg_round_trip():
    assert fill("ckpt/L{model_args.levels}-{{x}}", {"model_args.levels": "3"}) == "ckpt/L3-{x}"
    with pytest.raises(KeyError):
        fill("{nope}", {})
    for value in (3, 0.25, "last", "none", "yes", "null", "1", [1, 2], {"a": 1}, True, None, "a b", "x: y"):
        assert parse_model_args([f"k={arg_text(value)}"]) == {"k": value}


# ---------------------------------------------------------------------------------------------------------------
def test_status_matches_results_on_named_args_protocol_seed_and_limit(tmp_path):
    sw = load_sweep(write(tmp_path, """
        sweep: 1
        base: {model: tok, model_args: {bits: 16}, tasks: [ucf101-recon]}
        grid: {model_args.levels: [1, 2, 3]}
    """))
    res = tmp_path / "results"
    fake_result(res, "tok", sample_values(), args={"bits": 16, "levels": 1, "tile": 256})
    fake_result(res, "tok", sample_values(), args={"bits": 16, "levels": 2}, protocol={**UCF_PROTOCOL,
                                                                                       "num_frames": 9})
    fake_result(res, "tok", sample_values(), args={"bits": 16, "levels": 3}, limit=4)
    fake_result(res, "tok", sample_values(), args={"bits": 16, "levels": 3}, status="partial",
                created_at="2026-02-01T00:00:00+00:00")
    refs = load_results(res)
    states = [cell_status(c, refs) for c in sw.cells]
    assert [s.state for s in states] == ["done", "missing", "partial"]
    assert states[0].ref.model_args["tile"] == 256  # args the sweep does not name are not compared
    # two done results differing in an unpinned arg: the newest is used, and the status says so
    fake_result(res, "tok", sample_values(), args={"bits": 16, "levels": 1, "tile": 128},
                created_at="2026-03-01T00:00:00+00:00")
    st = cell_status(sw.cells[0], load_results(res))
    assert st.done and st.ref.model_args["tile"] == 128 and "tile" in st.note


def test_task_args_cells_match_their_protocol(tmp_path):
    sw = load_sweep(write(tmp_path, """
        sweep: 1
        base: {model: tok, tasks: [ucf101-recon]}
        grid: {task_args.num_frames: [9, 17]}
    """))
    res = tmp_path / "r"
    fake_result(res, "tok", sample_values(), protocol={**UCF_PROTOCOL, "num_frames": 9})
    states = [cell_status(c, load_results(res)) for c in sw.cells]
    assert [s.state for s in states] == ["done", "missing"]


def test_not_applicable_cells_settle_the_sweep(tmp_path, monkeypatch, capsys):
    """A model without language on a text-only task is recorded as n/a: the sweep has nothing left to run and exits
    0; a missing cell still makes it exit 1."""
    from harness.report.index import standard_protocol

    path = write(tmp_path, """
        sweep: 1
        base: {model: identity, tasks: [msrvtt-retrieval, ucf101-recon]}
    """)
    res = tmp_path / "r"
    fake_result(res, "identity", {}, task="msrvtt-retrieval", family="retrieval", status="not_applicable",
                protocol=standard_protocol("msrvtt-retrieval", {}))
    sw = load_sweep(path)
    states = [cell_status(c, load_results(res)) for c in sw.cells]
    assert [(s.state, s.done, s.settled) for s in states] == [("n/a", False, True), ("missing", False, False)]
    monkeypatch.setattr(sweep_run, "run_sequential", lambda cells, opts, log: [
        sweep_run.CellOutcome(c, "skipped") for c in cells])
    argv = ["sweep", str(path), "--results", str(res), "--no-progress"]
    assert main([*argv, "--tasks", "msrvtt-retrieval"]) == 0
    assert main(argv) == 1
    assert "1 missing, 1 n/a" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
STANDIN = ("import pathlib, sys; p = pathlib.Path(sys.argv[1]); p.write_text('weights'); "
           "open(sys.argv[2], 'a').write(sys.argv[1] + chr(10))")


def test_train_hook_runs_only_for_a_missing_checkpoint(tmp_path):
    log = tmp_path / "calls.txt"
    spec = TrainSpec(str(tmp_path / "ck" / "a.pt"), (sys.executable, "-c", STANDIN, str(tmp_path / "ck" / "a.pt"),
                                                     str(log)))
    assert ensure_checkpoint(spec, lambda m: None) is True
    assert ensure_checkpoint(spec, lambda m: None) is False  # present now: not trained again
    assert log.read_text().count("a.pt") == 1
    failing = TrainSpec(str(tmp_path / "b.pt"), (sys.executable, "-c", "raise SystemExit(3)"))
    with pytest.raises(TrainError, match="exit status 3"):
        ensure_checkpoint(failing, lambda m: None)
    lazy = TrainSpec(str(tmp_path / "c.pt"), (sys.executable, "-c", "pass"))
    with pytest.raises(TrainError, match="did not write"):
        ensure_checkpoint(lazy, lambda m: None)


@pytest.mark.slow
def test_sweep_trains_evaluates_and_skips_completed_cells(tmp_path, ucf_mini, monkeypatch):
    monkeypatch.chdir(tmp_path)
    counter = tmp_path / "trained.txt"
    path = write(tmp_path, f"""
        sweep: 1
        name: hook
        base: {{model: identity, tasks: [ucf101-recon], limit: 2}}
        grid: {{model_args.tag: [a, b]}}
        train:
          checkpoint: "ck/{{cell}}.pt"
          command: ["{{python}}", "-c", "{STANDIN}", "{{checkpoint}}", "{counter}"]
          model_arg: checkpoint
    """)
    sw = load_sweep(path)
    assert sw.variants[0].model_args == {"tag": "a", "checkpoint": "ck/tag=a.pt"}
    opts = SweepOptions(results_root=str(tmp_path / "res"), progress=False)
    first = run_sequential(sw.cells, opts, lambda m: None)
    assert [o.state for o in first] == ["complete", "complete"]
    assert sorted(counter.read_text().split()) == ["ck/tag=a.pt", "ck/tag=b.pt"]
    result = json.loads(first[0].path.read_text())
    assert result["model"]["args"]["checkpoint"] == "ck/tag=a.pt" and result["task"]["data"]["limited"]
    again = run_sequential(sw.cells, opts, lambda m: None)
    assert [o.state for o in again] == ["skipped", "skipped"]
    assert len(counter.read_text().split()) == 2  # checkpoints present: no training the second time
    assert all(cell_status(c, load_results(tmp_path / "res")).done for c in sw.cells)


def test_devices_place_one_cell_per_device_with_cuda_visible_devices(tmp_path, monkeypatch):
    sw = load_sweep(write(tmp_path, """
        sweep: 1
        base: {model: identity, tasks: [ucf101-recon]}
        grid: {model_args.k: [1, 2, 3, 4, 5]}
    """))
    seen = tmp_path / "seen"
    seen.mkdir()

    def fake_command(cell, opts, device):
        code = ("import os, sys, pathlib; pathlib.Path(sys.argv[1]).write_text(os.environ['CUDA_VISIBLE_DEVICES'] "
                "+ ' ' + sys.argv[2]); sys.exit(4 if sys.argv[3] == '5' else 0)")
        return [sys.executable, "-c", code, str(seen / cell.variant.name), device, str(cell.model_args["k"])]

    monkeypatch.setattr(sweep_run, "run_command", fake_command)
    opts = SweepOptions(devices=["0", "1"], logs_root=str(tmp_path / "logs"))
    out = run_on_devices("toy", sw.cells, opts, lambda m: None)
    assert [o.cell.variant.name for o in out] == [f"k={i}" for i in range(1, 6)]  # reported in sweep order
    assert [o.state for o in out] == ["ran"] * 4 + ["error"] and "exit status 4" in out[-1].error
    used = {(seen / f"k={i}").read_text() for i in range(1, 6)}
    assert {u.split()[0] for u in used} == {"0", "1"} and all(u.endswith("cuda") for u in used)
    assert (tmp_path / "logs" / "toy" / "k=5__ucf101-recon.log").exists()


def test_unregistered_task_fails_clearly_but_dry_run_shows_the_cells(tmp_path, capsys):
    path = write(tmp_path, """
        sweep: 1
        base: {model: identity, tasks: [ucf101-recon, davis-not-here]}
        grid: {model_args.k: [1, 2]}
    """)
    sw = load_sweep(path)
    with pytest.raises(HarnessError, match="task davis-not-here"):
        check_registered(sw, sw.cells)
    assert main(["sweep", str(path), "--results", str(tmp_path / "r")]) == 2
    assert "davis-not-here" in capsys.readouterr().err
    assert main(["sweep", str(path), "--dry-run", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "k=1/davis-not-here" in out and "task davis-not-here is not registered" in out
    assert "summary: 4 missing" in out and "--model-arg k=1" in out
    check_registered(sw, [c for c in sw.cells if c.task.name == "ucf101-recon"])  # --tasks would run these


def test_shipped_sweeps_load_and_describe_the_paper_ablations():
    root = Path(__file__).resolve().parent.parent / "sweeps"
    levels = load_sweep(root / "ablation-levels.yaml")
    assert [v.model_args["levels"] for v in levels.variants] == [1, 2, 3, 4] and levels.default.name == "levels=4"
    bits = load_sweep(root / "ablation-codebook-bits.yaml")
    # bits per stage x 5 residual stages: 10/15/20/25 bits per token
    assert [v.model_args["codebook_bits"] * v.model_args["residual_stages"] for v in bits.variants] == [10, 15, 20, 25]
    align = load_sweep(root / "ablation-align.yaml")
    assert [v.model_args["align_levels"] for v in align.variants] == ["none", "last", "all"]
    for sw in (levels, bits, align):
        assert [t.name for t in sw.tasks][0] == "ucf101-recon" and {"k400-cls", "msrvtt-retrieval"} & {t.name for t in sw.tasks}
        assert all(v.model_args["steps"] == 200 and "-s200" in v.train.checkpoint for v in sw.variants)  # one recipe
        assert all(v.train and v.model_args["checkpoint"] == v.train.checkpoint for v in sw.variants)
    # the default configuration is the same checkpoint in all three ablations (trained once)
    assert levels.default.train.checkpoint == bits.default.train.checkpoint == align.default.train.checkpoint
    ref = load_sweep(root / "reference.yaml")
    assert {"identity", "downsample", "h264"} <= {c.model for c in ref.cells} and ref.default is None
    assert {c.task.name for c in ref.cells if c.model == "h264"} == {t.name for t in ref.tasks}
