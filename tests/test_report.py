"""Reports from hand-made result folders: paired ablation tables, completeness gating, `missing`, and the Markdown,
CSV, LaTeX and HTML outputs (escaping of hostile names, relative links, sort attributes)."""
import csv
import io
import re
import textwrap
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from harness.cli import main
from harness.errors import DataError
from harness.report.ablation import build_ablation
from harness.report.board import build_board
from harness.report.build import write_report
from harness.report.html import SCRIPT, script_hash
from harness.report.index import load_results
from harness.report.missing import format_matrix, missing_matrix
from harness.report.render import csv_text, md_text, tex_text
from harness.report.schema import load_schema
from harness.studies.sweep_file import load_sweep
from tests.report_fixtures import UCF_PROTOCOL, fake_result, sample_values

HOSTILE = "<script>alert(1)</script>"
HOSTILE_ARG = '"><img src=x onerror=alert(2)>'


def schema_file(tmp_path: Path, tasks: str = "[ucf101-recon, toy-task]") -> Path:
    p = tmp_path / "board.yaml"
    p.write_text(textwrap.dedent(f"""
        board: 1
        name: Test board
        version: 3
        groups:
          - family: reconstruction
            title: Reconstruction
            tasks: {tasks}
        formats: {{"psnr*": ".2f", "*": ".4g"}}
    """))
    return p


def ablation_sweep(tmp_path: Path) -> Path:
    p = tmp_path / "abl.yaml"
    p.write_text(textwrap.dedent("""
        sweep: 1
        name: abl
        base: {model: tok, model_args: {bits: 16}, tasks: [ucf101-recon]}
        grid: {model_args.levels: [1, 2, 3, 4]}
        default: {model_args.levels: 4}
        metrics: {ucf101-recon: [psnr_frame, bpp, "codebook/*/used_fraction"]}
    """))
    return p


def ablation_results(root: Path) -> dict[str, dict]:
    base = sample_values(8, seed=1)
    shifted = {k: {**v, "psnr_frame": v["psnr_frame"] + 1.0 + 0.1 * i, "bpp": 0.12}
               for i, (k, v) in enumerate(base.items())}
    fewer = {k: {**v, "psnr_frame": v["psnr_frame"] - 0.5} for k, v in list(base.items())[1:]}
    usage = lambda u: {"codebook/l1/used_fraction": {"value": u, "n": 8, "higher_is_better": True}}  # noqa: E731
    fake_result(root, "tok", base, args={"bits": 16, "levels": 4}, extra_metrics=usage(0.5))
    fake_result(root, "tok", shifted, args={"bits": 16, "levels": 1}, extra_metrics=usage(0.25))
    fake_result(root, "tok", fewer, args={"bits": 16, "levels": 2}, extra_metrics=usage(0.5))
    fake_result(root, "tok", base, args={"bits": 16, "levels": 3})
    return {"base": base, "shifted": shifted, "fewer": fewer}


# ---------------------------------------------------------------------------------------------------------------
def test_ablation_differences_are_paired_over_shared_samples(tmp_path):
    data = ablation_results(tmp_path / "r")
    table = build_ablation(load_sweep(ablation_sweep(tmp_path)), load_results(tmp_path / "r"))
    assert table.metrics["ucf101-recon"] == ["psnr_frame", "bpp", "codebook/l1/used_fraction"]
    e = table.get("ucf101-recon", "levels=1", "psnr_frame")
    d = np.array([data["shifted"][k]["psnr_frame"] - data["base"][k]["psnr_frame"] for k in data["base"]])
    assert e.paired and e.n_paired == 8 and e.diff == pytest.approx(d.mean())  # 1.35
    assert d.min() <= e.ci_low < e.diff < e.ci_high <= d.max() and e.verdict == "better"
    bpp = table.get("ucf101-recon", "levels=1", "bpp")  # 0.12 vs 0.1 on every sample: lower is better
    assert bpp.diff == pytest.approx(0.02) and bpp.ci_low == pytest.approx(0.02) and bpp.verdict == "worse"
    few = table.get("ucf101-recon", "levels=2", "psnr_frame")  # one sample missing: 7 pairs, constant -0.5
    assert few.n_paired == 7 and few.diff == pytest.approx(-0.5) and few.verdict == "worse"
    same = table.get("ucf101-recon", "levels=3", "psnr_frame")
    assert same.diff == 0 and same.verdict == "n.s."
    usage = table.get("ucf101-recon", "levels=1", "codebook/l1/used_fraction")
    assert not usage.paired and usage.diff == pytest.approx(-0.25) and usage.verdict == "set-level"
    assert table.get("ucf101-recon", "levels=3", "codebook/l1/used_fraction").value is None
    default = table.get("ucf101-recon", "levels=4", "psnr_frame")
    assert default.is_default and default.diff is None


def test_ablation_outputs_markdown_csv_and_latex(tmp_path):
    ablation_results(tmp_path / "r")
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    ablation_sweep(sweeps)
    assert main(["report", "--results", str(tmp_path / "r"), "--ablation", str(sweeps / "abl.yaml")]) == 0
    out = tmp_path / "r" / "ablations"
    md = (out / "abl.md").read_text()
    assert "| levels=4 (default) |" in md and "better, n=8" in md and "worse, n=7" in md
    assert re.search(r"\[31\.\d\d\]\(\.\./tok/ucf101-recon@v1/[0-9a-f]{12}/result\.json\)", md)
    rows = list(csv.DictReader(io.StringIO((out / "abl.csv").read_text())))
    assert len(rows) == 4 * 3
    row = next(r for r in rows if r["variant"] == "levels=2" and r["metric"] == "psnr_frame")
    assert float(row["diff"]) == pytest.approx(-0.5) and row["n_paired"] == "7" and row["verdict"] == "worse"
    tex = (out / "abl.tex").read_text()
    assert r"\toprule" in tex and r"psnr\_frame $\uparrow$" in tex and r"$\Delta$ bpp" in tex
    # the full report writes the same tables for every sweep file with results
    rep = write_report(tmp_path / "r", schema_file(tmp_path), [sweeps])
    assert [t.sweep.name for t in rep.ablations] == ["abl"]
    assert "ablations/abl.md" in (tmp_path / "r" / "leaderboard.md").read_text()


# ---------------------------------------------------------------------------------------------------------------
def gating_results(root: Path) -> None:
    v = sample_values(4)
    toy = {"psnr_frame": True}
    toy_protocol = {"frames": 9}
    for model in ("complete-a", "complete-b"):
        fake_result(root, model, sample_values(4, psnr=30 if model == "complete-a" else 25))
        fake_result(root, model, {"x/1": {"psnr_frame": 20.0}}, task="toy-task", version=2, protocol=toy_protocol)
    fake_result(root, "recon-only", v)
    fake_result(root, "limited-only", v, limit=2)
    fake_result(root, "old-toy", v)
    fake_result(root, "old-toy", {"x/1": {"psnr_frame": 20.0}}, task="toy-task", version=1, protocol=toy_protocol)
    fake_result(root, "nonstd", sample_values(4, psnr=99), protocol={**UCF_PROTOCOL, "num_frames": 9})
    fake_result(root, "nonstd", {"x/1": {"psnr_frame": 20.0}}, task="toy-task", version=2, protocol=toy_protocol)
    fake_result(root, "half-done", v, status="partial")
    fake_result(root, "half-done", {"x/1": {"psnr_frame": 20.0}}, task="toy-task", version=2, protocol=toy_protocol)
    fake_result(root, "complete-a", v, mini=False)  # full data: its own row, missing toy-task
    assert toy


def test_completeness_gate_keeps_only_rows_with_every_task_usable(tmp_path):
    gating_results(tmp_path / "r")
    board = build_board(tmp_path / "r", load_schema(schema_file(tmp_path)))
    assert [r.label for r in board.main] == ["complete-a", "complete-b"]  # ranked by PSNR, best first
    assert all(r.data_kind == "mini" for r in board.main)
    states = {(r.label, r.data_kind): {t: c.state for t, c in r.cells.items()} for r in board.incomplete}
    assert states[("recon-only", "mini")] == {"ucf101-recon": "ok", "toy-task": "missing"}
    assert states[("old-toy", "mini")]["toy-task"] == "outdated"
    assert states[("nonstd", "mini")]["ucf101-recon"] == "non-standard"
    assert states[("half-done", "mini")]["ucf101-recon"] == "partial"
    assert states[("complete-a", "full")]["toy-task"] == "missing"
    assert "limited-only" not in {r.label for r in board.main + board.incomplete}  # nothing usable: not shown
    assert any("toy-task is not registered" in n for n in board.notes)
    assert {r.label for r in board.unusable} == {"limited-only"}


def test_missing_prints_the_model_by_task_matrix(tmp_path, capsys):
    gating_results(tmp_path / "r")
    tasks, rows = missing_matrix(tmp_path / "r", load_schema(schema_file(tmp_path)))
    text = format_matrix(tasks, rows)
    line = {ln.split()[0] + " " + ln.split()[1]: ln for ln in text.splitlines()[2:] if ln.strip()}
    assert line["limited-only mini"].split()[2:] == ["limited", "missing"]
    assert "outdated (v1)" in line["old-toy mini"] and "non-standard" in line["nonstd mini"]
    assert line["complete-a mini"].split()[2:] == ["ok", "ok"]
    assert line["identity -"].split()[2] == "missing"  # a registered model with no result at all
    assert main(["missing", "--results", str(tmp_path / "r"), "--board", str(schema_file(tmp_path)), "--models",
                 "old-toy,complete-b", "--tasks", "toy-task"]) == 0
    out = capsys.readouterr().out
    assert "old-toy" in out and "complete-b" in out and "recon-only" not in out and "ucf101-recon" not in out.split(
        "\n", 1)[1]


def test_missing_sets_apart_the_variants_a_study_sweep_trains(tmp_path, capsys):
    root = tmp_path / "r"
    v = sample_values(4)
    fake_result(root, "tok", v, args={"checkpoint": "ck/tok-L1.safetensors", "levels": 1})  # the study's variant
    fake_result(root, "tok", v, args={"checkpoint": "ck/mine.safetensors", "levels": 1})  # a user's own checkpoint
    sweep = tmp_path / "sweeps" / "abl.yaml"
    sweep.parent.mkdir()
    sweep.write_text(textwrap.dedent("""
        sweep: 1
        name: abl
        base: {model: tok, model_args: {levels: 2}, tasks: [ucf101-recon]}
        grid: {model_args.levels: [1, 2]}
        train:
          checkpoint: "ck/tok-L{model_args.levels}.safetensors"
          command: ["echo", "{checkpoint}"]
          model_arg: checkpoint
    """))
    argv = ["missing", "--results", str(root), "--board", str(schema_file(tmp_path)), "--models", "tok",
            "--sweeps", str(sweep.parent)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tok-L1" not in out and "ck/mine.safetensors" in out
    assert "not listed: 1 rows of variants trained by study sweeps" in out and "abl (1)" in out
    assert main([*argv, "--all"]) == 0
    out = capsys.readouterr().out
    assert "tok-L1" in out and "not listed" not in out


def test_board_schema_is_validated_with_lines(tmp_path):
    bad = tmp_path / "b.yaml"
    bad.write_text("board: 1\nversion: 1\ngroups:\n  - family: r\n    tasks: [a]\n    colour: red\n")
    with pytest.raises(DataError, match="unknown key 'colour'") as exc:
        load_schema(bad)
    assert exc.value.line == 6
    bad.write_text("board: 1\nversion: 1\ngroups: [{family: r, tasks: [a]}]\nformats: {psnr: '.2q'}\n")
    with pytest.raises(DataError, match="not a Python format spec"):
        load_schema(bad)
    shipped = load_schema()
    assert shipped.tasks[0].name == "ucf101-recon" and shipped.fmt("psnr_frame", 29.7161) == "29.72"
    assert shipped.fmt("codebook/l4/used_fraction", 0.5523) == "55.23%"


# ---------------------------------------------------------------------------------------------------------------
class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)
        else:
            self.text.append(data)


def hostile_results(root: Path) -> None:
    fake_result(root, HOSTILE, sample_values(4, psnr=31), args={"note": HOSTILE_ARG, "x": "a|b"})
    fake_result(root, "plain", sample_values(4, psnr=28))
    fake_result(root, "other", sample_values(4, psnr=35))


def test_html_escapes_every_name_links_relatively_and_carries_sort_attributes(tmp_path):
    root = tmp_path / "r"
    hostile_results(root)
    write_report(root, schema_file(tmp_path, "[ucf101-recon]"))
    text = (root / "leaderboard.html").read_text()
    page = _Page()
    page.feed(text)
    assert page.scripts == [SCRIPT]  # the page's own script and nothing else
    assert not any(t == "img" for t, _ in page.tags) and "onerror" not in " ".join(
        k for _, a in page.tags for k in a)
    assert HOSTILE in "".join(page.text) and HOSTILE_ARG in "".join(page.text)  # shown as text
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert script_hash() in csp and "default-src 'none'" in csp
    links = [a["href"] for t, a in page.tags if t == "a"]
    assert len(links) == 3 * 3  # 3 rows x the 3 of the 5 headline metrics these results record
    for href in links:
        u = urlparse(href)
        assert not u.scheme and not u.netloc and not href.startswith("/")
        target = (root / unquote(href)).resolve()
        assert target.name == "result.json" and target.is_file() and root.resolve() in target.parents
    ths = [a for t, a in page.tags if t == "th" and "data-col" in a]
    assert [a["data-col"] for a in ths] == [str(i) for i in range(7)]
    assert all(a["aria-sort"] == "none" and a["data-sort-type"] in ("text", "number") for a in ths)
    assert {a["data-higher-is-better"] for a in ths if a.get("data-key", "").endswith("bpp")} == {"false"}
    values = [a["data-sort-value"] for t, a in page.tags if t == "td" and a.get("title", "").startswith("n=")]
    assert len(values) == 9 and all(float(v) > 0 for v in values)
    body_rows = text.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")
    assert body_rows == 3


def test_markdown_csv_and_tex_escape_hostile_names(tmp_path):
    root = tmp_path / "r"
    hostile_results(root)
    write_report(root, schema_file(tmp_path, "[ucf101-recon]"))
    md = (root / "leaderboard.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "a\\|b" in md
    rows = list(csv.DictReader(io.StringIO((root / "leaderboard.csv").read_text())))
    assert {r["model_id"] for r in rows} == {HOSTILE, "plain", "other"}
    psnr = {r["model_id"]: float(r["value"]) for r in rows if r["metric"] == "psnr_frame"}
    assert psnr["other"] > psnr[HOSTILE] > psnr["plain"]
    assert all(r["section"] == "main" and r["result"].endswith("result.json") for r in rows)
    tex = (root / "leaderboard.tex").read_text()
    assert r"\textless{}script\textgreater{}" in tex and r"\textbf{35" in tex and "<script>" not in tex
    # markdown rows are ranked: best PSNR first
    order = [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith("| ") and "mini" in ln]
    assert order[0] == "other" and order[-1] == "plain"


def test_escaping_helpers():
    assert md_text("a|b*c_d<e>") == "a\\|b\\*c_d&lt;e&gt;"
    assert tex_text("50% of $x_1 & {y}") == r"50\% of \$x\_1 \& \{y\}"
    assert csv_text("=HYPERLINK(1)") == "'=HYPERLINK(1)" and csv_text("plain") == "plain" and csv_text(3) == 3


def test_report_cli_writes_every_format_and_keeps_limited_runs_off(tmp_path, capsys):
    root = tmp_path / "r"
    fake_result(root, "kept", sample_values(4))
    fake_result(root, "testing", sample_values(4), limit=2)
    assert main(["report", "--results", str(root), "--no-sweeps"]) == 0
    for ext in ("md", "csv", "tex", "html"):
        assert (root / f"leaderboard.{ext}").stat().st_size > 0
    md = (root / "leaderboard.md").read_text()
    assert "| kept" in md and "testing" not in md
    assert main(["report", "--results", str(root), "--no-sweeps", "--include-limited"]) == 0
    assert "| testing" in (root / "leaderboard.md").read_text() and "not a valid board" in capsys.readouterr().out


def test_a_metric_without_a_value_reads_null_with_its_reason_not_n_a(tmp_path):
    """n/a means "the model cannot do the task"; a metric whose weights were missing is recorded as null with a
    reason, and every report must keep the two apart and say why the value is missing."""
    root = tmp_path / "r"
    why = "weight file i3d.pt not found (looked in /w)"
    unvalued = {"fvd": {"value": None, "n": 4, "higher_is_better": False, "reason": why}}
    fake_result(root, "scored", sample_values(4), extra_metrics=unvalued, headline=["psnr_frame", "fvd"])
    fake_result(root, "other", sample_values(4, shift=1.0), extra_metrics=unvalued, headline=["psnr_frame", "fvd"])
    schema = schema_file(tmp_path, "[{task: ucf101-recon, metrics: [psnr_frame, fvd]}]")
    board = build_board(root, load_schema(schema))
    assert board.null_metrics() == [(why, ["other ucf101-recon fvd", "scored ucf101-recon fvd"])]
    write_report(root, schema)
    md = (root / "leaderboard.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| scored")]
    assert rows and "null" in rows[0] and "n/a" not in rows[0]
    assert "## Metrics without a value" in md and f"other ucf101-recon fvd, scored ucf101-recon fvd: {why}" in md
    page = (root / "leaderboard.html").read_text()
    assert "Metrics without a value" in page and why in page
    fvd = [r for r in csv.DictReader(io.StringIO((root / "leaderboard.csv").read_text())) if r["metric"] == "fvd"]
    assert [r["value"] for r in fvd] == ["", ""]  # the CSV keeps an empty field, never a number
    tex = (root / "leaderboard.tex").read_text()
    assert "& null" in tex and "null: recorded without a value" in tex
