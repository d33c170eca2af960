import filecmp
import json
import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import DataError
from harness.video import probe, write_video
from tasks.activitynet import (ANET_JSON, find_videos, list_activitynet, list_anet_captions, load_activitynet,
                               load_anet_captions, load_caption_ids, write_activitynet_mini)
from tasks.mini.vocab import ACTIVITYNET_MINI_CLASSES
from tests.conftest import moving_frames


@pytest.fixture(scope="module")
def anet_mini(cache_root) -> Path:
    from harness.dataset import ensure_mini

    return ensure_mini("activitynet", cache_root=cache_root)


TAXONOMY = [{"nodeId": 0, "nodeName": "Root", "parentId": None, "parentName": None},
            {"nodeId": 1, "nodeName": "Sports", "parentId": 0, "parentName": "Root"},
            {"nodeId": 2, "nodeName": "Ballet", "parentId": 1, "parentName": "Sports"},
            {"nodeId": 3, "nodeName": "Playing water polo", "parentId": 1, "parentName": "Sports"}]


def _hand_made_anet(root: Path) -> None:
    """v1.3 keys without v_ (one all digits, one starting with '-'), Captions keys with v_ and leading-space
    sentences, an empty testing entry, .mkv/.webm files, and two malformed entries."""
    database = {
        "QOlSCBRmfWY": {"subset": "validation", "duration": 82.73, "resolution": "1920x1080",
                        "url": "https://www.youtube.com/watch?v=QOlSCBRmfWY",
                        "annotations": [{"segment": [6.195294851794072, 77.73085420904837], "label": "Ballet"}]},
        "-01K1HxqPB8": {"subset": "training", "duration": 10.0, "resolution": "640x360", "url": "",
                        "annotations": [{"segment": [1.5, 9.25], "label": "Playing water polo"},
                                        {"segment": [0.0, 1.0], "label": "Playing water polo"}]},
        "12345678901": {"subset": "testing", "duration": 30.5, "resolution": "320x240", "url": "", "annotations": []},
        "badsegment0": {"subset": "validation", "duration": 5.0, "annotations": [{"segment": [4.0, 2.0],
                                                                                  "label": "Ballet"}]},
        "badsubset00": {"subset": "val", "duration": 5.0, "annotations": []},
    }
    (root / ANET_JSON).write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": TAXONOMY, "database": database}))
    caps = root / "captions"
    caps.mkdir()
    (caps / "val_1.json").write_text(json.dumps({
        "v_QOlSCBRmfWY": {"duration": 82.73, "timestamps": [[0.83, 19.86], [17.37, 60.81]],
                          "sentences": ["A young woman is seen standing in a room.", " She dances around the room.  "]},
        "v_12345678901": {"duration": 30.5, "timestamps": [[1.0, 2.0]], "sentences": []}}))
    (caps / "val_ids.json").write_text(json.dumps(["v_QOlSCBRmfWY"]))
    (root / "videos").mkdir()
    write_video(root / "videos" / "v_QOlSCBRmfWY.mkv", moving_frames(4, 32, 32), 30,
                container_options={"fflags": "+bitexact"})
    write_video(root / "videos" / "v_-01K1HxqPB8.webm", moving_frames(4, 32, 32), 25, codec="libvpx")
    write_video(root / "videos" / "v_12345678901.mp4", moving_frames(4, 32, 32), 30)


def test_reader_parses_the_real_quirks(tmp_path):
    _hand_made_anet(tmp_path)
    db = load_activitynet(tmp_path / ANET_JSON)
    assert db.version == "VERSION 1.3" and db.labels() == ["Ballet", "Playing water polo"]
    assert set(db.videos) == {"QOlSCBRmfWY", "-01K1HxqPB8", "12345678901"}  # keys stay strings, no v_
    assert db.videos["12345678901"].annotations == () and db.videos["12345678901"].subset == "testing"
    assert db.videos["QOlSCBRmfWY"].annotations[0].t_start == 6.195294851794072  # full float precision
    errors = {r["sample_id"]: r["error"] for r in db.rejected}
    assert "forward interval" in errors["badsegment0"] and "'val'" in errors["badsubset00"]
    assert "database['badsegment0']" in errors["badsegment0"]
    gt = db.ground_truth("training")
    assert list(gt.columns) == ["video-id", "t-start", "t-end", "label"] and len(gt) == 2
    assert set(load_activitynet(tmp_path / ANET_JSON, "validation").videos) == {"QOlSCBRmfWY"}
    train = list_activitynet(tmp_path, "training")
    (s,) = train.samples
    assert s.id == "-01K1HxqPB8" and s.path.endswith("v_-01K1HxqPB8.webm")
    assert s.meta["segments"] == [[0.0, 1.0, "Playing water polo"], [1.5, 9.25, "Playing water polo"]]
    assert list_activitynet(tmp_path, "validation").samples[0].path.endswith(".mkv")
    assert list_activitynet(tmp_path, "testing").samples[0].meta["segments"] == []


def test_captions_strip_spaces_and_map_v_prefixed_keys(tmp_path):
    _hand_made_anet(tmp_path)
    caps = load_anet_captions(tmp_path / "captions" / "val_1.json")
    video = caps.videos["v_QOlSCBRmfWY"]
    assert video.youtube_id == "QOlSCBRmfWY" and video.sentences == (
        "A young woman is seen standing in a room.", "She dances around the room.")
    assert video.paragraph == "A young woman is seen standing in a room. She dances around the room."
    assert video.timestamps == ((0.83, 19.86), (17.37, 60.81))
    (bad,) = caps.rejected
    assert bad["sample_id"] == "12345678901" and "1 timestamps but 0 sentences" in bad["error"]
    assert load_caption_ids(tmp_path / "captions" / "val_ids.json") == ["v_QOlSCBRmfWY"]
    listing = list_anet_captions(tmp_path, "val_1")
    assert [s.id for s in listing.samples] == ["QOlSCBRmfWY"] and listing.samples[0].meta["key"] == "v_QOlSCBRmfWY"


def test_missing_top_level_keys_are_refused(tmp_path):
    (tmp_path / ANET_JSON).write_text(json.dumps({"database": {}}))
    with pytest.raises(DataError, match="taxonomy"):
        load_activitynet(tmp_path / ANET_JSON)


def test_mini_split_has_the_activitynet_layout_and_signal(anet_mini):
    raw = json.loads((anet_mini / ANET_JSON).read_text())
    assert set(raw) == {"version", "taxonomy", "database"} and not any(k.startswith("v_") for k in raw["database"])
    db = load_activitynet(anet_mini / ANET_JSON)
    assert db.labels() == sorted(ACTIVITYNET_MINI_CLASSES) and not db.rejected
    counts = {s: len([v for v in db.videos.values() if v.subset == s]) for s in ("training", "validation", "testing")}
    assert counts == {"training": 8, "validation": 4, "testing": 2}
    assert all(v.annotations == () for v in db.videos.values() if v.subset == "testing")
    assert {p.suffix for p in find_videos(anet_mini).values()} == {".mp4", ".mkv", ".webm"}
    assert any(k.startswith("-") for k in db.videos)
    for subset in ("training", "validation"):
        listing = list_activitynet(anet_mini, subset)
        assert not listing.rejected
        for s in listing.samples:
            assert len(s.meta["labels"]) == 1  # one activity per video, as in ActivityNet
            info = probe(s.path)
            assert abs(info.num_frames / info.fps - s.meta["duration"]) < 0.01
            assert all(0 <= a < b <= s.meta["duration"] for a, b, _ in s.meta["segments"])
    caps = {stem: load_anet_captions(anet_mini / "captions" / f"{stem}.json") for stem in ("train", "val_1", "val_2")}
    assert all(k.startswith("v_") for c in caps.values() for k in c.videos)
    assert {c.youtube_id for c in caps["train"].videos.values()} == {k for k, v in db.videos.items()
                                                                    if v.subset == "training"}
    assert len(caps["val_2"].videos) == len(caps["val_1"].videos) - 1
    raw_val = json.loads((anet_mini / "captions" / "val_1.json").read_text())
    assert any(s.startswith(" ") for v in raw_val.values() for s in v["sentences"][1:])
    for key, c in caps["val_1"].videos.items():
        v = db.videos[c.youtube_id]
        assert len(c.sentences) == len(v.annotations)
        for (a, b), seg, sentence in zip(c.timestamps, v.annotations, c.sentences):
            assert abs(a - seg.t_start) < 0.01 and abs(b - seg.t_end) < 0.01  # captions describe the segments
            assert ACTIVITYNET_MINI_CLASSES[seg.label].motion in sentence  # ... and name the labelled motion
    ids = load_caption_ids(anet_mini / "captions" / "test_ids.json")
    assert sorted(i[2:] for i in ids) == sorted(k for k, v in db.videos.items() if v.subset == "testing")


def test_mini_split_is_byte_deterministic(anet_mini, tmp_path):
    write_activitynet_mini(tmp_path, seed=0)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(anet_mini) for p in anet_mini.rglob("*")
                           if p.is_file() and p.name != ".complete")
    assert all(filecmp.cmp(anet_mini / f, tmp_path / f, shallow=False) for f in files)


def test_check_data_passes_on_the_mini_split(anet_mini, capsys):
    assert main(["check-data", "--dataset", "activitynet", "--data-root", str(anet_mini), "--no-progress"]) == 0
    assert "14 items listed, 14 decoded" in capsys.readouterr().out


def test_check_data_reports_planted_faults_precisely(anet_mini, tmp_path):
    root = tmp_path / "anet"
    shutil.copytree(anet_mini, root)
    videos = sorted((root / "videos").iterdir())
    videos[0].unlink()  # a missing video
    truncated = next(p for p in videos if p.suffix == ".mp4" and p != videos[0])
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    caps_path = root / "captions" / "train.json"
    caps = json.loads(caps_path.read_text())
    broken = next(iter(caps))
    caps[broken]["sentences"].append(" One sentence too many.")
    caps_path.write_text(json.dumps(caps))
    out = tmp_path / "report.json"
    assert main(["check-data", "--dataset", "activitynet", "--data-root", str(root), "--no-progress",
                 "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    rejected = [r["error"] for r in report["rejected"]]
    assert len(rejected) == 2
    assert any(str(caps_path) in e and broken in e and "sentences" in e for e in rejected)
    missing_id = videos[0].stem[2:]
    assert any(missing_id in e and "missing" in e and f"database[{missing_id!r}]" in e for e in rejected)
    assert [u["path"] for u in report["undecodable"]] == [str(truncated)]
