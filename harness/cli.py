"""`python -m harness <command>`: list, run, train, generate, make-mini, check-data, score, sweep, scale, missing,
report.

Errors the user can act on (a missing split file, an unknown task name, a capability mismatch) are printed in one line
with exit status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys

from harness.errors import HarnessError
from harness.registry import UnknownNameError
from harness.studies.commands import add_parsers as add_study_parsers


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
    p.add_argument("--cache", help="per-sample answer cache (default: $PYRATOK_BENCH_CACHE or ~/.cache/pyratok-bench; "
                                   "mini splits always live under $PYRATOK_BENCH_CACHE/mini)")
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
    if outcome.result:  # only rank 0 of a torchrun job holds the result
        print(metrics_table(outcome.result))
        print(f"result: {outcome.path}")
    return 0


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="write a generation task's videos and manifest.json into a folder (resumable)")
    p.add_argument("--task", required=True)
    p.add_argument("--model", help="a generative adapter (not needed with --plan-only)")
    p.add_argument("--model-arg", action="append", default=[], metavar="K=V", help="model argument (repeatable)")
    p.add_argument("--task-arg", action="append", default=[], metavar="K=V", help="protocol override (repeatable)")
    p.add_argument("--out", required=True, help="the folder to write <sample_id>-<seed_index>.mp4 and manifest.json")
    p.add_argument("--data-root", help="the data set's folder in its real layout (default: the mini split)")
    p.add_argument("--limit", type=int, help="a deterministic stratified subset of N prompts (testing only)")
    p.add_argument("--seed", type=int, default=0, help="run seed; each video's seed derives from it and its sample")
    p.add_argument("--batch-size", type=int, help="prompts per generate request")
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="generate every video again, even those present")
    p.add_argument("--plan-only", action="store_true",
                   help="write only the manifest (prompts, seeds, file names): the plan for an external generator")
    p.add_argument("--no-progress", action="store_true")


def cmd_generate(args) -> int:
    from harness.generate import GenerateSpec, generate
    from models.base import parse_model_args

    spec = GenerateSpec(task=args.task, out=args.out, model=args.model, model_args=parse_model_args(args.model_arg),
                        task_args=parse_model_args(args.task_arg), data_root=args.data_root, limit=args.limit,
                        seed=args.seed, batch_size=args.batch_size, device=args.device, overwrite=args.overwrite,
                        plan_only=args.plan_only, progress=not args.no_progress)
    outcome = generate(spec)
    print(f"manifest: {outcome.manifest} ({outcome.written} videos written, {outcome.skipped} already there)")
    return 0


def metrics_table(result: dict) -> str:
    from harness.report.leaderboard import arrow, format_value

    lines = [f"{result['task']['name']}@v{result['task']['version']}  x  {result['model']['id']}  "
             f"({result['task']['data']['n_evaluated']} samples, status {result['status']})"]
    if result.get("reason"):
        lines.append(f"  not applicable: {result['reason']}")
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
            print("\n".join(model_summary(name, MODELS.get(name))))
        except Exception as exc:
            print(f"  {name:<22} (cannot load: {exc})")
    print("Data sets:", ", ".join(DATASETS.names()))
    return 0


def model_summary(name: str, model_cls) -> list[str]:
    """Two lines for `list`: name, display name and capabilities; then family, compression, code, parameters,
    license and source from the adapter's metadata (numbers that depend on the input, such as tokens per clip or
    bits per pixel, are measured in each run and shown in its result)."""
    caps = ", ".join(sorted(getattr(model_cls, "capabilities", [])))
    md = getattr(model_cls, "metadata", None)
    if md is None:
        return [f"  {name:<22} [{caps}]"]
    comp = "x".join(map(str, md.compression)) if md.compression else "no fixed grid"
    if md.latent_channels and not md.discrete:
        code = f"{md.latent_channels}-channel continuous latent (bpp n/a)"
    elif md.code_bits:
        code = f"{md.code_bits} bit/token"
    else:
        code = "entropy-coded bits" if md.family == "codec" else "code: -"
    params = "no learned parameters" if md.family in ("codec", "reference") else "parameters counted when loaded"
    details = " | ".join(x for x in (md.family, comp, code, params, md.license, md.source) if x)
    return [f"  {name:<22} {md.display_name}  [{caps}]", f"  {'':<22} {details}"]


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
    _add_generate(sub)
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
    _add_score(sub)
    add_study_parsers(sub)  # sweep, scale, missing, report
    return parser


COMMANDS = {"list": cmd_list, "run": cmd_run, "train": cmd_train, "generate": cmd_generate, "make-mini": cmd_make_mini,
            "check-data": cmd_check_data, "score": cmd_score}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return (getattr(args, "handler", None) or COMMANDS[args.command])(args)
    except (HarnessError, UnknownNameError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
