"""Resolution-scaling plots from the scaling result files: quality, time, memory and codebook use against height.

One line per scaling file (model with its args); matplotlib with the Agg backend, written as PNG and SVG with
deterministic metadata. The PyraTok paper's Fig. 29 utilization numbers are drawn as a labelled reference series.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.studies.scaling import PAPER_FIG29, load_scaling

QUANTITIES = ("quality", "time", "memory", "utilization")


def series_label(doc: dict[str, Any]) -> str:
    m = doc.get("model", {})
    args = ", ".join(f"{k}={v}" for k, v in sorted((m.get("args") or {}).items()) if v is not None)
    label = f"{m.get('id', '?')} ({args})" if args else str(m.get("id", "?"))
    label = label if len(label) <= 60 else label[:57] + "..."
    device = doc.get("identity", {}).get("device")
    label += f" [{device}]" if device else ""
    skipped = [p["height"] for p in doc.get("points", []) if p.get("status") != "ok"]
    if skipped:
        label += f", not measured at {', '.join(f'{h}p' for h in skipped)}"
    return label


def _ok(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in doc.get("points", []) if p.get("status") == "ok"]


def _axes_heights(ax, heights: list[int]) -> None:
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log", base=2)
    ax.set_xticks(heights)
    ax.set_xticklabels([f"{h}p" for h in heights], rotation=45)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("input height (16:9)")
    ax.grid(True, alpha=0.3)


def _legend(ax) -> None:
    """Below the axes, so it never hides a line."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, frameon=False)


def _save(fig, out: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = out / f"{stem}.{ext}"
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format=ext, dpi=120, bbox_inches="tight",
                    metadata={"Date": None} if ext == "svg" else {"Software": None})
        tmp.replace(path)
        paths.append(path)
    return paths


def write_scaling_plots(folder: str | Path, out: str | Path | None = None) -> list[Path]:
    """Plot every scaling file under `folder` into `out` (default: the same folder); [] when there is none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = load_scaling(folder)
    if not docs:
        return []
    out = Path(out or folder)
    out.mkdir(parents=True, exist_ok=True)
    heights = sorted({p["height"] for _, d in docs for p in d.get("points", [])})
    written: list[Path] = []
    with matplotlib.rc_context({"svg.hashsalt": "pyratok-bench", "svg.fonttype": "none", "font.size": 9}):
        # quality: PSNR and SSIM
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for _, d in docs:
            pts = _ok(d)
            label = series_label(d)
            a1.plot([p["height"] for p in pts], [p["psnr"] for p in pts], "o-", label=label)
            a2.plot([p["height"] for p in pts], [p["ssim"] for p in pts], "o-", label=label)
        a1.set_ylabel("PSNR (dB, mean over clips)")
        a2.set_ylabel("SSIM (gaussian11)")
        for a in (a1, a2):
            _axes_heights(a, heights)
        _legend(a1)
        fig.suptitle("Reconstruction quality against resolution")
        written += _save(fig, out, "scaling_quality")
        plt.close(fig)

        # time per frame: encode solid, decode dashed
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for _, d in docs:
            pts = _ok(d)
            label = series_label(d)
            line, = ax.plot([p["height"] for p in pts], [1e3 * p["encode_s_per_frame"] for p in pts], "o-",
                            label=f"{label} — encode")
            ax.plot([p["height"] for p in pts], [1e3 * p["decode_s_per_frame"] for p in pts], "s--",
                    color=line.get_color(), label=f"{label} — decode")
        ax.set_yscale("log")
        ax.set_ylabel("milliseconds per frame")
        _axes_heights(ax, heights)
        _legend(ax)
        ax.set_title("Encode and decode time against resolution")
        written += _save(fig, out, "scaling_time")
        plt.close(fig)

        # memory: the peak during encode + decode, and what those steps added to what was held before them
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for _, d in docs:
            pts = [p for p in _ok(d) if p.get("peak_memory_bytes")]
            kind = "GPU allocated" if d.get("identity", {}).get("device") == "cuda" else "RSS"
            hs = [p["height"] for p in pts]
            line, = a1.plot(hs, [p["peak_memory_bytes"] / 2**30 for p in pts], "o-",
                            label=f"{series_label(d)} ({kind})")
            added = [(p["height"], (p["peak_memory_bytes"] - p["baseline_memory_bytes"]) / 2**30) for p in pts
                     if p.get("baseline_memory_bytes") is not None
                     and p["peak_memory_bytes"] - p["baseline_memory_bytes"] >= 2**20]
            a2.plot([h for h, _ in added], [v for _, v in added], "o-", color=line.get_color())
        a1.set_ylabel("peak during encode + decode (GiB)")
        a2.set_ylabel("added by encode + decode (GiB, ≥ 1 MiB)")
        fig.subplots_adjust(wspace=0.35)
        a2.set_yscale("log")
        for a in (a1, a2):
            _axes_heights(a, heights)
        _legend(a1)
        fig.suptitle("Peak memory against resolution")
        written += _save(fig, out, "scaling_memory")
        plt.close(fig)

        # codebook utilization with the paper's reference numbers
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ref_h = sorted(PAPER_FIG29)
        ax.plot(ref_h, [PAPER_FIG29[h] for h in ref_h], "k:", marker="x",
                label="PyraTok paper, Fig. 29 (reported, not measured here)")
        without = []
        for _, d in docs:
            pts = [p for p in _ok(d) if p.get("utilization", {}).get("value") is not None]
            if pts:
                ax.plot([p["height"] for p in pts], [100 * p["utilization"]["value"] for p in pts], "o-",
                        label=series_label(d))
            else:
                without.append(str(d.get("model", {}).get("id", "?")))
        if without:
            ax.text(0.02, 0.04, "no discrete code levels (no utilization): " + ", ".join(sorted(set(without))),
                    transform=ax.transAxes, fontsize=7, color="0.35")
        ax.set_ylabel("codebook utilization (%)")
        ax.set_ylim(0, 105)
        _axes_heights(ax, sorted(set(heights) | set(ref_h)))
        _legend(ax)
        ax.set_title("Codebook utilization against resolution")
        written += _save(fig, out, "scaling_utilization")
        plt.close(fig)
    return written
