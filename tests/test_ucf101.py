import filecmp
from pathlib import Path

import pytest

from harness.errors import MissingDataError
from harness.video import write_video
from tasks.ucf101 import MINI_CLASSES, list_split, read_class_index, write_ucf101_mini
from tests.conftest import moving_frames


def _hand_made_copy(root: Path) -> None:
    """A tiny UCF-101 copy with the real files' quirks: CRLF, unlabeled test lists, HandStand file names."""
    classes = ["ApplyEyeMakeup", "HammerThrow", "Hammering", "HandstandPushups"]  # case-insensitive order
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "ucfTrainTestlist" / "classInd.txt").write_bytes(
        b"".join(f"{i} {c}\r\n".encode() for i, c in enumerate(classes, 1)))
    videos = {"HandstandPushups/v_HandStandPushups_g01_c01.avi", "Hammering/v_Hammering_g02_c03.avi",
              "HammerThrow/v_HammerThrow_g08_c01.avi"}
    for rel in videos:
        (root / "UCF-101" / rel).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / "UCF-101" / rel, moving_frames(6, 32, 32), 25, codec="mpeg4", codec_tag="XVID")
    (root / "ucfTrainTestlist" / "testlist01.txt").write_bytes(
        b"HandstandPushups/v_HandStandPushups_g01_c01.avi\r\nHammering/v_Hammering_g02_c03.avi\r\n"
        b"Hammering/v_Hammering_g03_c01.avi\r\nthis line is wrong\r\n")
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_bytes(
        b"HammerThrow/v_HammerThrow_g08_c01.avi 2\r\nHammering/v_Hammering_g02_c03.avi 1\r\n")


def test_reader_parses_the_real_quirks(tmp_path):
    _hand_made_copy(tmp_path)
    classes = read_class_index(tmp_path / "ucfTrainTestlist" / "classInd.txt")
    assert classes == {"ApplyEyeMakeup": 0, "HammerThrow": 1, "Hammering": 2, "HandstandPushups": 3}
    listing = list_split(tmp_path, "testlist01")
    got = {s.id: s.meta["label"] for s in listing.samples}
    assert got == {"HandstandPushups/v_HandStandPushups_g01_c01": 3, "Hammering/v_Hammering_g02_c03": 2}
    errors = sorted(r["error"] for r in listing.rejected)
    assert any("v_Hammering_g03_c01.avi: file is missing" in e for e in errors)
    assert any("testlist01.txt:4" in e and "this line is wrong" in e for e in errors)
    train = list_split(tmp_path, "trainlist01")
    assert [s.id for s in train.samples] == ["HammerThrow/v_HammerThrow_g08_c01"]
    assert "disagrees with classInd" in train.rejected[0]["error"] and "trainlist01.txt:2" in train.rejected[0]["error"]


def test_missing_split_file_names_the_expected_path(tmp_path):
    _hand_made_copy(tmp_path)
    with pytest.raises(MissingDataError) as err:
        list_split(tmp_path, "testlist02")
    assert str(tmp_path / "ucfTrainTestlist" / "testlist02.txt") in str(err.value)


def test_mini_split_has_the_real_layout(ucf_mini):
    split = ucf_mini / "ucfTrainTestlist"
    raw = (split / "classInd.txt").read_bytes()
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
    names = [line.split()[1] for line in raw.decode().splitlines()]
    assert names == sorted(MINI_CLASSES, key=str.lower) != sorted(MINI_CLASSES)  # the official order differs
    assert names.index("Hammering") < names.index("HammerThrow") and names.index("JumpingJack") < names.index(
        "JumpRope")
    test = (split / "testlist01.txt").read_bytes().decode().splitlines()
    assert all(len(line.split()) == 1 for line in test)
    train = (split / "trainlist01.txt").read_bytes().decode().splitlines()
    assert all(len(line.split()) == 2 for line in train)
    assert (ucf_mini / "UCF-101" / "HandstandPushups" / "v_HandStandPushups_g01_c01.avi").exists()
    for k in (1, 2, 3):
        listing = list_split(ucf_mini, f"testlist0{k}")
        assert len(listing.samples) == 16 and not listing.rejected


def test_mini_split_is_byte_deterministic(ucf_mini, tmp_path):
    write_ucf101_mini(tmp_path, seed=0)
    cmp = filecmp.dircmp(ucf_mini, tmp_path, ignore=[".complete"])
    files = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 64 + 7
    for rel in files:
        assert filecmp.cmp(ucf_mini / rel, tmp_path / rel, shallow=False), rel
    assert not cmp.left_only and not cmp.right_only
