"""Reading a DAVIS 2017 root and a results folder of label PNGs, for `score davis`.

Layout: `<root>/ImageSets/2017/<set>.txt` (one sequence a line), `<root>/Annotations/480p/<seq>/00000.png ...`
(`Annotations_unsupervised` for the unsupervised task), results `<results>/<seq>/<same stem>.png`. Label PNGs are
indexed (mode P) or grayscale; the pixel value is the object id, 255 = void in the ground truth.
"""
from __future__ import annotations

import re
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from harness.errors import DataError, MissingDataError

DAVIS_URL = "https://davischallenge.org/davis2017/code.html"
LABEL_MODES = {"P", "L", "1", "I", "I;16"}
_READERS = 4  # PNG decoding releases the GIL: a few threads overlap it


SEQUENCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def read_image_set(path: str | Path) -> tuple[list[str], list[tuple[int, str]]]:
    """An `ImageSets/<year>/<set>.txt`: (sequence names in file order, bad lines as (line number, line)). One name a
    line; blank lines are skipped. The one parser of these files (the data set reader tasks/davis2017.py uses it)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"is not UTF-8 text ({exc})") from exc
    names, bad = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        (names.append(name) if SEQUENCE_NAME.match(name) else bad.append((lineno, line)))
    return names, bad


def davis_sequences(root: str | Path, subset: str = "val", task: str = "semi-supervised") -> list[str]:
    """Sequence names of `ImageSets/2017/<subset>.txt` (2019 for the unsupervised test sets, as the reference)."""
    root = Path(root)
    year = "2019" if task == "unsupervised" and subset in ("test-dev", "test-challenge") else "2017"
    path = root / "ImageSets" / year / f"{subset}.txt"
    if not path.is_file():
        raise MissingDataError(f"{path}: DAVIS subset list not found (DAVIS-2017-trainval-480p.zip from {DAVIS_URL})")
    names, bad = read_image_set(path)
    if bad:
        raise DataError(str(path), f"expected one sequence name per line, got {bad[0][1]!r}", bad[0][0])
    if not names:
        raise DataError(str(path), "lists no sequence")
    return names


def annotation_folder(root: str | Path, task: str = "semi-supervised", resolution: str = "480p") -> Path:
    folder = "Annotations" if task == "semi-supervised" else "Annotations_unsupervised"
    path = Path(root) / folder / resolution
    if not path.is_dir():
        raise MissingDataError(f"{path}: DAVIS annotations for the {task} task not found (from {DAVIS_URL})")
    return path


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_label_png_fast(data: bytes) -> np.ndarray | None:
    """Decode an 8-bit indexed or grayscale, non-interlaced PNG whose rows use filters None/Sub/Up (what label
    writers produce) straight from its zlib stream; None for anything else, which PIL then decodes.

    Lossless decoding has one answer, so this agrees with PIL byte for byte (tests check it); it is 3-5x faster on
    mask PNGs, where PIL's per-row machinery dominates the time."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    pos, idat, header = 8, [], None
    try:
        while pos + 8 <= len(data):
            n, kind = struct.unpack(">I4s", data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + n]
            pos += 12 + n
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
        if header is None:
            return None
        w, h, depth, colour, _, _, interlace = header
        if depth != 8 or colour not in (0, 3) or interlace != 0 or w == 0 or h == 0:
            return None
        raw = zlib.decompress(b"".join(idat))
    except (struct.error, zlib.error):
        return None
    if len(raw) != h * (w + 1):
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(h, w + 1)
    filters = rows[:, 0]
    out = rows[:, 1:].copy()
    if not filters.any():
        return out
    if filters.max() > 2:
        return None  # Average/Paeth: sequential within a row, leave them to PIL
    for y in np.flatnonzero(filters):
        if filters[y] == 1:  # Sub: running sum along the row, modulo 256
            out[y] = np.cumsum(out[y], dtype=np.uint8)
        elif y > 0:  # Up: add the decoded row above, modulo 256
            out[y] += out[y - 1]
    return out


PNG_COLOUR_MODES = {0: "L", 3: "P"}  # PNG colour type -> PIL mode, for the types the fast decoder handles


def label_mode_error(path: Path, mode: str, modes: frozenset[str] | set[str]) -> DataError:
    allowed = "an indexed (mode P) PNG" if set(modes) == {"P"} else (
        "an indexed (mode P) or grayscale (mode L) PNG" if set(modes) <= {"P", "L"} else
        f"a PNG of mode {', '.join(sorted(modes))}")
    return DataError(str(path), f"is a mode-{mode} image; expected {allowed} whose pixel values are object ids (an "
                                "RGB rendering of the palette colours cannot be read as ids)")


def read_label_png(path: str | Path, modes: frozenset[str] | set[str] = LABEL_MODES) -> np.ndarray:
    """Object ids of a label PNG as uint8 (H, W), read as indices (never converted to RGB); an image of another mode
    than `modes` (e.g. RGB) or an id above 255 is an error naming the file. The one reader of DAVIS label PNGs (the
    data set reader tasks/davis2017.py uses it with modes {"P"} for ground truth)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(str(path), "is missing") from None
    fast = decode_label_png_fast(data)
    colour = data[25] if data[12:16] == b"IHDR" else None  # IHDR, the first chunk, holds the colour type
    if fast is not None and colour in PNG_COLOUR_MODES:
        if PNG_COLOUR_MODES[colour] not in modes:
            raise label_mode_error(path, PNG_COLOUR_MODES[colour], modes)
        return fast
    try:
        with Image.open(path) as im:
            if im.mode not in modes:
                raise label_mode_error(path, im.mode, modes)
            arr = np.array(im)
    except FileNotFoundError:
        raise DataError(str(path), "is missing") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(str(path), f"cannot be read as a PNG ({type(e).__name__}: {e})") from None
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(str(path), f"holds ids outside 0..255 (max {arr.max()})")
        arr = arr.astype(np.uint8)
    return arr


def read_label_stack(paths: list[Path], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Label PNGs as one uint8 stack (T, H, W); every frame must have the same size (`shape` if given)."""
    with ThreadPoolExecutor(_READERS) as pool:
        frames = list(pool.map(read_label_png, paths))
    want = shape or frames[0].shape
    for p, fr in zip(paths, frames):
        if fr.shape != tuple(want):
            raise DataError(str(p), f"is {fr.shape[1]}x{fr.shape[0]} (WxH); expected {want[1]}x{want[0]}")
    return np.stack(frames)


def sequence_annotation_paths(ann_root: Path, sequence: str) -> list[Path]:
    paths = sorted((ann_root / sequence).glob("*.png"))
    if not paths:
        raise DataError(str(ann_root / sequence), "holds no annotation PNG")
    return paths


def result_paths(results: str | Path, sequence: str, stems: list[str]) -> list[Path]:
    """The result PNG of each stem; a missing one is an error naming the file."""
    folder = Path(results) / sequence
    if not folder.is_dir():
        raise DataError(str(folder), "results folder of this sequence is missing")
    paths = [folder / f"{s}.png" for s in stems]
    for p in paths:
        if not p.is_file():
            raise DataError(str(p), "result frame is missing (one indexed PNG per annotated frame, same stem)")
    return paths
