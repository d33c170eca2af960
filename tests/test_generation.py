"""Generation tasks (msrvtt-t2v, anetcap-t2v, ucf101-gen), `generate` and `score t2v`, on the mini splits with the
test generators of tests/generators.py, stand-in I3D weights and a tiny trained CLIP."""
import hashlib
import json
import os

import numpy as np
import pytest

from harness.cli import main
from harness.hashing import derive_seed
from harness.runner import RunSpec, run
from tests import generators
from tests.fvd_fixtures import write_scripted_detector

SMALL = {"num_frames": 8, "height": 64, "width": 64, "fps": 24, "seeds_per_prompt": 2, "fvd_detectors": "styleganv",
         "fvd_bootstrap_iters": 20}


@pytest.fixture(scope="module", autouse=True)
def test_generators():
    generators.register()
    yield
    from harness.registry import MODELS

    MODELS.unregister("test-oracle")
    MODELS.unregister("test-noise")


@pytest.fixture(scope="module")
def msrvtt_mini(cache_root):
    from harness.dataset import ensure_mini

    return ensure_mini("msrvtt", cache_root=cache_root)


@pytest.fixture(scope="module")
def metric_weights(tmp_path_factory):
    """A weights folder with a stand-in StyleGAN-V detector and a tiny CLIP trained on the scene captions."""
    from tests.tiny_clip import write_tiny_clip

    folder = tmp_path_factory.mktemp("weights")
    write_scripted_detector(folder)
    write_tiny_clip(folder / "clip-vit-base-patch32")
    return folder


@pytest.fixture
def isolated(tmp_path, monkeypatch, metric_weights):
    """Metric weights present and a fresh harness cache (so the real statistics start uncomputed)."""
    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(metric_weights))
    monkeypatch.setenv("PYRATOK_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _run(tmp_path, model, root, limit=4, **task_args):
    spec = RunSpec(task=task_args.pop("task", "msrvtt-t2v"), model=model, task_args={**SMALL, **task_args},
                   data_root=str(root), limit=limit, results_root=str(tmp_path / "results"),
                   cache_root=str(tmp_path / "answers"), progress=False)
    return run(spec, log=lambda msg: None).result


def _generate(out, root, *extra, task="msrvtt-t2v", model="test-oracle", limit=4, args=SMALL):
    argv = ["generate", "--task", task, "--model", model, "--out", str(out), "--data-root", str(root),
            "--no-progress"] + (["--limit", str(limit)] if limit else [])
    for k, v in args.items():
        argv += ["--task-arg", f"{k}={v}"]
    return main(argv + list(extra))


def _score(videos, root, out_json, *extra, task="msrvtt-t2v"):
    code = main(["score", "t2v", "--task", task, "--videos", str(videos), "--data-root", str(root), "--json",
                 str(out_json), "--no-progress", *extra])
    assert code == 0
    return json.loads(out_json.read_text())


# ---------------------------------------------------------------------------------------------------------------
def _documented_choice(seed: int, key: str, n: int) -> int:
    """The caption rule of docs/generation.md, computed here without the harness: sha256 of the canonical JSON
    [seed, "caption", key], first 8 bytes little-endian, 63 bits, mod n."""
    text = json.dumps([seed, "caption", key], separators=(",", ":"))
    return (int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)) % n


def test_msrvtt_caption_choice_is_seeded_recorded_and_per_video(msrvtt_mini):
    from harness.registry import TASKS
    from tasks.msrvtt import list_split

    raw = {s.id: s.meta for s in list_split(msrvtt_mini, "test").samples}
    task = TASKS.get("msrvtt-t2v")()
    samples = task.samples(msrvtt_mini).samples
    assert sorted(s.id for s in samples) == sorted(raw) and len(samples) == 8
    for s in samples:
        rec, captions = s.meta["record"], raw[s.id]["captions"]
        assert rec["caption_index"] == _documented_choice(0, s.id, len(captions))
        assert s.meta["prompt"] == captions[rec["caption_index"]]
        assert rec["sen_id"] == raw[s.id]["sen_ids"][rec["caption_index"]] and rec["n_captions"] == 20
    again = TASKS.get("msrvtt-t2v")().samples(msrvtt_mini).samples
    assert [s.meta for s in again] == [s.meta for s in samples]
    other = TASKS.get("msrvtt-t2v")(caption_seed=7).samples(msrvtt_mini).samples
    assert [s.meta["prompt"] for s in other] != [s.meta["prompt"] for s in samples]
    assert all(o.meta["record"]["caption_index"] == _documented_choice(7, o.id, 20) for o in other)
    # the prompt is part of a sample's fingerprint: a changed caption never reuses cached videos
    assert samples[0].fingerprint()["prompt"] == samples[0].meta["prompt"]
    with pytest.raises(ValueError, match="caption rule"):
        TASKS.get("msrvtt-t2v")(caption_rule="first")


def test_anetcap_prompt_is_one_seeded_sentence_and_the_real_clip_its_segment(cache_root):
    from harness.dataset import ensure_mini
    from harness.registry import TASKS
    from tasks.activitynet import list_anet_captions

    root = ensure_mini("activitynet", cache_root=cache_root)
    raw = {s.id: s.meta for s in list_anet_captions(root, "val_1").samples}
    task = TASKS.get("anetcap-t2v")(num_frames=8, height=32, width=32)
    samples = task.samples(root).samples
    assert len(samples) == len(raw) > 0
    for s in samples:
        r, meta = s.meta["record"], raw[s.id]
        assert r["sentence_index"] == _documented_choice(0, meta["key"], len(meta["sentences"]))
        assert s.meta["prompt"] == meta["sentences"][r["sentence_index"]]
        start, end = meta["timestamps"][r["sentence_index"]]
        assert r["segment"] == [start, end] and s.meta["center_time"] == pytest.approx((start + end) / 2)
    ref = task.reference_set(root)
    clip = ref.load(ref.samples[0])
    assert clip.shape == (8, 32, 32, 3) and clip.dtype == np.uint8
    # the real set is keyed by each clip's segment: another sentence choice is another set of statistics
    same = TASKS.get("anetcap-t2v")(num_frames=8, height=32, width=32).reference_set(root)
    assert same.key("styleganv", "sha") == ref.key("styleganv", "sha")
    centers = [s.meta["center_time"] for s in ref.samples]
    for seed in range(1, 50):
        other = TASKS.get("anetcap-t2v")(num_frames=8, height=32, width=32, caption_seed=seed).reference_set(root)
        if [s.meta["center_time"] for s in other.samples] != centers:
            break
    assert other.key("styleganv", "sha") != ref.key("styleganv", "sha")


def test_clip_indices_follow_the_protocol_frame_rate():
    from harness.video import sample_indices
    from tasks.generation import clip_indices

    for total in (16, 24, 25, 100):
        assert clip_indices(total, 25, 25, 16).tolist() == sample_indices(total, 16, "center").tolist()
    assert clip_indices(100, 24, 8, 4).tolist() == [45, 48, 51, 54]  # every 3rd frame, centred
    assert clip_indices(10, 30, 10, 5).tolist() == [0, 3, 6, 9, 9]  # too short: from the start, last one repeated
    assert clip_indices(100, 25, 25, 4, center=2).tolist() == [0, 1, 2, 3]  # shifted to stay inside
    assert clip_indices(100, 25, 25, 4, center=99).tolist() == [96, 97, 98, 99]


def test_k_seeds_per_prompt_derive_from_the_run_seed_and_the_sample(tmp_path, msrvtt_mini, monkeypatch):
    monkeypatch.setenv("PYRATOK_BENCH_CACHE", str(tmp_path / "cache"))
    out = _run(tmp_path, "test-oracle", msrvtt_mini, limit=2, seeds_per_prompt=3, fvd_detectors="")
    rows = [json.loads(x) for x in (tmp_path / "results").rglob("samples.jsonl").__next__().read_text().splitlines()]
    assert len(rows) == 2 and out["metrics"]["generated_videos"]["value"] == 6
    for row in rows:
        seeds = [v["seed"] for v in row["videos"]]
        assert [v["seed_index"] for v in row["videos"]] == [0, 1, 2] and len(set(seeds)) == 3
        assert seeds == [derive_seed(derive_seed(0, row["sample_id"]), "video", j) for j in range(3)]
        assert [v["file"] for v in row["videos"]] == [f"{row['sample_id']}-{j}.mp4" for j in range(3)]
    assert out["model"]["generation"]["renderer"] == "tasks.mini.scenes"  # the adapter's sampling settings


def test_without_weights_fvd_and_clipsim_are_null_with_the_reason_and_the_rest_is_reported(tmp_path, msrvtt_mini,
                                                                                          monkeypatch):
    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(tmp_path / "no-weights"))
    monkeypatch.setenv("PYRATOK_BENCH_CACHE", str(tmp_path / "cache"))
    out = _run(tmp_path, "test-noise", msrvtt_mini, limit=3, fvd_detectors="styleganv,videogpt")
    m = out["metrics"]
    assert m["fvd_styleganv"]["value"] is None and "i3d_torchscript.pt not found" in m["fvd_styleganv"]["reason"]
    assert m["fvd_videogpt"]["value"] is None and "i3d_pretrained_400.pt not found" in m["fvd_videogpt"]["reason"]
    assert m["clipsim"]["value"] is None and "clip-vit-base-patch32 not found" in m["clipsim"]["reason"]
    assert m["generated_videos"]["value"] == 6 and "mini split" in m["generated_videos"]["warning"]
    # codebook usage of the noise generator's videos, re-encoded by it (it returns no tokens)
    assert m["codebook/palette/used_codes"]["value"] >= 1 and "re-encoded" in m["tokens_per_video"]["variant"]
    assert 0 <= m["codebook/sign/bit_balance_min"]["value"] <= m["codebook/sign/bit_balance_max"]["value"] <= 1
    assert out["task"]["protocol"]["metric_weights"] == {"i3d_torchscript.pt": None, "i3d_pretrained_400.pt": None,
                                                         "clip-vit-base-patch32": None}
    assert not (tmp_path / "cache" / "reference-stats").exists()  # nothing computed for absent detectors


def test_oracle_beats_noise_and_the_real_statistics_are_computed_once(isolated, msrvtt_mini):
    oracle = _run(isolated, "test-oracle", msrvtt_mini)["metrics"]
    stats = list((isolated / "cache" / "reference-stats" / "msrvtt-t2v").glob("styleganv-*.json"))
    assert len(stats) == 1 and json.loads(stats[0].read_text())["n"] == 8  # every test video, not the --limit
    stamp = stats[0].stat().st_mtime_ns
    noise = _run(isolated, "test-noise", msrvtt_mini)["metrics"]
    assert stats[0].stat().st_mtime_ns == stamp  # reused by the second model, not recomputed
    f_o, f_n = oracle["fvd_styleganv"], noise["fvd_styleganv"]
    assert 0 < f_o["value"] < f_n["value"] and f_o["n"] == f_n["n"] == 8
    assert f_o["ci_low"] <= f_o["value"] * 1.5 and f_o["ci_low"] <= f_o["ci_high"]
    assert "8 real clips of msrvtt test" in f_o["variant"] and "fewer than 256" in f_o["warning"]
    assert f_o["value"] == pytest.approx(oracle["fvd_styleganv_eig"]["value"], rel=1e-4)
    assert oracle["clipsim"]["value"] > noise["clipsim"]["value"]
    assert oracle["clipsim"]["n"] == 8 and oracle["clipsim"]["stderr"] > 0
    changed = _run(isolated, "test-noise", msrvtt_mini, limit=2, fps=12, clipsim=False)["metrics"]  # other real clips
    assert len(list(stats[0].parent.glob("styleganv-*.json"))) == 2 and changed["fvd_styleganv"]["value"] > 0


def test_score_t2v_of_the_generated_folder_equals_the_run(isolated, msrvtt_mini):
    run_metrics = _run(isolated, "test-oracle", msrvtt_mini)["metrics"]
    folder = isolated / "videos"
    assert _generate(folder, msrvtt_mini) == 0
    # the manifest carries the generation protocol; how to score (detectors, replicates) is the scorer's choice
    scoring = ["--task-arg", "fvd_detectors=styleganv", "--task-arg", "fvd_bootstrap_iters=20"]
    scored = _score(folder, msrvtt_mini, isolated / "score.json", *scoring)
    assert scored["status"] == "complete" and scored["n_videos"] == 8
    assert scored["metrics"] == run_metrics  # every metric, value and interval, exactly
    assert scored["metrics"]["clipsim"]["value"] is not None and scored["metrics"]["fvd_styleganv"]["value"] > 0
    # without the manifest the folder is read from its file names (and the codes files beside them)
    (folder / "manifest.json").unlink()
    generation = [f"{k}={v}" for k, v in SMALL.items() if k not in ("fvd_detectors", "fvd_bootstrap_iters")]
    bare = _score(folder, msrvtt_mini, isolated / "bare.json", "--limit", "4", *scoring,
                  *[a for kv in generation for a in ("--task-arg", kv)])
    assert bare["metrics"] == run_metrics and not bare["manifest"]
    # a generation setting that contradicts the manifest is refused
    assert _generate(folder, msrvtt_mini) == 0
    assert main(["score", "t2v", "--task", "msrvtt-t2v", "--videos", str(folder), "--task-arg", "fps=12"]) == 2


def test_generate_writes_videos_codes_and_manifest_and_resumes(tmp_path, msrvtt_mini, monkeypatch, capsys):
    monkeypatch.setenv("PYRATOK_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "gen"
    assert _generate(out, msrvtt_mini, limit=3) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["task"]["name"] == "msrvtt-t2v" and manifest["seed"] == 0
    assert manifest["task"]["protocol"]["num_frames"] == 8 and "fvd_detectors" not in manifest["task"]["protocol"]
    assert manifest["task"]["writer_settings"]["codec"] == "libx264rgb"
    assert manifest["model"]["id"] == "test-oracle" and manifest["model"]["generation"]["tokens"] == "palette 4x8x8"
    videos = manifest["videos"]
    assert len(videos) == 6 and {v["seed_index"] for v in videos} == {0, 1}
    for v in videos:
        assert v["file"] == f"{v['sample_id']}-{v['seed_index']}.mp4" and (out / v["file"]).is_file()
        assert v["codes"] == f"{v['sample_id']}-{v['seed_index']}.codes.npz" and (out / v["codes"]).is_file()
        assert v["seed"] == derive_seed(derive_seed(0, v["sample_id"]), "video", v["seed_index"])
        assert v["prompt"] and v["record"]["sen_id"] >= 0
    # the lossless writer keeps the generated frames exactly
    from harness.generated import decode_generated
    from tests.generators import prompt_scene
    from tasks.mini.scenes import render

    v = videos[0]
    frames, resized = decode_generated(out / v["file"], 8, 64, 64)
    assert not resized and np.array_equal(frames, render(prompt_scene(v["prompt"], v["seed"], 8, 64, 64))[0])
    # resume: only the missing video is generated again
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    (out / v["file"]).unlink()
    capsys.readouterr()
    assert _generate(out, msrvtt_mini, limit=3) == 0
    assert "1 videos written, 5 already there" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in out.glob("*.mp4") if p.name != v["file"])
    # a folder of another configuration is refused, not mixed
    assert _generate(out, msrvtt_mini, "--seed", "3", limit=3) == 2
    assert "another" in capsys.readouterr().err


def test_plan_only_writes_the_prompts_and_seeds_for_an_external_generator(tmp_path, msrvtt_mini, monkeypatch):
    monkeypatch.setenv("PYRATOK_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "plan"
    code = main(["generate", "--task", "msrvtt-t2v", "--plan-only", "--out", str(out), "--data-root",
                 str(msrvtt_mini), "--no-progress"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and manifest["model"] is None and not manifest["complete"] and len(manifest["videos"]) == 8
    assert not list(out.glob("*.mp4"))


def test_score_t2v_checks_the_folder(isolated, msrvtt_mini):
    from harness.video import write_video
    from tests.conftest import moving_frames

    folder = isolated / "external"
    folder.mkdir()
    args = ["--task-arg", "num_frames=8", "--task-arg", "height=64", "--task-arg", "width=64",
            "--task-arg", "fvd_detectors=styleganv", "--task-arg", "fvd_bootstrap_iters=0"]
    write_video(folder / "video7010-0.mp4", moving_frames(10, 48, 80), 24)  # another size: resized and flagged
    with pytest.raises(Exception, match="lacks 7 of the 8 expected videos"):
        from harness.score.t2v import score_folder

        score_folder("msrvtt-t2v", folder, data_root=str(msrvtt_mini), task_args={"num_frames": 8, "height": 64,
                                                                                  "width": 64})
    out = _score(folder, msrvtt_mini, isolated / "one.json", "--allow-missing", *args)
    assert out["status"] == "partial" and len(out["missing"]) == 7 and out["n_videos"] == 1
    assert out["samples"][0]["videos"][0]["resized"] is True and out["samples"][0]["videos"][0]["seed"] is None
    assert out["metrics"]["fvd_styleganv"]["value"] is None and "2 samples" in out["metrics"]["fvd_styleganv"]["reason"]
    assert out["metrics"]["codebook"]["value"] is None and "no codes files" in out["metrics"]["codebook"]["reason"]
    (folder / "video99999-0.mp4").write_bytes(b"")
    assert main(["score", "t2v", "--task", "msrvtt-t2v", "--videos", str(folder), "--data-root", str(msrvtt_mini),
                 "--allow-missing", *args]) == 2
    os.remove(folder / "video99999-0.mp4")
    manifest = {"videos": [{"sample_id": "video7010", "file": "video7010-0.mp4", "prompt": "something else"}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Exception, match="was generated from 'something else'"):
        from harness.score.t2v import score_folder

        score_folder("msrvtt-t2v", folder, data_root=str(msrvtt_mini), allow_missing=True,
                     task_args={"num_frames": 8, "height": 64, "width": 64})


# ---------------------------------------------------------------------------------------------------------------
def test_ucf101_gen_spreads_samples_over_classes_deterministically():
    from tasks.ucf101_gen import spread_over_classes

    classes = [f"Class{i:03d}" for i in range(101)]
    counts = spread_over_classes(classes, 2048, 0)
    assert sum(counts.values()) == 2048 and set(counts.values()) == {20, 21}
    assert sum(c == 21 for c in counts.values()) == 2048 - 101 * 20
    assert spread_over_classes(list(reversed(classes)), 2048, 0) == counts  # the order of the list does not matter
    assert spread_over_classes(classes, 2048, 1) != counts  # the seed picks which classes get the remainder
    assert sorted(spread_over_classes(classes, 50, 0).values()) == [0] * 51 + [1] * 50


def test_ucf101_gen_on_the_mini_split_generates_fewer_videos_with_a_warning(tmp_path, ucf_mini, monkeypatch):
    from harness.registry import TASKS

    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(tmp_path / "no-weights"))
    monkeypatch.setenv("PYRATOK_BENCH_CACHE", str(tmp_path / "cache"))
    task = TASKS.get("ucf101-gen")()
    samples = task.samples(ucf_mini).samples
    assert len(samples) == 16 and len({s.stratum for s in samples}) == 8
    assert {s.meta["prompt"] for s in samples} >= {"hammer throw", "handstand pushups", "walking with dog"}
    assert "ApplyLipstick/0000" in {s.id for s in samples}
    assert len(task.reference_set(ucf_mini).samples) == 64  # train+test: every video of split 1
    assert len(TASKS.get("ucf101-gen")(real_split="test").reference_set(ucf_mini).samples) == 16
    small = {"num_frames": 4, "height": 32, "width": 32, "fvd_detectors": "styleganv"}
    out = _run(tmp_path, "test-noise", ucf_mini, limit=None, task="ucf101-gen", seeds_per_prompt=1, **small)
    m = out["metrics"]
    assert m["generated_videos"]["value"] == 16
    warning = m["generated_videos"]["warning"]
    assert "mini split" in warning and "uses 2048" in warning and m["fvd_styleganv"]["warning"] == warning
    assert "clipsim" not in m  # a class name is not a caption: off by default for ucf101-gen
    # sample ids hold '/': generated files get safe names
    folder = tmp_path / "ucf"
    assert _generate(folder, ucf_mini, task="ucf101-gen", model="test-noise", limit=2, args=small) == 0
    names = sorted(p.name for p in folder.glob("*.mp4"))
    assert len(names) == 2 and all("/" not in n and n.endswith("-0.mp4") for n in names)
    assert {v["sample_id"] for v in json.loads((folder / "manifest.json").read_text())["videos"]} == \
        {n.rsplit("-", 1)[0].replace("_", "/", 1) for n in names}


def test_unusable_generator_output_is_a_recorded_failure(tmp_path, msrvtt_mini, monkeypatch):
    from harness.registry import MODELS

    class Broken(generators.NoiseGenerator):
        def generate(self, prompts, seed, num_frames, height, width):
            video = super().generate(prompts, seed, num_frames, height, width)
            return video[:, :, :-1] if "square" in prompts[0] else video.fill_(float("nan"))

    monkeypatch.setenv("PYRATOK_BENCH_CACHE", str(tmp_path / "cache"))
    MODELS.register("test-broken", Broken, overwrite=True)
    try:
        out = _run(tmp_path, "test-broken", msrvtt_mini, limit=3, fvd_detectors="")
    finally:
        MODELS.unregister("test-broken")
    assert out["status"] == "failed" and out["failures"]["n"] == 3
    for failure in out["failures"]["items"]:
        assert "GenerationOutputError" in failure["error"]
        assert "NaN" in failure["error"] or "expected (2, 3, 8, 64, 64)" in failure["error"]
