import filecmp
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import MissingDataError
from harness.video import probe
from tasks.mini.scenes import render
from tasks.mini.timeline import timeline_scene
from tasks.mini.vocab import THUMOS_MINI_CLASSES, class_text
from tasks.thumos14 import (THUMOS_CLASSES, list_thumos, load_thumos_annotations, video_fps, write_thumos_mini)
from tests.conftest import moving_frames

LINE = re.compile(rb"^video_(validation|test)_\d{7}  \d+\.\d \d+\.\d$")


@pytest.fixture(scope="module")
def thumos_mini(cache_root) -> Path:
    from harness.dataset import ensure_mini

    return ensure_mini("thumos14", cache_root=cache_root)


def test_the_20_classes_and_their_ucf101_ids():
    assert len(THUMOS_CLASSES) == 20 and len(set(THUMOS_CLASSES.values())) == 20
    assert THUMOS_CLASSES["BaseballPitch"] == 7 and THUMOS_CLASSES["CliffDiving"] == 22
    assert THUMOS_CLASSES["Diving"] == 26 and THUMOS_CLASSES["VolleyballSpiking"] == 97
    assert class_text("CleanAndJerk") == "clean and jerk" and class_text("SlidesLeft") == "slides left"


def _hand_made_annotations(folder: Path) -> None:
    """Per-class files as the official zip has them: two spaces, one decimal, LF, CliffDiving lines repeated in
    Diving, Ambiguous apart, a readme, and two bad lines."""
    folder.mkdir(parents=True)
    (folder / "BaseballPitch_val.txt").write_bytes(
        b"video_validation_0000266  72.8 76.4\nvideo_validation_0000681  44.0 50.9\n")
    (folder / "CliffDiving_val.txt").write_bytes(b"video_validation_0000365  11.5 13.0\n")
    (folder / "Diving_val.txt").write_bytes(
        b"video_validation_0000365  11.5 13.0\nvideo_validation_0000365  20.1 22.7\n"
        b"video_validation_0000366 oops\nvideo_test_0000004  1.0 2.0\n")
    (folder / "Ambiguous_val.txt").write_bytes(
        b"video_validation_0000266  70.1 72.0\nvideo_validation_0000901  3.0 9.5\n")
    (folder / "FrisbeeCatch_val.txt").write_bytes(b"")  # an empty class file, as in some real subsets
    (folder / "readme.txt").write_bytes(b"Ambiguous segments are taken out of the evaluations.\n")


def test_reader_parses_the_real_quirks(tmp_path):
    folder = tmp_path / "annotations_val"
    _hand_made_annotations(folder)
    ann = load_thumos_annotations(folder)
    assert ann.subset == "val" and ann.classes == ["BaseballPitch", "CliffDiving", "Diving", "FrisbeeCatch"]
    assert len(ann.segments) == 5 and len(ann.ambiguous) == 2
    dup = ann.segments[ann.segments["video"] == "video_validation_0000365"]
    assert sorted(dup["label"]) == ["CliffDiving", "Diving", "Diving"]  # both copies of the cliff dive are kept
    assert dup[dup["label"] == "CliffDiving"]["class_id"].tolist() == [22]
    assert ann.segments["t_start"].tolist()[:2] == [72.8, 44.0]
    errors = sorted(r["error"] for r in ann.rejected)
    assert len(errors) == 2
    assert f"{folder / 'Diving_val.txt'}:3" in errors[0] and "oops" in errors[0]
    assert f"{folder / 'Diving_val.txt'}:4" in errors[1] and "another subset" in errors[1]
    assert ann.videos() == ["video_validation_0000266", "video_validation_0000365", "video_validation_0000681"]
    assert "video_validation_0000901" in ann.videos(include_ambiguous_only=True)
    segs, amb = ann.for_video("video_validation_0000266")
    assert segs == [[72.8, 76.4, "BaseballPitch"]] and amb == [[70.1, 72.0]]
    gt = ann.ground_truth()
    assert list(gt.columns) == ["video-id", "t-start", "t-end", "label"] and len(gt) == 5


def test_unknown_class_files_and_missing_folders_are_named(tmp_path):
    folder = tmp_path / "annotations_test"
    folder.mkdir()
    (folder / "Skateboarding_test.txt").write_bytes(b"video_test_0000001  1.0 2.0\n")
    (folder / "Diving_test.txt").write_bytes(b"video_test_0000001  1.0 2.0\n")
    ann = load_thumos_annotations(folder)
    assert ann.classes == ["Diving"] and "Skateboarding" in ann.rejected[0]["error"]
    with pytest.raises(MissingDataError, match="annotations_val"):
        load_thumos_annotations(tmp_path / "annotations_val")


def test_videos_are_found_in_the_known_layouts(tmp_path):
    _hand_made_annotations(tmp_path / "annotations_val")
    (tmp_path / "validation").mkdir()  # the official zip's folder; the other video sits flat under videos/
    from harness.video import write_video

    write_video(tmp_path / "validation" / "video_validation_0000266.mp4", moving_frames(5, 32, 32), 25)
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "video_validation_0000365.mp4", moving_frames(6, 32, 32), 30)
    listing = list_thumos(tmp_path, "val")
    assert [s.id for s in listing.samples] == ["video_validation_0000266", "video_validation_0000365"]
    assert [video_fps(s.path) for s in listing.samples] == [25.0, 30.0]
    missing = [r for r in listing.rejected if "video is missing" in r["error"]]
    assert len(missing) == 1 and "video_validation_0000681" in missing[0]["error"]
    assert "BaseballPitch_val.txt:2" in missing[0]["error"]


def test_timeline_segments_are_exactly_the_frames_an_object_is_rendered():
    rng = np.random.default_rng(5)
    plan = [THUMOS_MINI_CLASSES["SlidesLeft"], None, THUMOS_MINI_CLASSES["SpinsFast"]]
    scene, segments = timeline_scene(rng, plan, 25, 60, 80, frames_per_tick=5, segment_ticks=(2, 3),
                                     gap_ticks=(1, 2))
    _, ids = render(scene)
    visible = ids.reshape(len(ids), -1).max(1)
    expected = np.zeros(len(ids), np.int64)
    for s in segments:
        expected[s.start:s.end] = s.object_index
        assert s.start % 5 == 0 and s.end % 5 == 0  # whole ticks: round times
    assert np.array_equal(visible, expected)
    assert [s.label for s in segments] == ["SlidesLeft", None, "SpinsFast"]
    assert [o.motion for o in scene.objects] == ["slides left", "stays still", "spins"]
    assert scene.objects[2].speed > 2.5  # the fast variant
    assert all(b.start - a.end >= 5 for a, b in zip(segments, segments[1:]))  # background between segments
    # the slide really moves the object left
    xs = [np.flatnonzero(ids[t] == 1)[0] % 80 for t in (segments[0].start, segments[0].end - 1)]
    assert xs[1] < xs[0]


def test_mini_split_has_the_thumos_layout_and_quirks(thumos_mini):
    for subset in ("val", "test"):
        folder = thumos_mini / f"annotations_{subset}"
        for f in folder.iterdir():
            raw = f.read_bytes()
            assert raw.endswith(b"\n") and b"\r" not in raw
            assert all(LINE.match(line) for line in raw.splitlines()), f
        ann = load_thumos_annotations(folder)
        assert not ann.rejected and set(ann.classes) == set(THUMOS_MINI_CLASSES) and len(ann.ambiguous) >= 2
        counts = ann.segments["label"].value_counts()
        assert (counts >= 2).all() and counts["Spins"] == 2 + counts["SpinsFast"]
        fast = ann.segments[ann.segments["label"] == "SpinsFast"][["video", "t_start", "t_end"]]
        spins = ann.segments[ann.segments["label"] == "Spins"][["video", "t_start", "t_end"]]
        assert len(fast.merge(spins)) == len(fast)  # every SpinsFast line is repeated in Spins, as CliffDiving
        listing = list_thumos(thumos_mini, subset, include_ambiguous_only=True)
        assert not listing.rejected
        fps = set()
        for s in listing.samples:
            info = probe(s.path)
            fps.add(info.fps)
            assert (info.width, info.height) == (160, 120)
            ends = [e for _, e, *_ in s.meta["segments"] + s.meta["ambiguous"]]
            assert max(ends) <= info.num_frames / info.fps + 1e-6
        assert fps == {25.0, 30.0}
    test = list_thumos(thumos_mini, "test", include_ambiguous_only=True).samples
    only_ambiguous = [s for s in test if not s.meta["segments"]]
    assert len(only_ambiguous) == 1 and only_ambiguous[0].meta["ambiguous"]
    assert len(list_thumos(thumos_mini, "test").samples) == len(test) - 1


def test_mini_split_is_byte_deterministic(thumos_mini, tmp_path):
    write_thumos_mini(tmp_path, seed=0)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(thumos_mini) for p in thumos_mini.rglob("*")
                           if p.is_file() and p.name != ".complete")
    assert all(filecmp.cmp(thumos_mini / f, tmp_path / f, shallow=False) for f in files)


def test_check_data_passes_on_the_mini_split(thumos_mini, capsys):
    assert main(["check-data", "--dataset", "thumos14", "--data-root", str(thumos_mini), "--no-progress"]) == 0
    assert "11 items listed, 11 decoded" in capsys.readouterr().out


def test_check_data_reports_planted_faults_precisely(thumos_mini, tmp_path):
    root = tmp_path / "thumos"
    shutil.copytree(thumos_mini, root)
    val_videos = sorted((root / "videos" / "val").iterdir())
    val_videos[0].unlink()  # a missing video
    truncated = val_videos[1]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    bad = root / "annotations_test" / "Bounces_test.txt"
    bad.write_bytes(bad.read_bytes() + b"video_test_0000007  12,5 13.0\n")
    n_lines = len(bad.read_bytes().splitlines())
    out = tmp_path / "report.json"
    assert main(["check-data", "--dataset", "thumos14", "--data-root", str(root), "--no-progress",
                 "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    rejected = [r["error"] for r in report["rejected"]]
    assert len(rejected) == 2
    assert any(str(val_videos[0]) in e and "missing" in e and "_val.txt:" in e for e in rejected)
    assert any(f"{bad}:{n_lines}" in e and "12,5" in e for e in rejected)
    assert [u["path"] for u in report["undecodable"]] == [str(truncated)]
