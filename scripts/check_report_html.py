"""Check the static leaderboard page in a real headless browser (Chromium), and take a screenshot.

    apt-get install -y chromium            # Debian's package; any Chromium/Chrome binary works (--chromium PATH)
    python scripts/check_report_html.py [--results results] [--screenshot /tmp/pyratok-leaderboard.png]

It copies the results folder to a temporary one, adds a copy of one result under a hostile model name (markup that
would mark the page if it ever ran), builds the report there, and loads the page with Chromium:
  1. --dump-dom of `leaderboard.html#sort=board-0:2:asc`: the page's script ran (column 2 sorted ascending, its
     header marked aria-sort=ascending), no injected markup ran (no data-pwned mark, one <script> element, no <img>
     outside the plots), and the hostile name is shown as text;
  2. a screenshot of the page, for a look with an image viewer.
Exit status 0 when every check passes. The repository's results folder is never modified.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.io import read_json, write_json  # noqa: E402
from harness.report.build import write_report  # noqa: E402

HOSTILE = ("<script>document.documentElement.setAttribute('data-pwned','script')</script>"
           "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.html_attrs: dict = {}
        self.scripts = 0
        self.imgs: list[dict] = []
        self.text: list[str] = []
        self.table = None  # rows of data-sort-value of table board-0
        self.th_sort: dict[str, str] = {}
        self._in_board = False
        self._row: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        elif tag == "script":
            self.scripts += 1
        elif tag == "img":
            self.imgs.append(a)
        elif tag == "table":
            self._in_board = a.get("id") == "board-0"
            if self._in_board:
                self.table = []
        elif self._in_board and tag == "th" and "data-col" in a:
            self.th_sort[a["data-col"]] = a.get("aria-sort", "")
        elif self._in_board and tag == "tr":
            self._row = []
        elif self._in_board and tag == "td" and self._row is not None:
            self._row.append(a.get("data-sort-value", ""))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_board = False
        elif tag == "tr" and self._in_board and self._row:
            self.table.append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)


def chromium(binary: str, *args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="pyratok-chromium-")
    try:
        return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def add_hostile_copy(root: Path) -> None:
    """A copy of the first result under a hostile model id (its own folder; the numbers stay real)."""
    src = next(iter(sorted(root.glob("*/*/*/result.json"))), None)
    if src is None:
        raise SystemExit(f"no result files under {root}: run `python -m harness sweep sweeps/reference.yaml` first")
    dst = root / "hostile" / src.parent.parent.name / src.parent.name
    shutil.copytree(src.parent, dst)
    data = read_json(dst / "result.json")
    data["model"]["id"] = HOSTILE
    data["model"]["args"] = {**data["model"].get("args", {}), "note": HOSTILE}
    write_json(dst / "result.json", data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--screenshot", default="/tmp/pyratok-leaderboard.png")
    ap.add_argument("--window-size", default="1400,1000")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pyratok-report-check-"))
    failures = []
    try:
        root = work / "results"
        shutil.copytree(args.results, root, ignore=shutil.ignore_patterns("leaderboard.*"))
        add_hostile_copy(root)
        write_report(root, sweeps=[p for p in [Path("sweeps")] if p.is_dir()])
        page = (root / "leaderboard.html").resolve()

        dump = chromium(args.chromium, "--dump-dom", f"{page.as_uri()}#sort=board-0:2:asc")
        if dump.returncode != 0 or "<html" not in dump.stdout:
            print(dump.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"chromium failed (exit {dump.returncode}); is it installed? (apt-get install chromium)")
        dom = _Dom()
        dom.feed(dump.stdout)
        checks = {
            "no injected markup ran (no data-pwned mark)": "data-pwned" not in dom.html_attrs,
            "exactly one <script> element (the page's own)": dom.scripts == 1,
            "no <img> outside the scaling plots": all(i.get("src", "").startswith("scaling/") for i in dom.imgs),
            "the hostile name is shown as text": any(HOSTILE in t for t in dom.text),
            "the sort script ran: column 2 marked ascending": dom.th_sort.get("2") == "ascending",
        }
        values = [float(r[2]) for r in (dom.table or []) if len(r) > 2 and r[2]]
        checks["rows are in ascending order of column 2"] = len(values) >= 2 and values == sorted(values)
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
            if not ok:
                failures.append(name)

        shot = chromium(args.chromium, f"--screenshot={Path(args.screenshot).resolve()}",
                        f"--window-size={args.window_size}", page.as_uri())
        if shot.returncode == 0 and Path(args.screenshot).exists():
            print(f"screenshot: {args.screenshot}")
        else:
            failures.append("screenshot")
            print(f"FAIL  screenshot (exit {shot.returncode}): {shot.stderr[-500:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
