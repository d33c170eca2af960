"""Reading score inputs (.npy, .npz, .csv/.txt, .json) into checked float arrays, with errors naming file and entry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.errors import DataError


def load_array(path: str | Path, ndim: int | tuple[int, ...] | None = None, key: str | None = None,
               finite: bool = True, dtype=np.float64) -> np.ndarray:
    """A numeric array from .npy (no pickles), .npz (`key` or its only array), .json (nested lists) or text."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.keys())
                if key is None and len(names) != 1:
                    raise DataError(str(path), f"holds arrays {names}; name one")
                name = key or names[0]
                if name not in z:
                    raise DataError(str(path), f"has no array {name!r} (it holds {names})")
                arr = z[name]
        elif suffix == ".json":
            arr = np.asarray(json.loads(path.read_text(encoding="utf-8")))
        else:
            arr = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)
    except DataError:
        raise
    except Exception as exc:  # numpy raises many kinds for a bad file
        raise DataError(str(path), f"cannot be read as a numeric array ({type(exc).__name__}: {exc})") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(str(path), f"holds {arr.dtype} values, not numbers")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise DataError(str(path), f"has shape {arr.shape}; expected {' or '.join(f'{d}-D' for d in allowed)}")
    arr = arr.astype(dtype, copy=False)
    if finite and np.issubdtype(arr.dtype, np.floating):
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            raise DataError(str(path), f"entry {tuple(int(i) for i in bad[0])} is {arr[tuple(bad[0])]} "
                                       f"({len(bad)} non-finite entries)")
    return arr
