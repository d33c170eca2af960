"""Data sets: where the real copy comes from, and a deterministic mini split written in the same on-disk layout.

A task names its data set; with no --data-root the runner evaluates on the data set's mini split, generated once
into the cache folder (atomically: written to a temporary folder and renamed) and recorded as such in the result.
"""
from __future__ import annotations

import hashlib
import inspect
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from harness.cache import default_cache_root
from harness.io import write_text
from harness.task import Sample, SampleList


class Dataset(ABC):
    name: ClassVar[str]
    mini_version: ClassVar[int] = 1  # bump when the mini split's bytes change
    homepage: ClassVar[str] = ""  # where a user gets the real data
    layout: ClassVar[str] = ""  # the expected layout under --data-root, for error messages

    @abstractmethod
    def write_mini(self, out: Path, seed: int = 0) -> None:
        """Write the mini split into the empty folder `out`, deterministically for `seed`."""

    def check_listing(self, root: Path) -> SampleList:
        """Every media item referenced by every split/annotation file under `root`, with the reader's rejections
        (missing files, malformed lines as file:line). Used by `check-data --dataset`."""
        raise NotImplementedError(f"data set {self.name} does not implement check_listing")

    def check_load(self, sample: Sample) -> None:
        """Prove one item decodes: by default a video whose first and last frames decode and whose frame count
        matches its header (catches truncation, also in containers that state no frame count)."""
        from harness.video import verify_video

        verify_video(sample.path)

    def missing_message(self, root: Path, what: str) -> str:
        return (f"{what} not found under {root}. Expected the {self.name} layout: {self.layout}. "
                f"Get the data set from {self.homepage}, or run without --data-root to use the mini split.")


def get_dataset(name: str) -> Dataset:
    from harness.registry import DATASETS

    return DATASETS.get(name)()


def _writer_fingerprint(ds: Dataset) -> str:
    """A hash of the code that writes a mini split (its module, the shared scene code, the video writer), so a
    changed writer never serves a stale cached split."""
    import tasks.mini
    import harness.video

    files = {Path(inspect.getsourcefile(type(ds))), Path(inspect.getsourcefile(harness.video))}
    files |= set(Path(tasks.mini.__file__).parent.glob("*.py"))
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:10]


def mini_root(name: str, seed: int = 0, cache_root: str | Path | None = None) -> Path:
    ds = get_dataset(name)
    return (Path(cache_root or default_cache_root()) / "mini"
            / f"{name}-v{ds.mini_version}-{_writer_fingerprint(ds)}-seed{seed}")


def ensure_mini(name: str, seed: int = 0, cache_root: str | Path | None = None) -> Path:
    """The mini split's folder, generating it on first use."""
    target = mini_root(name, seed, cache_root)
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        get_dataset(name).write_mini(tmp, seed)
        write_text(tmp / ".complete", "")
        if target.exists():  # an incomplete earlier attempt
            shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_mini(name: str, out: str | Path, seed: int = 0) -> Path:
    """`make-mini`: write a data set's mini split into `out` (which must be empty or absent)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    get_dataset(name).write_mini(out, seed)
    return out
