import json
import shutil
from pathlib import Path

import pytest

from harness.dataset import Dataset, ensure_mini
from harness.errors import DataError
from harness.video import VideoDecodeError, probe, write_video
from tasks.ssv2 import MINI_LABELS, SSv2, list_split, read_labels, strip_template, write_ssv2_mini
from tests.conftest import moving_frames
from tests.datasets_helpers import check_data, same_bytes, truncate


@pytest.fixture(scope="module")
def ssv2_mini(cache_root):
    return ensure_mini("ssv2", cache_root=cache_root)


def _hand_made_copy(root: Path, old_names: bool = False) -> Path:
    """Labels whose `label` text would mislead a lookup, string ids, the older 20BN file names on request."""
    labels = {"Approaching something with your camera": "0", "Moving something up": "1",
              "Putting something on a surface": "2"}
    val = [{"id": "74225", "label": "putting cube on a surface", "template": "Putting [something] on a surface",
            "placeholders": ["cube"]},
           {"id": "1420", "label": "moving something up", "template": "Moving [something] up",
            "placeholders": ["pen"]},
           {"id": 77, "label": "x", "template": "Moving [something] up", "placeholders": ["x"]},
           {"id": "5", "label": "y", "template": "Dropping [something]", "placeholders": ["y"]},
           {"id": "6", "label": "z", "template": "Moving [something] up", "placeholders": ["z"]}]
    folder = root if old_names else root / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "something-something-v2-" if old_names else ""
    (folder / f"{prefix}labels.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(labels, indent=4).encode())
    (folder / f"{prefix}validation.json").write_text(json.dumps(val))
    videos = root / "20bn-something-something-v2"
    videos.mkdir(parents=True, exist_ok=True)
    for vid in ("74225", "1420"):
        write_video(videos / f"{vid}.webm", moving_frames(4, 32, 48), 12, codec="libvpx-vp9")
    return folder / f"{prefix}validation.json"


@pytest.mark.parametrize("old_names", [False, True])
def test_class_comes_from_the_bracket_stripped_template(tmp_path, old_names):
    val_file = _hand_made_copy(tmp_path, old_names)
    listing = list_split(tmp_path, "validation")
    got = {s.id: (s.meta["label"], s.meta["class"], s.meta["placeholders"]) for s in listing.samples}
    assert got == {"74225": (2, "Putting something on a surface", ["cube"]),
                   "1420": (1, "Moving something up", ["pen"])}
    assert all(isinstance(s.id, str) for s in listing.samples)
    errors = [r["error"] for r in listing.rejected]
    assert errors == [f"{val_file}: [2]: id 77 is not a string of digits",
                      f"{val_file}: [3]: template 'Dropping [something]' (as 'Dropping something') is not in "
                      "labels.json",
                      f"{tmp_path / '20bn-something-something-v2' / '6.webm'}: file is missing"]


def test_labels_json_needs_string_indices(tmp_path):
    assert strip_template("Moving [something] from left to right") == "Moving something from left to right"
    (tmp_path / "labels.json").write_text('{"Moving something up": 0}')
    with pytest.raises(DataError, match="expected a digit string"):
        read_labels(tmp_path / "labels.json")


def test_mini_split_has_the_real_format(ssv2_mini):
    labels = json.loads((ssv2_mini / "labels" / "labels.json").read_text())
    assert all(isinstance(v, str) for v in labels.values())
    assert set(labels) == {strip_template(t) for t in MINI_LABELS} and "[" not in "".join(labels)
    val = json.loads((ssv2_mini / "labels" / "validation.json").read_text())
    assert all(isinstance(e["id"], str) and "[something]" in e["template"] for e in val)
    assert all(set(e) == {"id", "label", "template", "placeholders"} for e in val)
    test = json.loads((ssv2_mini / "labels" / "test.json").read_text())
    assert all(set(e) == {"id"} for e in test) and len(test) == 3
    listing = list_split(ssv2_mini, "validation")
    assert len(listing.samples) == 2 * len(MINI_LABELS) and not listing.rejected
    for s in listing.samples:
        assert s.meta["label"] == int(labels[strip_template(s.meta["template"])])
        color, shape = s.meta["placeholders"][0].split()
        assert s.meta["label_text"] == s.meta["template"].replace("[something]", f"{color} {shape}").lower()
    widths = set()
    for s in listing.samples[:4]:
        info = probe(s.path)
        assert (info.codec, info.fps, info.height) == ("vp9", 12.0, 240)
        widths.add(info.width)
    assert len(widths) > 1  # variable width
    assert len(list_split(ssv2_mini, "test").samples) == 3


def test_mini_split_is_byte_deterministic(ssv2_mini, tmp_path):
    write_ssv2_mini(tmp_path, seed=0)
    assert same_bytes(ssv2_mini, tmp_path) == 3 * len(MINI_LABELS) + 3 + 4


def test_check_data_passes_on_the_mini_split_and_names_planted_faults(ssv2_mini, tmp_path):
    code, report = check_data("ssv2", ssv2_mini, tmp_path / "ok.json")
    assert code == 0 and report["listed"] == report["decoded"] == 3 * len(MINI_LABELS) + 3
    root = tmp_path / "ssv2"
    shutil.copytree(ssv2_mini, root)
    samples = list_split(root, "validation").samples
    missing, truncated = Path(samples[0].path), Path(samples[1].path)
    missing.unlink()
    truncate(truncated, 0.9)  # a WebM cut short still opens and its last frame decodes: only the header's duration
    with pytest.raises(VideoDecodeError, match="truncated"):  # gives it away, which the default check compares
        Dataset.check_load(SSv2(), samples[1])
    train = root / "labels" / "train.json"
    entries = json.loads(train.read_text())
    entries[2]["template"] = "Moving [something] sideways"
    train.write_text(json.dumps(entries))
    code, report = check_data("ssv2", root, tmp_path / "bad.json")
    assert code == 1
    errors = [r["error"] for r in report["rejected"]]
    assert errors == [f"{train}: [2]: template 'Moving [something] sideways' (as 'Moving something sideways') is not "
                      "in labels.json", f"{missing}: file is missing"]
    assert [u["path"] for u in report["undecodable"]] == [str(truncated)]
    assert "truncated" in report["undecodable"][0]["error"]
