"""The static leaderboard page: one self-contained HTML file, sortable columns, every value linked to its result file.

No external assets (inline CSS and a small inline script; plots are relative links to files beside the page). All text
from result files is HTML-escaped, and a Content-Security-Policy lets only the page's own script (by its sha256) run,
so even a missed escape could not execute an injected one. Sorting: click a column header; `#sort=<table>:<col>:<dir>`
in the URL pre-sorts a table (used by the headless-browser check, handy for sharing a view).
"""
from __future__ import annotations

import base64
import hashlib
import html
from pathlib import Path
from typing import Any

from harness.report.ablation import AblationTable
from harness.report.board import OK, Board, Column, Row
from harness.report.render import arrow, column_title, rel_link, signed, state_text, value_text
from harness.report.schema import BoardSchema

SCRIPT = """
(function () {
  function key(td, numeric) {
    var v = td.getAttribute('data-sort-value');
    if (v === null || v === '') return null;
    return numeric ? parseFloat(v) : v.toLowerCase();
  }
  function sortTable(table, col, dir) {
    var th = table.querySelector('th[data-col="' + col + '"]');
    if (!th) return;
    var numeric = th.getAttribute('data-sort-type') === 'number';
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      if (x === null && y === null) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      var c = x < y ? -1 : x > y ? 1 : 0;
      return dir === 'desc' ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll('th[data-col]').forEach(function (h) { h.setAttribute('aria-sort', 'none'); });
    th.setAttribute('aria-sort', dir === 'desc' ? 'descending' : 'ascending');
  }
  document.querySelectorAll('table.sortable th[data-col]').forEach(function (th) {
    th.addEventListener('click', function () {
      var table = th.closest('table');
      var hib = th.getAttribute('data-higher-is-better');
      var first = hib === 'true' ? 'desc' : 'asc';
      var now = th.getAttribute('aria-sort');
      var dir = now === 'none' ? first : (now === 'ascending' ? 'desc' : 'asc');
      sortTable(table, th.getAttribute('data-col'), dir);
    });
  });
  var m = /#sort=([^:]+):(\\d+):(asc|desc)$/.exec(decodeURIComponent(location.hash));
  if (m) {
    var t = document.getElementById(m[1]);
    if (t) sortTable(t, m[2], m[3]);
  }
})();
"""

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;
color:#1b1f23;background:#fff}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:right;vertical-align:top}
th{background:#f6f8fa;white-space:nowrap}td{white-space:nowrap}td.text{white-space:normal}
th[colspan]{text-align:center}td.text,th.text{text-align:left}
th[data-col]{cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.best a{font-weight:700}td.state{color:#8c959f;font-style:italic}.unc{color:#57606a;font-size:.85em}
.args{color:#57606a;font-size:.85em}.note{color:#9a6700}.legend{color:#57606a}
section.incomplete table{opacity:.85}a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
figure{display:inline-block;margin:.5em;width:47%;vertical-align:top}figure img{width:100%;border:1px solid #d0d7de}
.scroll{overflow-x:auto}
.better{color:#1a7f37}.worse{color:#cf222e}
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def script_hash(script: str = SCRIPT) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()


def _head(title: str) -> list[str]:
    csp = (f"default-src 'none'; script-src '{script_hash()}'; style-src 'unsafe-inline'; img-src 'self' data: file:; "
           "base-uri 'none'; form-action 'none'")
    return ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{esc(title)}</title>",
            f"<style>{STYLE}</style>", "</head>", "<body>"]


def _num_attr(v: Any) -> str:
    return "" if v is None else repr(float(v))


def _model_cell(row: Row) -> str:
    args = f' <span class="args">({esc(row.args_text)})</span>' if row.args_text else ""
    return f'<td class="text" data-sort-value="{esc(row.label)}">{esc(row.model_id)}{args}</td>'


def _value_cell(board: Board, row: Row, col: Column, out_dir: Path, bold: bool) -> str:
    cell = row.cells[col.task]
    value, unc = value_text(board.schema, cell, col)
    if cell.state != OK or cell.ref is None:
        return f'<td class="state" data-sort-value="">{esc(state_text(cell))}</td>'
    m = cell.metric(col.metric)
    if m is None:  # the task did not record this metric in this result
        return '<td class="state" data-sort-value="">–</td>'
    v = m.get("value")
    best = board.best(col) if bold else None
    cls = ' class="best"' if best is not None and v == best else ""
    title = f"n={m.get('n', '?')}" + (f"; {m['variant']}" if m.get("variant") else "") + (
        f"; {m['reason']}" if m.get("reason") else "")
    unc_html = f' <span class="unc">{esc(unc)}</span>' if unc else ""
    return (f'<td{cls} data-sort-value="{esc(_num_attr(v))}" title="{esc(title)}">'
            f'<a href="{esc(rel_link(cell.ref.path, out_dir))}">{esc(value)}</a>{unc_html}</td>')


def _board_table(board: Board, table_id: str, rows: list[Row], blocks, out_dir: Path, bold: bool) -> list[str]:
    out = ['<div class="scroll">', f'<table class="board sortable" id="{esc(table_id)}">', "<thead>", "<tr>",
           '<th class="text" rowspan="2" data-col="0" data-sort-type="text" aria-sort="none">model</th>',
           '<th class="text" rowspan="2" data-col="1" data-sort-type="text" aria-sort="none">data</th>']
    out += [f'<th colspan="{len(b.columns)}">{esc(b.title)}</th>' for b in blocks if b.columns]
    out += ["</tr>", "<tr>"]
    col_index = 2
    cols = [c for b in blocks for c in b.columns]
    for c in cols:
        hib = "" if c.higher_is_better is None else str(c.higher_is_better).lower()
        unit = f" [{c.unit}]" if c.unit else ""
        out.append(f'<th data-col="{col_index}" data-sort-type="number" data-key="{esc(c.key)}" '
                   f'data-higher-is-better="{hib}" aria-sort="none" title="{esc(c.key + unit)}">'
                   f'{esc(column_title(c))}</th>')
        col_index += 1
    out += ["</tr>", "</thead>", "<tbody>"]
    for r in rows:
        out.append("<tr>" + _model_cell(r) + f'<td class="text" data-sort-value="{esc(r.data_kind)}">'
                   f"{esc(r.data_kind)}</td>" + "".join(_value_cell(board, r, c, out_dir, bold) for c in cols)
                   + "</tr>")
    out += ["</tbody>", "</table>", "</div>"]
    return out


def _ablation_html(table: AblationTable, schema: BoardSchema, out_dir: Path, idx: int) -> list[str]:
    sw = table.sweep
    out = [f'<section class="ablation"><h3>{esc(sw.name)}</h3>']
    if sw.description:
        out.append(f"<p>{esc(sw.description)}</p>")
    out.append(f'<p class="legend">default: <b>{esc(sw.default.name)}</b>; Δ = variant − default, paired bootstrap '
               "95% interval over shared samples.</p>")
    for t_i, task in enumerate(table.tasks):
        metrics = table.metrics[task]
        if not metrics:
            out.append(f"<p>{esc(task)}: no results yet.</p>")
            continue
        tid = f"ablation-{idx}-{t_i}"
        out += [f"<h4>{esc(task)}</h4>", '<div class="scroll">', f'<table class="sortable" id="{esc(tid)}">',
                "<thead><tr>",
                '<th class="text" data-col="0" data-sort-type="text" aria-sort="none">variant</th>']
        col = 1
        for m in metrics:
            e = next((x for x in table.entries if x.task == task and x.metric == m), None)
            hib = "" if e is None or e.higher_is_better is None else str(e.higher_is_better).lower()
            out.append(f'<th data-col="{col}" data-sort-type="number" data-higher-is-better="{hib}" '
                       f'aria-sort="none">{esc((m + " " + arrow(e.higher_is_better if e else None)).strip())}</th>')
            out.append(f'<th data-col="{col + 1}" data-sort-type="number" data-higher-is-better="{hib}" '
                       f'aria-sort="none">{esc("Δ " + m)}</th>')
            col += 2
        out += ["</tr></thead>", "<tbody>"]
        for v in table.variants:
            label = v + (" (default)" if v == sw.default.name else "")
            cells = [f'<td class="text" data-sort-value="{esc(v)}">{esc(label)}</td>']
            for m in metrics:
                e = table.get(task, v, m)
                if e is None or e.path is None:
                    cells += [f'<td class="state" data-sort-value="">{esc(e.state if e else "missing")}</td>',
                              '<td data-sort-value=""></td>']
                    continue
                link = esc(rel_link(e.path, out_dir))
                cells.append(f'<td data-sort-value="{esc(_num_attr(e.value))}"><a href="{link}">'
                             f'{esc(schema.fmt(m, e.value))}</a></td>')
                if e.is_default:
                    cells.append('<td data-sort-value="0">(default)</td>')
                elif e.diff is None:
                    cells.append('<td data-sort-value="">–</td>')
                else:
                    ci = (f" [{signed(schema, m, e.ci_low)}, {signed(schema, m, e.ci_high)}]"
                          if e.ci_low is not None else "")
                    tag = e.verdict + (f", n={e.n_paired}" if e.paired else "")
                    cls = f' class="{esc(e.verdict)}"' if e.verdict in ("better", "worse") else ""
                    cells.append(f'<td{cls} data-sort-value="{esc(_num_attr(e.diff))}">'
                                 f'{esc(signed(schema, m, e.diff) + ci)} <span class="unc">{esc(tag)}</span></td>')
            out.append("<tr>" + "".join(cells) + "</tr>")
        out += ["</tbody>", "</table>", "</div>"]
    out.append("</section>")
    return out


def board_html(board: Board, out_dir: Path, ablations: list[AblationTable] | None = None,
               plots: list[Path] | None = None) -> str:
    s = board.schema
    out = _head(f"{s.name} leaderboard")
    out += [f"<h1>{esc(s.name)} leaderboard <small>(board v{esc(s.version)})</small></h1>",
            '<p class="legend">Built by <code>python -m harness report</code> from the result files beside this '
            "page only. ↑/↓: higher/lower is better; ± standard error; [a, b] 95% bootstrap interval; bold: best of "
            "the main board; null: the result records the metric without a value, for the reason listed at the end. "
            "Every value links to its result file. Click a column header to sort.</p>",
            '<p class="legend">A row is on the main board only when every task of the board has a complete, '
            "unlimited result at the task's current version with its standard protocol (n/a: the model cannot do "
            "the task).</p>"]
    out += [f'<p class="note">note: {esc(n)}</p>' for n in board.notes]
    for g_i, (family, title, blocks) in enumerate(board.groups()):
        out += [f'<section class="group" id="group-{esc(family)}">', f"<h2>{esc(title)}</h2>"]
        if board.main:
            out += _board_table(board, f"board-{g_i}", board.main, blocks, out_dir, True)
        else:
            out.append("<p>No model is complete on this board yet (see the incomplete rows below).</p>")
        out.append("</section>")
    if board.incomplete:
        out += ['<section class="incomplete" id="incomplete">', "<h2>Incomplete rows (not ranked)</h2>",
                '<p class="legend">Rows that miss at least one task of the board (missing, limited, partial, outdated '
                "or non-standard results); values are shown only for usable results.</p>"]
        out += _board_table(board, "incomplete-table", board.incomplete, board.tasks, out_dir, False)
        out.append("</section>")
    unvalued = board.null_metrics()
    if unvalued:
        out += ['<section id="null-metrics">', "<h2>Metrics without a value</h2>", "<ul>"]
        out += [f"<li><b>{esc(', '.join(where))}</b>: {esc(reason)}</li>" for reason, where in unvalued]
        out += ["</ul>", "</section>"]
    if ablations:
        out += ['<section id="ablations">', "<h2>Ablations</h2>"]
        for i, t in enumerate(ablations):
            out += _ablation_html(t, s, out_dir, i)
        out.append("</section>")
    if plots:
        out += ['<section id="scaling">', "<h2>Resolution scaling</h2>"]
        for p in plots:
            link = esc(rel_link(p, out_dir))
            out.append(f'<figure><a href="{link}"><img src="{link}" alt="{esc(p.stem)}"></a>'
                       f"<figcaption>{esc(p.stem)}</figcaption></figure>")
        out.append("</section>")
    out += [f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
