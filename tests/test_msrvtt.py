import json
import shutil
from pathlib import Path

import pytest

from harness.dataset import ensure_mini
from harness.errors import DataError, MissingDataError
from harness.video import write_video
from tasks.mini.scenes import MOTIONS
from tasks.msrvtt import MINI_VIDEOS, list_split, write_msrvtt_mini
from tests.conftest import moving_frames
from tests.datasets_helpers import check_data, same_bytes, truncate


@pytest.fixture(scope="module")
def msrvtt_mini(cache_root):
    return ensure_mini("msrvtt", cache_root=cache_root)


def _video(v: dict) -> dict:
    return {"category": 9, "url": "https://www.youtube.com/watch?v=x", "video_id": v["id"], "start time": 137.72,
            "end time": 149.44, "split": v["split"], "id": int(v["id"][5:])}


def _original_copy(root: Path) -> None:
    """The original release: two JSON files, TrainValVideo/ and TestVideo/, a JSFusion CSV."""
    trainval = [{"id": "video0", "split": "train"}, {"id": "video6513", "split": "validate"}]
    test = [{"id": "video7010", "split": "test"}, {"id": "video9770", "split": "test"}]
    sentences = lambda vids: [  # noqa: E731
        {"caption": f"caption {k} of {v['id']}", "video_id": v["id"], "sen_id": 1000 - i * 20 - k}
        for i, v in enumerate(vids) for k in range(20)]
    for name, vids in (("train_val_videodatainfo.json", trainval), ("test_videodatainfo.json", test)):
        (root / name).write_text(json.dumps({"info": {}, "videos": [_video(v) for v in vids],
                                             "sentences": sentences(vids)}))
    for folder, vid in (("TrainValVideo", "video0"), ("TrainValVideo", "video6513"), ("TestVideo", "video7010")):
        (root / folder).mkdir(exist_ok=True)
        write_video(root / folder / f"{vid}.mp4", moving_frames(4, 32, 32), 25)
    (root / "MSRVTT_JSFUSION_test.csv").write_bytes(
        b"key,vid_key,video_id,sentence\nret0,msr7010,video7010,a person is connecting something to system\n"
        b"ret1,msr9770,video9770,a man, with a comma\nret2,msr9771,clip9771,bad id\n")


def test_reader_reads_the_original_files(tmp_path):
    _original_copy(tmp_path)
    train = list_split(tmp_path, "train")
    assert [s.id for s in train.samples] == ["video0"] and not train.rejected
    meta = train.samples[0].meta
    assert len(meta["captions"]) == 20 and meta["sen_ids"] == sorted(meta["sen_ids"])
    assert meta["captions"][0] == "caption 19 of video0"  # the lowest sen_id first
    assert (meta["start"], meta["end"], meta["category"], meta["split"]) == (137.72, 149.44, 9, "train")
    assert [s.id for s in list_split(tmp_path, "validate").samples] == ["video6513"]
    test = list_split(tmp_path, "test")
    assert [s.id for s in test.samples] == ["video7010"]
    assert [r["error"] for r in test.rejected] == [f"{tmp_path / 'videos/all/video9770.mp4'}: file is missing"]
    k1a = list_split(tmp_path, "1k-A")
    assert [(s.id, s.meta["query"], s.meta["key"]) for s in k1a.samples] == [
        ("video7010", "a person is connecting something to system", "ret0")]
    errors = [r["error"] for r in k1a.rejected]
    # the unquoted comma gives a 5th field on line 3; line 4's id is not videoN
    assert errors[0].startswith(f"{tmp_path / 'MSRVTT_JSFUSION_test.csv'}:3: has 5 fields")
    assert errors[1] == f"{tmp_path / 'MSRVTT_JSFUSION_test.csv'}:4: video_id 'clip9771' is not of the form videoN"


def test_bad_json_and_missing_files_are_named(tmp_path):
    with pytest.raises(MissingDataError, match="MSRVTT_data.json"):
        list_split(tmp_path, "test")
    (tmp_path / "msrvtt_data").mkdir()
    (tmp_path / "msrvtt_data" / "MSRVTT_data.json").write_text('{"videos": [\n{"video_id": "video0",}\n]}')
    with pytest.raises(DataError) as err:
        list_split(tmp_path, "test")
    assert f"{tmp_path / 'msrvtt_data' / 'MSRVTT_data.json'}:2:" in str(err.value)
    (tmp_path / "msrvtt_data" / "MSRVTT_data.json").write_text(json.dumps(
        {"videos": [{"video_id": "video0", "split": "val"}, {"video_id": "video1"}], "sentences": []}))
    listing = list_split(tmp_path, "train")
    assert [r["error"].split(": ", 1)[1] for r in listing.rejected] == [
        "videos[0]: split 'val' is not one of ('train', 'validate', 'test')", "videos[1]: lacks the key 'split'"]


def test_mini_split_has_the_real_format(msrvtt_mini):
    data = json.loads((msrvtt_mini / "msrvtt_data" / "MSRVTT_data.json").read_text())
    assert set(data) == {"info", "videos", "sentences"}
    v = data["videos"][0]
    assert set(v) == {"category", "url", "video_id", "start time", "end time", "split", "id"}
    assert {x["split"] for x in data["videos"]} == {"train", "validate", "test"}
    assert sorted(s["sen_id"] for s in data["sentences"]) == list(range(20 * len(MINI_VIDEOS)))
    assert [s["video_id"] for s in data["sentences"][:5]] != [v["video_id"]] * 5  # not ordered by video
    csv = (msrvtt_mini / "msrvtt_data" / "MSRVTT_JSFUSION_test.csv").read_text().splitlines()
    assert csv[0] == "key,vid_key,video_id,sentence" and csv[1].startswith("ret0,msr7010,video7010,")
    counts = {s: len(list_split(msrvtt_mini, s).samples) for s in ("train", "validate", "test", "1k-A", "train-9k")}
    assert counts == {"train": 6, "validate": 2, "test": 8, "1k-A": 8, "train-9k": 8}
    for s in list_split(msrvtt_mini, "1k-A").samples:
        motion = MOTIONS[s.meta["category"]]
        assert s.meta["query"] in s.meta["captions"] and len(set(s.meta["captions"])) == 20
        assert s.meta["captions"][0].islower()
        assert any(motion in c for c in s.meta["captions"])  # the captions describe the motion the clip shows


def test_mini_split_is_byte_deterministic(msrvtt_mini, tmp_path):
    write_msrvtt_mini(tmp_path, seed=0)
    assert same_bytes(msrvtt_mini, tmp_path) == len(MINI_VIDEOS) + 3


def test_check_data_passes_on_the_mini_split_and_names_planted_faults(msrvtt_mini, tmp_path):
    code, report = check_data("msrvtt", msrvtt_mini, tmp_path / "ok.json")
    assert code == 0 and report["listed"] == report["decoded"] == len(MINI_VIDEOS)
    root = tmp_path / "msrvtt"
    shutil.copytree(msrvtt_mini, root)
    (root / "videos" / "all" / "video9999.mp4").unlink()  # in test and 1k-A: reported once
    truncate(root / "videos" / "all" / "video3.mp4", 0.5)
    jsf = root / "msrvtt_data" / "MSRVTT_JSFUSION_test.csv"
    jsf.write_bytes(jsf.read_bytes() + b"ret8,msr42,video42\n")
    code, report = check_data("msrvtt", root, tmp_path / "bad.json")
    assert code == 1
    errors = [r["error"] for r in report["rejected"]]
    assert errors == [f"{root / 'videos/all/video9999.mp4'}: file is missing",
                      f"{jsf}:10: has 3 fields, the header 4: ['ret8', 'msr42', 'video42']"]
    assert [u["path"] for u in report["undecodable"]] == [str(root / "videos" / "all" / "video3.mp4")]
