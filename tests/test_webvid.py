import csv
import shutil
from pathlib import Path

import pytest

from harness.dataset import ensure_mini
from harness.video import probe, write_video
from tasks.webvid import MINI_ITEMS, list_split, parse_duration, read_results_csv, write_webvid_mini
from tests.conftest import moving_frames
from tests.datasets_helpers import assert_downsample_is_lossy, check_data, run_task, same_bytes, truncate


@pytest.fixture(scope="module")
def webvid_mini(cache_root):
    return ensure_mini("webvid", cache_root=cache_root)


def test_duration_is_iso8601_hours_minutes_seconds():
    assert parse_duration("PT00H00M11S") == 11
    assert parse_duration("PT01H02M03S") == 3723
    for bad in ("PT11S", "00:00:11", "PT00H00M61S", "PT0H0M1S", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize("resaved", [False, True])
def test_reader_selects_columns_by_name_and_keeps_quoted_captions(tmp_path, resaved):
    # a mirror's column order; a caption with a comma, one with doubled quotes, one spanning two lines;
    # `resaved`: the same file written back by a spreadsheet on Windows (UTF-8 BOM, CRLF line ends)
    text = (
        b"videoid,contentUrl,duration,page_dir,name\n"
        b'1053841541,https://x/1.mp4,PT00H00M17S,027701_027750,"Travel blogger, mountains"\n'
        b'21,https://x/2.mp4,PT00H00M05S,000001_000050,"""Quoted"" title"\n'
        b'22,https://x/3.mp4,PT00H00M07S,000001_000050,"two\nlines"\n'
        b"23,https://x/4.mp4,00:00:07,000001_000050,bad duration\n"
        b"24,https://x/5.mp4,PT00H00M09S,000001_000050,flat layout\n"
        b"25,https://x/6.mp4,PT00H00M09S,000001_000050,no video\n")
    if resaved:
        text = b"\xef\xbb\xbf" + text.replace(b"\n", b"\r\n").replace(b'"two\r\nlines"', b'"two\nlines"')
    (tmp_path / "results_2M_val.csv").write_bytes(text)
    rows, rejected = read_results_csv(tmp_path / "results_2M_val.csv")
    assert [(r.videoid, r.caption, r.duration, r.line) for r in rows] == [
        ("1053841541", "Travel blogger, mountains", 17, 2), ("21", '"Quoted" title', 5, 3),
        ("22", "two\nlines", 7, 4), ("24", "flat layout", 9, 7), ("25", "no video", 9, 8)]
    assert [r["error"] for r in rejected] == [
        f"{tmp_path / 'results_2M_val.csv'}:6: duration '00:00:07' is not of the form PTxxHxxMxxS"]
    for vid, rel in (("1053841541", "videos/027701_027750"), ("21", "videos/000001_000050"),
                     ("22", "videos/000001_000050"), ("24", "videos")):
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
        write_video(tmp_path / rel / f"{vid}.mp4", moving_frames(4, 32, 32), 25)
    listing = list_split(tmp_path)
    assert sorted(s.id for s in listing.samples) == ["1053841541", "21", "22", "24"]
    assert {s.id: s.meta["caption"] for s in listing.samples}["1053841541"] == "Travel blogger, mountains"
    missing = [r["error"] for r in listing.rejected if "missing" in r["error"]]
    assert missing == [f"{tmp_path / 'videos' / '000001_000050' / '25.mp4'}: file is missing"]


def test_mini_split_has_the_real_format(webvid_mini):
    raw = (webvid_mini / "results_2M_val.csv").read_bytes()
    assert raw.startswith(b"videoid,name,page_idx,page_dir,duration,contentUrl\n")
    rows = list(csv.DictReader(raw.decode().splitlines()))
    assert len(rows) == len(MINI_ITEMS) == 12
    assert any("," in r["name"] for r in rows) and any('"' in r["name"] for r in rows)
    assert all(r["duration"] == "PT00H00M01S" for r in rows)
    for r in rows:
        first = (int(r["page_idx"]) - 1) // 50 * 50 + 1
        assert r["page_dir"] == f"{first:06d}_{first + 49:06d}"
    listing = list_split(webvid_mini)
    assert len(listing.samples) == 12 and not listing.rejected
    info = probe(listing.samples[0].path)
    assert (info.height, info.width, info.num_frames, info.codec) == (256, 448, 25, "h264")
    captions = [s.meta["caption"].lower() for s in listing.samples]
    assert sum("slides left" in c for c in captions) == 1 and sum("rabbit" in c for c in captions) == 1


def test_mini_split_is_byte_deterministic(webvid_mini, tmp_path):
    write_webvid_mini(tmp_path, seed=0)
    assert same_bytes(webvid_mini, tmp_path) == 13


def test_check_data_passes_on_the_mini_split_and_names_planted_faults(webvid_mini, tmp_path):
    code, report = check_data("webvid", webvid_mini, tmp_path / "ok.json")
    assert code == 0 and report["listed"] == report["decoded"] == 12
    root = tmp_path / "webvid"
    shutil.copytree(webvid_mini, root)
    samples = list_split(root).samples
    missing, truncated = Path(samples[2].path), Path(samples[5].path)
    missing.unlink()
    truncate(truncated, 0.5)
    meta = root / "results_2M_val.csv"
    meta.write_bytes(meta.read_bytes() + b"99,a caption,1,000001_000050,PT00H00M1S,https://x/99.mp4\n")
    code, report = check_data("webvid", root, tmp_path / "bad.json")
    assert code == 1
    errors = [r["error"] for r in report["rejected"]]
    assert len(errors) == 2
    assert errors[0] == f"{meta}:14: duration 'PT00H00M1S' is not of the form PTxxHxxMxxS"
    assert errors[1] == f"{missing}: file is missing"
    assert [u["path"] for u in report["undecodable"]] == [str(truncated)]


@pytest.mark.slow
def test_webvid_recon_end_to_end(webvid_mini, tmp_path):
    res = run_task("webvid-recon", "downsample", tmp_path / "r", tmp_path / "c", "--limit", "1")
    assert_downsample_is_lossy(res, 1)
    p = res["task"]["protocol"]
    assert (p["num_frames"], p["resize"], p["crop"], p["split"]) == (17, 256, 256, "results_2M_val")
