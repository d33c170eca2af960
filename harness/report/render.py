"""Markdown, CSV and LaTeX renderings of the board and of ablation tables.

Every piece of text that comes from a result file (model names, args, task names) is escaped for the target format:
HTML entities and `|` in Markdown, LaTeX specials in TeX, and spreadsheet formula prefixes in CSV.
"""
from __future__ import annotations

import csv
import html
import io
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness.report.ablation import AblationTable
from harness.report.board import OK, Board, BoardCell, Column, Row
from harness.report.schema import NULL, BoardSchema

LEGEND = ("↑/↓: higher/lower is better; ± is a standard error, [a, b] a 95% bootstrap interval; **bold**: best of "
          "the main board in that column; null: the result records the metric without a value, for the reason listed "
          "at the end (never a made-up number)")


# ---------------------------------------------------------------------------------------------------------------
# Escaping and links
# ---------------------------------------------------------------------------------------------------------------
def md_text(text: Any) -> str:
    """Text for a Markdown table cell: HTML-escaped (renderers accept entities), pipes and backslashes escaped."""
    s = html.escape(str(text), quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return re.sub(r"([`*\[\]])", r"\\\1", s).replace("\n", " ")


TEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
                ">": r"\textgreater{}", "|": r"\textbar{}"}


def tex_text(text: Any) -> str:
    s = "".join(TEX_SPECIALS.get(c, c) for c in str(text))
    return s.replace("±", r"$\pm$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace(
        "Δ", r"$\Delta$").replace("−", "-").replace("\n", " ")


def csv_text(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading quote (OWASP CSV injection advice)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def rel_link(target: Path, base_dir: Path) -> str:
    """A relative URL from a report in `base_dir` to `target`, each path component percent-encoded."""
    rel = os.path.relpath(Path(target).resolve(), Path(base_dir).resolve())
    return "/".join(quote(part, safe="@+=,") for part in Path(rel).parts)


def arrow(higher_is_better: bool | None) -> str:
    return "↑" if higher_is_better is True else "↓" if higher_is_better is False else ""


def column_title(col: Column) -> str:
    return f"{col.metric} {arrow(col.higher_is_better)}".strip()


def state_text(cell: BoardCell) -> str:
    if cell.state == "outdated" and cell.ref is not None:
        return f"outdated (v{cell.ref.task_version})"
    return cell.state


def value_text(schema: BoardSchema, cell: BoardCell, col: Column) -> tuple[str, str]:
    """(value, uncertainty) display strings for a board cell; a non-usable cell shows its state."""
    if cell.state != OK:
        return state_text(cell), ""
    m = cell.metric(col.metric)
    if m is None:
        return "–", ""
    if m.get("value") is None:
        return NULL, ""
    return schema.fmt(col.metric, m["value"]), schema.fmt_uncertainty(col.metric, m)


def signed(schema: BoardSchema, metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    spec = schema.format_spec(metric)
    spec = "+" + spec if spec.startswith(".") else "+.4g"
    return format(value, spec).replace("-", "−")


# ---------------------------------------------------------------------------------------------------------------
# Board: Markdown
# ---------------------------------------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _md_cells(board: Board, row: Row, cols: list[Column], base: Path, bold: bool) -> list[str]:
    out = []
    for col in cols:
        cell = row.cells[col.task]
        value, unc = value_text(board.schema, cell, col)
        text = md_text(f"{value} {unc}".strip())
        if cell.state == OK and cell.ref is not None and cell.metric(col.metric) is not None:
            m = cell.metric(col.metric)
            best = board.best(col) if bold else None
            if best is not None and m and m.get("value") == best:
                text = f"**{text}**"
            text = f"[{text}]({rel_link(cell.ref.path, base)})"
        out.append(text)
    return out


def board_markdown(board: Board, out_dir: Path, extras: list[str] | None = None) -> str:
    s = board.schema
    lines = [f"# {md_text(s.name)} leaderboard (board v{s.version})", "",
             f"Built by `python -m harness report` from the result files under this folder only; schema "
             f"`{s.path.name}` (board v{s.version}). {LEGEND}. Every value links to its result file.", "",
             "A row is on the main board only when every task of the board has a complete, unlimited result at the "
             "task's current version with its standard protocol (n/a: the model cannot do the task). Mini-split and "
             "full-data results are separate rows.", ""]
    if board.notes:
        lines += [f"- note: {md_text(n)}" for n in board.notes] + [""]
    for family, title, blocks in board.groups():
        cols = [c for b in blocks for c in b.columns]
        header = ["model", "data"] + [md_text(f"{c.task} {column_title(c)}") for c in cols]
        lines += [f"## {md_text(title)}", ""]
        if not board.main:
            lines += ["_No model is complete on this board yet (see the incomplete rows below)._", ""]
            continue
        rows = [[md_text(r.label), r.data_kind] + _md_cells(board, r, cols, out_dir, True) for r in board.main]
        lines += _md_table(header, rows) + [""]
    if board.incomplete:
        lines += ["## Incomplete rows (not ranked)", "",
                  "Rows that miss at least one task of the board (missing, limited, partial, outdated or "
                  "non-standard results); values are shown only for usable results.", ""]
        cols = [c for b in board.tasks for c in b.columns]
        header = ["model", "data"] + [md_text(f"{c.task} {column_title(c)}") for c in cols]
        rows = [[md_text(r.label), r.data_kind] + _md_cells(board, r, cols, out_dir, False) for r in board.incomplete]
        lines += _md_table(header, rows) + [""]
    unvalued = board.null_metrics()
    if unvalued:
        lines += ["## Metrics without a value", ""]
        lines += [f"- {md_text(', '.join(where))}: {md_text(reason)}" for reason, where in unvalued] + [""]
    lines += extras or []
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Board: CSV (tidy: one line per row x task x metric, full precision)
# ---------------------------------------------------------------------------------------------------------------
BOARD_CSV_FIELDS = ["section", "family", "model", "model_id", "model_args", "data", "task", "task_version", "metric",
                    "higher_is_better", "value", "stderr", "ci_low", "ci_high", "n", "state", "result"]


def board_csv(board: Board, out_dir: Path) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, BOARD_CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for section, rows in (("main", board.main), ("incomplete", board.incomplete)):
        for row in rows:
            for b in board.tasks:
                cell = row.cells[b.name]
                for col in b.columns:
                    m = cell.metric(col.metric) or {}
                    w.writerow({k: csv_text(v) for k, v in {
                        "section": section, "family": b.family, "model": row.label, "model_id": row.model_id,
                        "model_args": row.args_text, "data": row.data_kind, "task": b.name,
                        "task_version": cell.ref.task_version if cell.ref else "", "metric": col.metric,
                        "higher_is_better": "" if col.higher_is_better is None else col.higher_is_better,
                        "value": _num(m.get("value")), "stderr": _num(m.get("stderr")),
                        "ci_low": _num(m.get("ci_low")), "ci_high": _num(m.get("ci_high")), "n": m.get("n", ""),
                        "state": cell.state, "result": rel_link(cell.ref.path, out_dir) if cell.ref else ""}.items()})
    return buf.getvalue()


def _num(v: Any) -> Any:
    """A number as itself (the csv module writes floats at full precision), None as an empty field."""
    return "" if v is None else v


# ---------------------------------------------------------------------------------------------------------------
# Board: LaTeX (booktabs; main board only, one table per group)
# ---------------------------------------------------------------------------------------------------------------
def board_tex(board: Board) -> str:
    s = board.schema
    out = [f"% {tex_text(s.name)} leaderboard, board v{s.version}: generated by `python -m harness report` from "
           "result files.", r"% Needs \usepackage{booktabs}.", ""]
    for family, title, blocks in board.groups():
        cols = [c for b in blocks for c in b.columns]
        out += [r"\begin{table}[t]", r"\centering", r"\small",
                r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule"]
        out.append(" & ".join(["Model"] + [rf"\multicolumn{{{len(b.columns)}}}{{c}}{{{tex_text(b.title)}}}"
                                           for b in blocks if b.columns]) + r" \\")
        out.append(" & ".join([""] + [tex_text(column_title(c)) for c in cols]) + r" \\")
        out.append(r"\midrule")
        if not board.main:
            out.append(rf"\multicolumn{{{len(cols) + 1}}}{{c}}{{no complete model yet}} \\")
        unvalued = False
        for row in board.main:
            cells = [tex_text(row.label + (" (mini)" if row.data_kind == "mini" else ""))]
            for col in cols:
                cell = row.cells[col.task]
                value, unc = value_text(s, cell, col)
                unvalued |= cell.state == OK and value == NULL
                text = tex_text(f"{value} {unc}".strip())
                m = cell.metric(col.metric)
                best = board.best(col)
                if best is not None and m and m.get("value") == best:
                    text = rf"\textbf{{{text}}}"
                cells.append(text)
            out.append(" & ".join(cells) + r" \\")
        legend = LEGEND.split(";")[0] + ("; null: recorded without a value, the reason is in the result file"
                                         if unvalued else "")
        out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex_text(title)}. {tex_text(legend)}.}}",
                rf"\label{{tab:board-{re.sub(r'[^a-z0-9]+', '-', family.lower())}}}", r"\end{table}", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------
# Ablations
# ---------------------------------------------------------------------------------------------------------------
def ablation_cell(table: AblationTable, schema: BoardSchema, task: str, variant: str, metric: str) -> tuple[str, str]:
    """(value, difference) display strings of one variant and metric."""
    e = table.get(task, variant, metric)
    if e is None or e.path is None:
        return (e.state if e else "missing"), ""
    value = schema.fmt(metric, e.value)
    if e.is_default:
        return value, "(default)"
    if e.diff is None:
        return value, "–"
    if not e.paired:
        return value, f"{signed(schema, metric, e.diff)} (set-level)"
    ci = f" [{signed(schema, metric, e.ci_low)}, {signed(schema, metric, e.ci_high)}]" if e.ci_low is not None else ""
    return value, f"{signed(schema, metric, e.diff)}{ci} {e.verdict}, n={e.n_paired}"


def ablation_markdown(table: AblationTable, schema: BoardSchema, out_dir: Path) -> str:
    sw = table.sweep
    lines = [f"# Ablation: {md_text(sw.name)}", ""]
    if sw.description:
        lines += [md_text(sw.description), ""]
    lines += [f"Sweep file `{md_text(sw.path.name)}`; default variant **{md_text(sw.default.name)}**. Δ = variant − "
              "default over the samples both evaluated, with a paired percentile-bootstrap 95% interval "
              f"(2000 resamples); better/worse only when the interval excludes 0. Set-level metrics have no "
              "per-sample values and no interval.", ""]
    for task in table.tasks:
        metrics = table.metrics[task]
        lines += [f"## {md_text(task)}", ""]
        if not metrics:
            lines += ["_No results yet._", ""]
            continue
        header = ["variant"]
        for m in metrics:
            e = next((x for x in table.entries if x.task == task and x.metric == m), None)
            header += [md_text(f"{m} {arrow(e.higher_is_better if e else None)}".strip()), md_text(f"Δ {m}")]
        rows = []
        for v in table.variants:
            cells = [md_text(v) + (" (default)" if v == sw.default.name else "")]
            for m in metrics:
                value, diff = ablation_cell(table, schema, task, v, m)
                e = table.get(task, v, m)
                if e is not None and e.path is not None:
                    value = f"[{md_text(value)}]({rel_link(e.path, out_dir)})"
                else:
                    value = md_text(value)
                cells += [value, md_text(diff)]
            rows.append(cells)
        lines += _md_table(header, rows) + [""]
    return "\n".join(lines).rstrip() + "\n"


ABLATION_CSV_FIELDS = ["sweep", "task", "variant", "is_default", "metric", "higher_is_better", "state", "value",
                       "default_value", "diff", "ci_low", "ci_high", "n_paired", "paired", "verdict", "result"]


def ablation_csv(table: AblationTable, out_dir: Path) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, ABLATION_CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for e in table.entries:
        w.writerow({k: csv_text(v) for k, v in {
            "sweep": table.sweep.name, "task": e.task, "variant": e.variant, "is_default": e.is_default,
            "metric": e.metric, "higher_is_better": "" if e.higher_is_better is None else e.higher_is_better,
            "state": e.state, "value": _num(e.value), "default_value": _num(e.default_value), "diff": _num(e.diff),
            "ci_low": _num(e.ci_low), "ci_high": _num(e.ci_high), "n_paired": e.n_paired if e.paired else "",
            "paired": e.paired, "verdict": e.verdict,
            "result": rel_link(e.path, out_dir) if e.path else ""}.items()})
    return buf.getvalue()


def ablation_tex(table: AblationTable, schema: BoardSchema) -> str:
    sw = table.sweep
    out = [f"% Ablation {tex_text(sw.name)}: generated by `python -m harness report` from result files.",
           r"% Needs \usepackage{booktabs}. Differences: variant - default, paired bootstrap 95% interval.", ""]
    for task in table.tasks:
        metrics = table.metrics[task]
        if not metrics:
            continue
        out += [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "rl" * len(metrics) + "}",
                r"\toprule"]
        head = ["Variant"]
        for m in metrics:
            e = next((x for x in table.entries if x.task == task and x.metric == m), None)
            head += [tex_text(f"{m} {arrow(e.higher_is_better if e else None)}".strip()), tex_text(f"Δ {m}")]
        out += [" & ".join(head) + r" \\", r"\midrule"]
        for v in table.variants:
            cells = [tex_text(v) + (r" (default)" if v == sw.default.name else "")]
            for m in metrics:
                value, diff = ablation_cell(table, schema, task, v, m)
                cells += [tex_text(value), tex_text(diff)]
            out.append(" & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}",
                rf"\caption{{Ablation {tex_text(sw.name)} on {tex_text(task)}; default {tex_text(sw.default.name)}.}}",
                rf"\label{{tab:ablation-{re.sub(r'[^a-z0-9]+', '-', (sw.name + '-' + task).lower())}}}",
                r"\end{table}", ""]
    return "\n".join(out)
