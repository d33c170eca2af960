"""Rate–distortion view of a reconstruction task: one point per model configuration, quality against bits per pixel.

    python -m harness report --rd ucf101-recon    ->  <results>/rd-ucf101-recon.{md,csv,png,svg}

Built from result files only. A point is a (model with its args, mini or full data) row whose result is usable by the
board's rule (complete, not limited, the task's current version, its standard protocol; harness/report/index.py);
among several results of one row the best state, then the newest, is used, as on the leaderboard. Rows with nothing
usable are listed, not drawn. Each point carries the model's metadata from its result (parameters counted from the
loaded module, compression factors, code bits or latent channels, tokens or latent values per clip measured in the
run, license, source).

Continuous-latent models (VAEs) have no bit count: their bpp is null with its reason; they appear in the table and
as dashed horizontal lines in the plot, never as points on the bpp axis. Configurations of one discrete model (e.g.
H.264 at several budgets) are joined into a curve in order of bpp.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import write_text
from harness.report.index import STATE_RANK, ResultRef, board_state, current_version, load_results, standard_protocol
from harness.report.render import csv_text, md_text, rel_link

QUALITY = ("psnr_frame", "psnr_video", "ssim")  # reported; the plot uses psnr_frame and ssim


@dataclass
class RDPoint:
    ref: ResultRef
    state: str

    @property
    def label(self) -> str:
        return self.ref.model_label

    def metric(self, name: str) -> float | None:
        m = self.ref.metrics.get(name) or {}
        return m.get("value")

    @property
    def bpp(self) -> float | None:
        return self.metric("bpp")

    @property
    def bpp_reason(self) -> str:
        return str((self.ref.metrics.get("bpp") or {}).get("reason") or "")

    @property
    def model(self) -> dict[str, Any]:
        return self.ref.data.get("model") or {}

    @property
    def meta(self) -> dict[str, Any]:
        return self.model.get("metadata") or {}

    @property
    def continuous(self) -> bool:
        return self.bpp is None

    def code_text(self) -> str:
        md = self.meta
        if md.get("latent_channels") and md.get("discrete") is False:
            return f"{md['latent_channels']} ch, continuous"
        if md.get("code_bits"):
            return f"{md['code_bits']} bit/token"
        return "entropy-coded" if md.get("family") == "codec" else "–"

    def tokens_text(self) -> str:
        if self.metric("tokens_per_clip") is not None:
            return f"{self.metric('tokens_per_clip'):.0f}"
        if self.metric("latent_elements") is not None:
            return f"{self.metric('latent_elements'):.0f} values"
        return "–"

    def compression_text(self) -> str:
        c = self.meta.get("compression")
        return "×".join(str(v) for v in c) if c else "–"


def _n(point: RDPoint) -> int:
    return int(point.ref.data.get("task", {}).get("data", {}).get("n_evaluated") or 0)


def params_text(n: int | None) -> str:
    if not n:
        return "–"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


def rd_points(refs: list[ResultRef], task: str, include_limited: bool = False) -> tuple[list[RDPoint], list[str]]:
    """(usable points sorted by data kind then bpp, continuous last; "label [data]: why not" for the others)."""
    mine = [r for r in refs if r.task_name == task]
    if not mine:
        return [], []
    version = current_version(task)
    try:
        protocol = standard_protocol(task)
    except (TypeError, ValueError):
        protocol = None
    rows: dict[tuple[str, str], list[tuple[str, ResultRef]]] = {}
    for r in mine:
        state = board_state(r, version, protocol)
        if include_limited and state == "limited":
            state = "ok"
        rows.setdefault((r.model_label, r.data_kind), []).append((state, r))
    points, skipped = [], []
    for (label, kind), graded in sorted(rows.items()):
        graded.sort(key=lambda sr: (STATE_RANK.get(sr[0], 99), tuple(-ord(c) for c in sr[1].created_at)))
        state, ref = graded[0]
        if state == "ok":
            points.append(RDPoint(ref, state))
        else:
            skipped.append(f"{label} [{kind}]: {state}")
    points.sort(key=lambda p: (p.ref.data_kind, p.continuous, p.bpp or 0.0, p.label))
    return points, skipped


# ---------------------------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------------------------
HEADER = ["model", "args", "data", "n", "PSNR frame ↑", "PSNR video ↑", "SSIM ↑", "bpp ↓", "ratio ↑", "parameters",
          "t×h×w", "code", "tokens / clip", "license"]


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def rd_markdown(task: str, points: list[RDPoint], skipped: list[str], out_dir: Path, plot: Path | None) -> str:
    variant = next((p.ref.metrics.get("psnr_frame", {}).get("variant") for p in points), "") or ""
    lines = [f"# Rate–distortion: {md_text(task)}", "",
             "Built by `python -m harness report --rd` from the result files under this folder only: one point per "
             "model configuration with a usable result (complete, not limited, current task version, standard "
             "protocol). bpp: bits per pixel of each clip's representation, averaged over clips; continuous latents "
             "have none (their size is given in latent values per clip). "
             f"PSNR frame: {md_text(variant)}. Every model links to its result file.", ""]
    if plot is not None:
        lines += [f"![rate–distortion]({rel_link(plot, out_dir)})", ""]
    rows = []
    for p in points:
        bpp = _fmt(p.bpp, ".4f") if not p.continuous else "n/a (continuous)"
        rows.append([f"[{md_text(p.ref.model_id)}]({rel_link(p.ref.path, out_dir)})",
                     md_text(", ".join(f"{k}={v}" for k, v in sorted(p.ref.model_args.items()) if v is not None)
                             or "–"),
                     p.ref.data_kind, str(_n(p)), _fmt(p.metric("psnr_frame"), ".2f"),
                     _fmt(p.metric("psnr_video"), ".2f"), _fmt(p.metric("ssim"), ".4f"), bpp,
                     _fmt(p.metric("compression_ratio"), ".1f"), params_text(p.model.get("parameters")),
                     p.compression_text(), md_text(p.code_text()), md_text(p.tokens_text()),
                     md_text(p.meta.get("license") or "–")])
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    if skipped:
        lines += ["Not drawn (no usable result):", ""] + [f"- {md_text(s)}" for s in skipped] + [""]
    return "\n".join(lines)


CSV_FIELDS = ["model", "model_id", "model_args", "data", "n", "psnr_frame", "psnr_video", "ssim", "bpp", "bpp_reason",
              "compression_ratio", "parameters", "compression", "code_bits", "latent_channels", "discrete",
              "tokens_per_clip", "latent_elements", "family", "license", "source", "result"]


def rd_csv(points: list[RDPoint], out_dir: Path) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for p in points:
        md = p.meta
        row = {"model": p.label, "model_id": p.ref.model_id,
               "model_args": ", ".join(f"{k}={v}" for k, v in sorted(p.ref.model_args.items()) if v is not None),
               "data": p.ref.data_kind, "n": _n(p), **{k: p.metric(k) for k in QUALITY}, "bpp": p.bpp,
               "bpp_reason": p.bpp_reason, "compression_ratio": p.metric("compression_ratio"),
               "parameters": p.model.get("parameters"), "compression": p.compression_text(),
               "code_bits": md.get("code_bits"), "latent_channels": md.get("latent_channels"),
               "discrete": md.get("discrete"), "tokens_per_clip": p.metric("tokens_per_clip"),
               "latent_elements": p.metric("latent_elements"), "family": md.get("family"),
               "license": md.get("license"), "source": md.get("source"), "result": rel_link(p.ref.path, out_dir)}
        w.writerow({k: csv_text("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------------------------------------------
def rd_plot(task: str, points: list[RDPoint], out_dir: Path) -> list[Path]:
    """PSNR and SSIM against bpp (log scale), one row of panels per data kind; [] when nothing can be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.plots import _save

    kinds = sorted({p.ref.data_kind for p in points})
    if not any(not p.continuous for p in points):
        return []
    colors = {m: f"C{i % 10}" for i, m in enumerate(sorted({p.ref.model_id for p in points}))}
    with matplotlib.rc_context({"svg.hashsalt": "pyratok-bench", "svg.fonttype": "none", "font.size": 9}):
        fig, axes = plt.subplots(len(kinds), 2, figsize=(10, 4.2 * len(kinds)), squeeze=False)
        for row, kind in zip(axes, kinds):
            mine = [p for p in points if p.ref.data_kind == kind]
            for ax, metric, title in ((row[0], "psnr_frame", "PSNR (dB, frame)"), (row[1], "ssim", "SSIM")):
                for model_id in sorted({p.ref.model_id for p in mine if not p.continuous}):
                    curve = [p for p in mine if p.ref.model_id == model_id and not p.continuous
                             and p.metric(metric) is not None]
                    ax.plot([p.bpp for p in curve], [p.metric(metric) for p in curve], "o-", color=colors[model_id],
                            label=f"{model_id} ({len(curve)} config{'s' if len(curve) > 1 else ''})")
                for p in mine:
                    if p.continuous and p.metric(metric) is not None:
                        ax.axhline(p.metric(metric), linestyle="--", linewidth=1,
                                   color=colors[p.ref.model_id], label=f"{p.label} — continuous latent, no bpp")
                ax.set_xscale("log")
                ax.set_xlabel("bits per pixel")
                ax.set_ylabel(title)
                ax.grid(True, alpha=0.3, which="both")
                ax.set_title(f"{task} ({kind} data)")
            if row[0].get_legend_handles_labels()[0]:  # below the panels, from their left edge
                row[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.2), frameon=False)
        fig.subplots_adjust(hspace=0.9 if len(kinds) > 1 else 0.2, wspace=0.3)
        paths = _save(fig, out_dir, f"rd-{task}")
        plt.close(fig)
    return paths


def write_rd(results: str | Path, task: str, include_limited: bool = False) -> list[Path]:
    """Write rd-<task>.{md,csv} (and the plot when some point has a bpp) under `results`; the Markdown first."""
    root = Path(results)
    points, skipped = rd_points(load_results(root), task, include_limited)
    if not points:
        why = f" (not usable: {'; '.join(skipped)})" if skipped else ""
        raise HarnessError(f"no usable {task} result under {root} for a rate–distortion table{why}")
    plots = rd_plot(task, points, root)
    svg = next((p for p in plots if p.suffix == ".svg"), None)
    md, csv_path = root / f"rd-{task}.md", root / f"rd-{task}.csv"
    write_text(md, rd_markdown(task, points, skipped, root, svg))
    write_text(csv_path, rd_csv(points, root))
    return [md, csv_path, *plots]
