"""Generation folders' pieces: the writers, codes files, names, and FVD against cached real statistics."""
import numpy as np
import pytest
import scipy.linalg
import torch

from harness.errors import DataError
from harness.generated import FILE_PATTERN, codes_to_levels, cover_size, decode_mp4_bytes, encode_mp4, read_codes, \
    stems_to_ids, tokens_to_codes, video_file_name, write_codes
from harness.metrics.frechet import frechet_from_features
from harness.metrics.reference_fvd import ReferenceSet, ReferenceStatsCache, bootstrap_to_reference, \
    frechet_to_reference, reference_stats
from harness.task import Sample
from harness.video import short_side_size
from models.base import CodeLevel, Tokens
from tests.conftest import moving_frames


def test_lossless_writer_round_trips_exactly_and_the_lossy_one_is_deterministic():
    frames = moving_frames(6, 36, 50, seed=3)
    data = encode_mp4(frames, 8, "lossless")
    decoded, resized = decode_mp4_bytes(data, 6, 36, 50)
    assert np.array_equal(decoded, frames) and not resized
    assert encode_mp4(frames, 8, "lossless") == data  # the same frames give the same bytes
    lossy = encode_mp4(frames, 8, "h264-crf18")
    assert lossy == encode_mp4(frames.copy(), 8, "h264-crf18")
    back, _ = decode_mp4_bytes(lossy, 6, 36, 50)
    assert not np.array_equal(back, frames) and np.abs(back.astype(int) - frames).mean() < 6
    shrunk, resized = decode_mp4_bytes(data, 4, 24, 24)  # another size: resized to cover, centre-cropped
    assert resized and shrunk.shape == (4, 24, 24, 3)
    with pytest.raises(DataError, match="frame 6 was asked for"):
        decode_mp4_bytes(data, 7, 36, 50)
    with pytest.raises(ValueError, match="unknown video writer"):
        encode_mp4(frames, 8, "png")


def test_cover_size_is_torchvision_resize_for_square_targets_and_always_covers():
    for h, w in ((240, 320), (320, 240), (100, 100), (144, 192), (481, 17)):
        assert cover_size(h, w, 128, 128) == short_side_size(h, w, 128)
        for th, tw in ((64, 128), (128, 64), (90, 160)):
            ch, cw = cover_size(h, w, th, tw)
            assert ch >= th and cw >= tw and (ch == th or cw == tw)


def test_file_names_are_safe_and_parse_back():
    assert video_file_name("ApplyEyeMakeup/0007", 2) == "ApplyEyeMakeup_0007-2.mp4"
    match = FILE_PATTERN.match(video_file_name("-abc_d-e", 0))
    assert match["stem"] == "-abc_d-e" and match["index"] == "0"
    assert stems_to_ids(["a/b", "c"]) == {"a_b": "a/b", "c": "c"}
    with pytest.raises(DataError, match="map to the same file name"):
        stems_to_ids(["a/b", "a_b"])


def test_codes_files_round_trip_indices_and_bits(tmp_path):
    idx = torch.randint(0, 1000, (2, 2, 3, 4))
    bits = torch.randint(0, 2, (2, 2, 3, 4, 5), dtype=torch.uint8)
    tokens = Tokens((8, 24, 32), [CodeLevel("coarse", indices=idx, codebook_size=1000),
                                  CodeLevel("fine", bits=bits, bit_order="lsb")])
    path = tmp_path / "x.codes.npz"
    write_codes(path, tokens_to_codes(tokens, 1, "sampled"))
    source, levels = codes_to_levels(read_codes(path), str(path))
    assert source == "sampled" and [lv.name for lv in levels] == ["coarse", "fine"]
    assert torch.equal(levels[0].indices[0], idx[1]) and levels[0].codebook_size == 1000
    assert torch.equal(levels[1].bits[0], bits[1]) and levels[1].bit_order == "lsb"
    assert torch.equal(levels[1].as_indices()[0], tokens.levels[1].as_indices()[1])
    bad = tokens_to_codes(tokens, 0, "re-encoded")
    bad["level0_indices"] = bad["level0_indices"] + 1000
    with pytest.raises(DataError, match="outside the codebook"):
        codes_to_levels(bad, "bad.codes.npz")
    with pytest.raises(DataError, match="not a valid codes file"):
        codes_to_levels({"source": np.array("sampled")}, "empty.codes.npz")


class _Extractor:
    """A stand-in detector: the mean colour and a few moments of a clip (deterministic, 4-d)."""

    sha256 = "f" * 64

    def __init__(self):
        self.calls = 0

    def __call__(self, clips):
        self.calls += 1
        x = np.asarray(clips, np.float64) / 255
        return np.stack([x.mean((1, 2, 3, 4)), x[..., 0].mean((1, 2, 3)), x.std((1, 2, 3, 4)),
                         (x[:, 1:] - x[:, :-1]).std((1, 2, 3, 4))], 1)


def test_real_statistics_stream_cache_and_give_the_distance_of_all_features(tmp_path):
    rng = np.random.default_rng(0)
    clips = {f"v{i}": rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8) for i in range(23)}

    def load(sample):
        if sample.id == "v5":
            raise DataError("v5.mp4", "cannot be decoded")
        return clips[sample.id]

    samples = [Sample(k) for k in clips]
    ref = ReferenceSet("toy-gen", {"num_frames": 3}, samples, load)
    extractor, cache = _Extractor(), ReferenceStatsCache(tmp_path)
    got = reference_stats(ref, {"toy": extractor}, cache, batch_size=4, progress=False, log=lambda m: None)["toy"]
    assert got.stats.n == 22 and [f["sample_id"] for f in got.failed] == ["v5"] and not got.reused
    real = extractor(np.stack([c for k, c in clips.items() if k != "v5"]))
    gen = rng.normal(real.mean(0), 0.05, (15, 4))
    res = frechet_to_reference(gen, got.stats)
    want = frechet_from_features(gen, real)
    assert res.value == pytest.approx(want.value, rel=1e-9) and res.value_eig == pytest.approx(want.value_eig, 1e-9)
    mu1, mu2 = gen.mean(0), real.mean(0)
    s1, s2 = np.cov(gen, rowvar=False), np.cov(real, rowvar=False)
    independent = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert res.value == pytest.approx(independent, rel=1e-6)
    # cached: the second call computes nothing and returns the same statistics
    calls = extractor.calls
    again = reference_stats(ref, {"toy": extractor}, cache, progress=False)["toy"]
    assert again.reused and extractor.calls == calls and again.failed == got.failed
    assert np.array_equal(again.stats.cov(), got.stats.cov()) and np.array_equal(again.stats.mean(), got.stats.mean())
    # the key follows the weights, the real-clip protocol and the real set
    key = ref.key("toy", "a")
    assert key != ref.key("toy", "b") and key != ref.key("other", "a")
    assert key != ReferenceSet("toy-gen", {"num_frames": 4}, samples, load).key("toy", "a")
    assert key != ReferenceSet("toy-gen", {"num_frames": 3}, samples[1:], load).key("toy", "a")


def test_bootstrap_to_reference_resamples_prompts_and_is_seeded():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 3))
    from harness.metrics.frechet import FeatureStats

    stats = FeatureStats().update(real)
    gen = rng.normal(0.3, 1.0, (40, 3))
    prompts = [f"p{i // 4}" for i in range(40)]  # 10 prompts x 4 videos
    ci = bootstrap_to_reference(gen, prompts, stats, 200, seed=0)
    assert ci == bootstrap_to_reference(gen, prompts, stats, 200, seed=0)
    value = frechet_to_reference(gen, stats).value_eig
    assert ci[0] < value < ci[1]
    # identical videos within a prompt carry no extra information: resampling prompts widens the interval
    clustered_gen = np.repeat(gen[::4], 4, axis=0)
    wide = bootstrap_to_reference(clustered_gen, prompts, stats, 200, seed=0)
    narrow = bootstrap_to_reference(clustered_gen, [str(i) for i in range(40)], stats, 200, seed=0)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]
    assert bootstrap_to_reference(gen[:1], ["a"], stats, 10) is None
