import shutil
from pathlib import Path

import pytest

from harness.dataset import ensure_mini
from harness.errors import DataError, MissingDataError
from harness.video import write_video
from tasks.kinetics import MINI_LABELS, class_names, list_split, parse_clip_name, \
    read_annotations, write_kinetics_mini
from tests.conftest import moving_frames
from tests.datasets_helpers import assert_downsample_is_lossy, assert_identity_is_perfect, check_data, run_task, \
    same_bytes, truncate


@pytest.fixture(scope="module")
def k_minis(cache_root):
    return {v: ensure_mini(f"k{v}", cache_root=cache_root) for v in (400, 600, 700)}


K400_VAL = (b'label,youtube_id,time_start,time_end,split,is_cc\n'
            b'"air drumming",--nQbRBEz2s,104,114,val,0\n'
            b'abseiling,0wR5jVB-WPk,417,427,val,1\n'
            b'"massaging person\'s head",ab_cd_ef_gh,7,17,val,0\n'
            b'"hurling (sport)",x1,notanumber,20,val,0\n'
            b'abseiling,0wR5jVB-WPk,417,427,val,0\n')
K600_VAL = (b'label,youtube_id,time_start,time_end,split\n'
            b'air drumming,--nQbRBEz2s,104,114,val\n'
            b'abseiling,0wR5jVB-WPk,417,427,val\n'
            b"massaging person's head,ab_cd_ef_gh,7,17,val\n")


def test_names_are_parsed_from_the_right():
    assert parse_clip_name("--nQbRBEz2s_000104_000114.mp4") == ("--nQbRBEz2s", 104, 114)
    assert parse_clip_name("ab_cd_ef_gh_000007_000017.mkv") == ("ab_cd_ef_gh", 7, 17)
    assert parse_clip_name("-_x_000001_000011") == ("-_x", 1, 11)
    assert parse_clip_name("0wR5jVB-WPk.mp4") is None and parse_clip_name("_000001_000011.mp4") is None


def test_k400_quoting_and_k600_plain_csv_give_the_same_rows(tmp_path):
    (tmp_path / "k400.csv").write_bytes(K400_VAL)
    (tmp_path / "k600.csv").write_bytes(K600_VAL)
    rows400, rej400 = read_annotations(tmp_path / "k400.csv")
    rows600, rej600 = read_annotations(tmp_path / "k600.csv")
    key = lambda rows: [(r.label, r.youtube_id, r.start, r.end) for r in rows]  # noqa: E731
    assert key(rows400) == key(rows600) == [("air drumming", "--nQbRBEz2s", 104, 114),
                                            ("abseiling", "0wR5jVB-WPk", 417, 427),
                                            ("massaging person's head", "ab_cd_ef_gh", 7, 17)]
    assert [r.is_cc for r in rows400] == [0, 1, 0] and {r.is_cc for r in rows600} == {None}
    assert rows400[2].clip == "ab_cd_ef_gh_000007_000017" and rows400[2].line == 4
    assert not rej600
    errors = [r["error"] for r in rej400]
    assert len(errors) == 2
    assert errors[0].startswith(f"{tmp_path / 'k400.csv'}:5: ") and "notanumber" in errors[0]
    assert errors[1].startswith(f"{tmp_path / 'k400.csv'}:6: ") and "already listed on line 3" in errors[1]


def test_columns_by_name_bom_crlf_and_unlabeled_test(tmp_path):
    path = tmp_path / "val.csv"
    path.write_bytes(b"\xef\xbb\xbfsplit,time_end,youtube_id,label,time_start\r\n"
                     b'val,114,--nQbRBEz2s,"air drumming",104\r\nval,20,x_1,abseiling,10\r\n')
    rows, rejected = read_annotations(path)
    assert not rejected
    assert [(r.label, r.youtube_id, r.start, r.end, r.split) for r in rows] == [
        ("air drumming", "--nQbRBEz2s", 104, 114, "val"), ("abseiling", "x_1", 10, 20, "val")]
    test = tmp_path / "test.csv"
    test.write_bytes(b"youtube_id,time_start,time_end,split\n-abc_def-12,0,10,test\n")
    rows, rejected = read_annotations(test)
    assert [(r.label, r.clip) for r in rows] == [(None, "-abc_def-12_000000_000010")] and not rejected
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"label,id,start,end\nabseiling,x,1,11\n")
    with pytest.raises(DataError, match="lacks the column"):
        read_annotations(bad)


def _video(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, moving_frames(6, 32, 32), 25)


def test_flat_per_class_and_crawler_layouts_are_detected(tmp_path):
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "train.csv").write_bytes(b"label,youtube_id,time_start,time_end,split\n"
                                    b"zumba,t1,0,10,train\nair drumming,t2,5,15,train\nabseiling,t3,1,11,train\n")
    (ann / "val.csv").write_bytes(K600_VAL)
    (ann / "test.csv").write_bytes(b"youtube_id,time_start,time_end,split\n-t_x,3,13,test\n")
    _video(tmp_path / "val" / "--nQbRBEz2s_000104_000114.mp4")  # flat (CVDF)
    _video(tmp_path / "val" / "abseiling" / "0wR5jVB-WPk_000417_000427.mp4")  # per class, as-is
    _video(tmp_path / "videos_train" / "air_drumming" / "t2_000005_000015.mp4")  # mmaction2, underscores
    _video(tmp_path / "videos_train" / "zumba" / "t1_000000_000010.mp4")
    _video(tmp_path / "test" / "-t_x_000003_000013.mp4")
    assert class_names(tmp_path, 600) == ["abseiling", "air drumming", "zumba"]
    val = list_split(tmp_path, 600, "val")
    got = {s.id: (s.meta["label"], s.meta["class"], s.meta["layout"]) for s in val.samples}
    assert got == {"--nQbRBEz2s_000104_000114": (1, "air drumming", "flat"),
                   "0wR5jVB-WPk_000417_000427": (0, "abseiling", "per-class")}
    # the massaging clip's label is not in the train CSV, so it has no class index: named with its line
    assert [r["error"] for r in val.rejected] == [
        f"{ann / 'val.csv'}:4: label \"massaging person's head\" is not a class of the train CSV"]
    train = list_split(tmp_path, 600, "train")
    assert sorted(s.id for s in train.samples) == ["t1_000000_000010", "t2_000005_000015"]
    assert [r["error"] for r in train.rejected] == [f"{tmp_path / 'videos_train' / 't3_000001_000011.mp4'}: "
                                                    "file is missing"]
    test = list_split(tmp_path, 600, "test")
    assert [(s.id, s.meta["label"]) for s in test.samples] == [("-t_x_000003_000013", None)]


def test_crawler_root_and_val_fallback_for_classes(tmp_path):
    (tmp_path / "kinetics-400_val.csv").write_bytes(K400_VAL)
    _video(tmp_path / "air drumming" / "--nQbRBEz2s_000104_000114.mp4")  # crawler straight into the root
    assert class_names(tmp_path, 400) == ["abseiling", "air drumming", "massaging person's head"]
    listing = list_split(tmp_path, 400, "val")
    assert [(s.id, s.meta["label"]) for s in listing.samples] == [("--nQbRBEz2s_000104_000114", 1)]
    missing = [r for r in listing.rejected if r["error"].endswith("file is missing")]
    assert len(missing) == 2 and len(listing.rejected) == 4
    with pytest.raises(MissingDataError, match="test annotation CSV"):
        list_split(tmp_path, 400, "test")


def test_mini_splits_have_the_real_quirks(k_minis):
    val400 = (k_minis[400] / "annotations" / "val.csv").read_text()
    assert val400.startswith("label,youtube_id,time_start,time_end,split,is_cc\n")
    assert '"sliding left",' in val400 and "\nbouncing," in val400 and '"bouncing"' not in val400
    val600 = (k_minis[600] / "annotations" / "kinetics_val.csv").read_text()
    assert val600.startswith("label,youtube_id,time_start,time_end,split\n") and '"' not in val600
    assert "\nsliding left," in val600
    assert (k_minis[400] / "annotations" / "test.csv").read_text().startswith("youtube_id,time_start,time_end,split\n")
    assert (k_minis[700] / "validate.csv").exists()
    for v, root in k_minis.items():
        labels = sorted(MINI_LABELS[v])
        assert class_names(root, v) == labels
        val = list_split(root, v, "val")
        assert not val.rejected and len(val.samples) == 2 * len(labels)
        assert {s.meta["class"] for s in val.samples} == set(labels)
        assert all(s.meta["label"] == labels.index(s.meta["class"]) for s in val.samples)
        ids = [s.meta["youtube_id"] for s in val.samples + list_split(root, v, "train").samples]
        assert any(i.startswith("-") for i in ids) and any("_" in i for i in ids)
        assert all(len(i) == 11 for i in ids)
    layouts = {v: {s.meta["layout"] for s in list_split(root, v, "val").samples} for v, root in k_minis.items()}
    assert layouts == {400: {"flat"}, 600: {"per-class"}, 700: {"per-class"}}
    assert (k_minis[600] / "videos_val" / "sliding_left").is_dir()
    assert (k_minis[700] / "validate" / "sliding left").is_dir()


@pytest.mark.parametrize("version", [400, 600, 700])
def test_mini_split_is_byte_deterministic(k_minis, tmp_path, version):
    write_kinetics_mini(tmp_path, version, seed=0)
    n = same_bytes(k_minis[version], tmp_path)
    assert n == len(MINI_LABELS[version]) * 3 + 3 + 3


def test_check_data_passes_on_the_mini_split_and_names_planted_faults(k_minis, tmp_path, capsys):
    code, report = check_data("k600", k_minis[600], tmp_path / "ok.json")
    assert code == 0 and report["listed"] == report["decoded"] == 27
    root = tmp_path / "k600"
    shutil.copytree(k_minis[600], root)
    val = list_split(root, 600, "val").samples
    missing, truncated = Path(val[0].path), Path(val[1].path)
    missing.unlink()
    truncate(truncated, 0.4)
    csv = root / "annotations" / "kinetics_val.csv"
    csv.write_bytes(csv.read_bytes() + b"spinning,abcdefghijk,12,eleven,val\n")
    code, report = check_data("k600", root, tmp_path / "bad.json")
    assert code == 1
    errors = [r["error"] for r in report["rejected"]]
    n_lines = len(csv.read_bytes().splitlines())
    assert sum(f"{csv}:{n_lines}: " in e for e in errors) == 1
    assert sum(missing.name in e and "file is missing" in e for e in errors) == 1 and len(errors) == 2
    assert [u["path"] for u in report["undecodable"]] == [str(truncated)]


@pytest.mark.slow
def test_k600_recon_end_to_end(k_minis, tmp_path):
    """identity is exact and downsample lossy on a stratified subset of the val clips (SSIM on CPU is the cost)."""
    res = run_task("k600-recon", "identity", tmp_path / "r", tmp_path / "c", "--limit", "3")
    assert_identity_is_perfect(res, 3, 17)
    assert res["task"]["protocol"]["split"] == "val" and res["task"]["protocol"]["crop"] == 128
    res = run_task("k600-recon", "downsample", tmp_path / "r", tmp_path / "c", "--limit", "3")
    assert_downsample_is_lossy(res, 3)
