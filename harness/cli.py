"""`python -m harness <command>`: list, run, train, make-mini, report, score.

Errors the user can act on (a missing split file, an unknown task name, a capability mismatch) are printed in one line
with exit status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.registry import UnknownNameError


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="evaluate a model on a task and write a versioned result")
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--model-arg", action="append", default=[], metavar="K=V", help="model argument (repeatable)")
    p.add_argument("--task-arg", action="append", default=[], metavar="K=V",
                   help="protocol override (repeatable; recorded, and part of the result's identity)")
    p.add_argument("--data-root", help="the data set's folder in its real layout (default: the mini split)")
    p.add_argument("--limit", type=int, help="evaluate a deterministic stratified subset of N samples (testing only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes for decoding")
    p.add_argument("--device", default="cpu")
    p.add_argument("--results", default="results", help="results folder (default: results/)")
    p.add_argument("--cache", help="cache folder (default: $PYRATOK_BENCH_CACHE or ~/.cache/pyratok-bench)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad item instead of recording it")
    p.add_argument("--overwrite", action="store_true", help="evaluate again even if a complete result exists")
    p.add_argument("--no-progress", action="store_true")


def cmd_run(args) -> int:
    from harness.runner import RunSpec, run
    from models.base import parse_model_args

    spec = RunSpec(task=args.task, model=args.model, model_args=parse_model_args(args.model_arg),
                   task_args=parse_model_args(args.task_arg), data_root=args.data_root, limit=args.limit,
                   seed=args.seed, batch_size=args.batch_size, workers=args.workers, device=args.device,
                   results_root=args.results, cache_root=args.cache, strict=args.strict, overwrite=args.overwrite,
                   progress=not args.no_progress)
    outcome = run(spec)
    print(metrics_table(outcome.result))
    print(f"result: {outcome.path}")
    return 0


def metrics_table(result: dict) -> str:
    from harness.report.leaderboard import arrow, format_value

    lines = [f"{result['task']['name']}@v{result['task']['version']}  x  {result['model']['id']}  "
             f"({result['task']['data']['n_evaluated']} samples, status {result['status']})"]
    for name, m in result["metrics"].items():
        lines.append(f"  {name:<40} {format_value(m):>24} {arrow(m)}")
    return "\n".join(lines)


def cmd_list(args) -> int:
    from harness.registry import DATASETS, MODELS, TASKS

    print("Tasks:")
    for name in TASKS.names():
        try:
            t = TASKS.get(name)
            print(f"  {name:<22} {t.family:<15} data={t.dataset:<12} needs={','.join(sorted(t.requires))}")
        except Exception as exc:  # a broken plugin must not hide the others
            print(f"  {name:<22} (cannot load: {exc})")
    print("Models:")
    for name in MODELS.names():
        try:
            m = MODELS.get(name)
            md = getattr(m, "metadata", None)
            caps = ",".join(sorted(getattr(m, "capabilities", [])))
            extra = ""
            if md is not None:
                comp = "x".join(map(str, md.compression)) if md.compression else "-"
                extra = f" {md.display_name} | family={md.family} compression={comp} code_bits={md.code_bits}"
            print(f"  {name:<22} [{caps}]{extra}")
        except Exception as exc:
            print(f"  {name:<22} (cannot load: {exc})")
    print("Data sets:", ", ".join(DATASETS.names()))
    return 0


def cmd_make_mini(args) -> int:
    from harness.dataset import write_mini

    out = write_mini(args.dataset, args.out, args.seed)
    print(f"wrote the {args.dataset} mini split to {out}")
    return 0


def cmd_check_data(args) -> int:
    from harness.check import check_dataset, check_task
    from harness.io import write_json

    if bool(args.task) == bool(args.dataset):
        raise HarnessError("check-data needs exactly one of --task or --dataset")
    if args.task:
        report = check_task(args.task, args.data_root, args.strict, not args.no_progress)
    else:
        report = check_dataset(args.dataset, args.data_root, args.strict, not args.no_progress)
    print(report.summary())
    if args.json:
        write_json(args.json, report.as_dict())
    return 0 if report.ok else 1


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model that ships a trainer (e.g. pyratok)")
    p.add_argument("--model", required=True)
    p.add_argument("--config", default="tiny", help="the model's named training configuration")
    p.add_argument("--data", default="ucf101", help="training data source(s), comma-separated")
    p.add_argument("--data-root", help="the data set's folder in its real layout (default: the mini split)")
    p.add_argument("--out", help="checkpoint folder (default: runs/<model>-<config>)")
    p.add_argument("--model-arg", action="append", default=[], metavar="K=V",
                   help="model or training argument overriding the configuration (repeatable)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache", help="cache folder (mini splits; default: $PYRATOK_BENCH_CACHE)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if --out holds a checkpoint")
    p.add_argument("--time-limit-min", type=float, default=0.0, help="stop (and save) after this many minutes")
    p.add_argument("--export", help="also write the final weights as <EXPORT>.safetensors + <EXPORT>.json")
    p.add_argument("--no-progress", action="store_true")


def cmd_train(args) -> int:
    """Dispatch to the model's own trainer: the registered class names it in its `trainer` attribute (a callable or
    a lazy "module:function" string), so the engine stays model-agnostic."""
    from harness.registry import MODELS, load_object
    from models.base import parse_model_args

    cls = MODELS.get(args.model)
    entry = getattr(cls, "trainer", None)
    if entry is None:
        raise HarnessError(f"model {args.model} has no trainer (its adapter class sets no `trainer`)")
    trainer = load_object(entry) if isinstance(entry, str) else entry
    return int(trainer(config=args.config, data=args.data, data_root=args.data_root, out=args.out,
                       model_args=parse_model_args(args.model_arg), resume=not args.no_resume,
                       progress=not args.no_progress, cache_root=args.cache, device=args.device,
                       time_limit_min=args.time_limit_min, export=args.export) or 0)


def cmd_report(args) -> int:
    from harness.report.leaderboard import write_leaderboard

    path = write_leaderboard(args.results, include_limited=args.include_limited)
    print(path.read_text())
    print(f"written: {path}")
    return 0


def _add_score(sub) -> None:
    from harness.score import SCORERS

    p = sub.add_parser("score", help="score external predictions with the tasks' metric code")
    kinds = p.add_subparsers(dest="kind", required=True)
    for name in SCORERS.names():
        scorer = SCORERS.get(name)()
        kp = kinds.add_parser(name, help=scorer.help)
        scorer.add_arguments(kp)
        kp.add_argument("--json", help="write the numbers to this JSON file")
        kp.set_defaults(scorer=scorer)


def cmd_score(args) -> int:
    from harness.io import write_json

    result = args.scorer.score(args)
    print(args.scorer.table(result))
    if args.json:
        write_json(args.json, result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered tasks, models and data sets")
    _add_run(sub)
    _add_train(sub)
    p = sub.add_parser("make-mini", help="write a data set's mini split in its real layout")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("check-data", help="verify a data set copy: split files, missing files, undecodable items")
    p.add_argument("--task", help="check the split this task evaluates, with its reader and loader")
    p.add_argument("--dataset", help="check every split and annotation file of a data set")
    p.add_argument("--data-root", help="the copy to check (default: the mini split)")
    p.add_argument("--strict", action="store_true", help="stop at the first problem")
    p.add_argument("--json", help="write the report to this JSON file")
    p.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("report", help="leaderboard from the result files")
    p.add_argument("--results", default="results")
    p.add_argument("--include-limited", action="store_true")
    _add_score(sub)
    return parser


COMMANDS = {"list": cmd_list, "run": cmd_run, "train": cmd_train, "make-mini": cmd_make_mini,
            "check-data": cmd_check_data,
            "report": cmd_report, "score": cmd_score}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (HarnessError, UnknownNameError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
