"""`python -m harness report`: every report, built only from the files under the results folder.

    <results>/leaderboard.{md,csv,tex,html}      the board (harness/report/board.yaml), gated on completeness
    <results>/ablations/<sweep>.{md,csv,tex}     one per sweep file with a default variant and at least one result
    <results>/scaling/scaling_*.{png,svg}        from <results>/scaling/*.json (written by `harness scale`)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.io import write_text
from harness.report.ablation import AblationTable, build_ablation
from harness.report.board import Board, build_board
from harness.report.html import board_html
from harness.report.index import load_results
from harness.report.plots import write_scaling_plots
from harness.report.render import (ablation_csv, ablation_markdown, ablation_tex, board_csv, board_markdown,
                                   board_tex, md_text, rel_link)
from harness.report.schema import BoardSchema, load_schema
from harness.studies.sweep_file import load_sweep


@dataclass
class ReportOutput:
    board: Board
    written: list[Path] = field(default_factory=list)
    ablations: list[AblationTable] = field(default_factory=list)
    skipped_sweeps: list[str] = field(default_factory=list)


def sweep_files(sweeps: list[str | Path]) -> list[Path]:
    """Sweep YAML files from files and folders (a folder contributes its *.yaml, sorted)."""
    out: list[Path] = []
    for s in sweeps:
        p = Path(s)
        if p.is_dir():
            out += sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))
        elif p.exists():
            out.append(p)
        else:
            raise HarnessError(f"sweep file {p} not found")
    return out


def write_ablation(table: AblationTable, schema: BoardSchema, out_dir: Path) -> list[Path]:
    stem = out_dir / table.sweep.name
    files = {stem.with_suffix(".md"): ablation_markdown(table, schema, out_dir),
             stem.with_suffix(".csv"): ablation_csv(table, out_dir),
             stem.with_suffix(".tex"): ablation_tex(table, schema)}
    for path, text in files.items():
        write_text(path, text)
    return list(files)


def ablation_tables(paths: list[Path], refs, require_results: bool = True) -> tuple[list[AblationTable], list[str]]:
    tables, skipped = [], []
    for path in paths:
        sweep = load_sweep(path)
        if sweep.default is None:  # not an ablation (e.g. the reference sweep): nothing to compare against
            if not require_results:
                skipped.append(f"{path}: no default variant to compare against")
            continue
        table = build_ablation(sweep, refs)
        if require_results and not table.has_results:
            skipped.append(f"{path}: no results yet")
            continue
        tables.append(table)
    return tables, skipped


def write_report(results: str | Path = "results", schema_path: str | Path | None = None,
                 sweeps: list[str | Path] | None = None, include_limited: bool = False) -> ReportOutput:
    root = Path(results)
    root.mkdir(parents=True, exist_ok=True)
    schema = load_schema(schema_path)
    refs = load_results(root)
    board = build_board(root, schema, refs, include_limited)
    out = ReportOutput(board)

    tables, out.skipped_sweeps = ablation_tables(sweep_files(sweeps or []), refs)
    ablation_dir = root / "ablations"
    for t in tables:
        out.written += write_ablation(t, schema, ablation_dir)
    out.ablations = tables
    plots = write_scaling_plots(root / "scaling") if (root / "scaling").is_dir() else []
    out.written += plots

    extras: list[str] = []
    if tables:
        extras += ["## Ablations", ""]
        for t in tables:
            md = ablation_dir / f"{t.sweep.name}.md"
            done = sum(s.done for s in t.statuses)
            extras.append(f"- [{md_text(t.sweep.name)}]({rel_link(md, root)}) — {done}/{len(t.statuses)} cells "
                          f"done (also [CSV]({rel_link(md.with_suffix('.csv'), root)}), "
                          f"[LaTeX]({rel_link(md.with_suffix('.tex'), root)}))")
        extras.append("")
    svgs = [p for p in plots if p.suffix == ".svg"]
    if svgs:
        extras += ["## Resolution scaling", ""]
        extras += [f"![{md_text(p.stem)}]({rel_link(p, root)})" for p in svgs] + [""]
    files = {root / "leaderboard.md": board_markdown(board, root, extras),
             root / "leaderboard.csv": board_csv(board, root),
             root / "leaderboard.tex": board_tex(board),
             root / "leaderboard.html": board_html(board, root, tables, svgs)}
    for path, text in files.items():
        write_text(path, text)
    out.written = list(files) + out.written
    return out
