"""I3D detectors (TATS state-dict layout, StyleGAN-V TorchScript), each lineage's preprocessing, and `score fvd`."""
import json
import math
import pickle
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.cli import main
from harness.errors import DataError
from harness.metrics.frechet import frechet_from_features
from harness.metrics.fvd import (I3DFeatures, detector_unavailable, preprocess_styleganv, preprocess_videogpt,
                                 styleganv_resize_size)
from harness.metrics.i3d import (InceptionI3d, _same_pad, check_torchscript_archive, load_tats_i3d,
                                 output_time_steps)
from harness.video import write_video
from tests.conftest import moving_frames
from tests.fvd_fixtures import ScriptedDetector, random_i3d, write_scripted_detector


@pytest.fixture
def weights(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(folder))
    return folder


def _expected_tats_keys() -> dict[str, tuple]:
    """The pytorch-i3d InceptionI3d state dict, written out from the architecture table of Carreira & Zisserman."""
    keys = {}

    def unit(prefix, cin, cout, k, bn=True, bias=False):
        keys[f"{prefix}.conv3d.weight"] = (cout, cin, *k)
        if bias:
            keys[f"{prefix}.conv3d.bias"] = (cout,)
        if bn:
            for s in ("weight", "bias", "running_mean", "running_var"):
                keys[f"{prefix}.bn.{s}"] = (cout,)
            keys[f"{prefix}.bn.num_batches_tracked"] = ()

    unit("Conv3d_1a_7x7", 3, 64, (7, 7, 7))
    unit("Conv3d_2b_1x1", 64, 64, (1, 1, 1))
    unit("Conv3d_2c_3x3", 64, 192, (3, 3, 3))
    mixed = [("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)), ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
             ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)), ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
             ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)), ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
             ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)), ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
             ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128))]
    one, three = (1, 1, 1), (3, 3, 3)
    for name, cin, o in mixed:
        unit(f"{name}.b0", cin, o[0], one)
        unit(f"{name}.b1a", cin, o[1], one)
        unit(f"{name}.b1b", o[1], o[2], three)
        unit(f"{name}.b2a", cin, o[3], one)
        unit(f"{name}.b2b", o[3], o[4], three)
        unit(f"{name}.b3b", cin, o[5], one)
    unit("logits", 1024, 400, one, bn=False, bias=True)
    return keys


def test_i3d_state_dict_has_the_pytorch_i3d_layout():
    got = {k: tuple(v.shape) for k, v in InceptionI3d().state_dict().items()}
    assert got == _expected_tats_keys()


def test_same_padding_gives_ceil_of_size_over_stride():
    for size in range(1, 40):
        for k, s in ((7, 2), (3, 1), (3, 2), (1, 1), (2, 2), (1, 2)):
            front, back = _same_pad(size, k, s)
            assert (size + front + back - k) // s + 1 == math.ceil(size / s)
            assert back - front in (0, 1)
    assert output_time_steps(16) == 1 and output_time_steps(17) == 2


def test_tats_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = random_i3d(seed=1)
    torch.save(model.state_dict(), tmp_path / "i3d_pretrained_400.pt")
    loaded = load_tats_i3d(tmp_path / "i3d_pretrained_400.pt")
    small = torch.rand(1, 3, 9, 48, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.trunk(small), loaded.trunk(small))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    captured = {}
    loaded.Mixed_5c.register_forward_hook(lambda m, i, o: captured.setdefault("trunk", o))
    x = torch.rand(1, 3, 9, 224, 224) * 2 - 1
    with torch.no_grad():
        out = loaded(x)
    # the logits are the time average of the 1x1x1 logits layer over the 2x7x7 average pool of the trunk
    pooled = F.avg_pool3d(captured["trunk"], (2, 7, 7), stride=1)
    assert pooled.shape == (1, 1024, 1, 1, 1)
    manual = pooled[:, :, 0, 0, 0] @ model.logits.conv3d.weight[:, :, 0, 0, 0].T + model.logits.conv3d.bias
    assert out.shape == (1, 400)
    torch.testing.assert_close(out, manual, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="at least 9 frames"):
        model(torch.zeros(1, 3, 8, 224, 224))


def test_wrong_checkpoints_are_refused_naming_the_file(tmp_path):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="other.pt: is not a pytorch-i3d"):
        load_tats_i3d(tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="garbage.pt"):
        load_tats_i3d(tmp_path / "garbage.pt")


def test_videogpt_preprocessing_resizes_whole_frames_to_224_and_maps_to_minus_one_one(rng):
    frames = torch.as_tensor(rng.integers(0, 256, (2, 3, 48, 64, 3), dtype=np.uint8))
    x = preprocess_videogpt(frames)
    assert x.shape == (2, 3, 3, 224, 224)
    f = frames[1, 2].permute(2, 0, 1)[None].float()
    want = 2 * F.interpolate(f, size=(224, 224), mode="bilinear", align_corners=False)[0] / 255 - 1
    torch.testing.assert_close(x[1, :, 2], want)
    const = preprocess_videogpt(torch.full((1, 2, 20, 30, 3), 51, dtype=torch.uint8))
    torch.testing.assert_close(const, torch.full_like(const, 2 * 51 / 255 - 1))


def test_styleganv_preprocessing_resizes_the_short_side_and_crops_the_centre(rng):
    assert styleganv_resize_size(128, 160) == (224, 280) and styleganv_resize_size(100, 60) == (374, 224)
    assert styleganv_resize_size(128, 128) == (224, 224)
    frames = torch.as_tensor(rng.integers(0, 256, (1, 2, 128, 160, 3), dtype=np.uint8))
    x = preprocess_styleganv(frames)
    assert x.shape == (1, 3, 2, 224, 224)
    f = frames[0, 1].permute(2, 0, 1)[None].float() / 255
    full = F.interpolate(f, size=(224, 280), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(x[0, :, 1], (full[:, :, 28:252] - 0.5) * 2)
    const = preprocess_styleganv(torch.full((1, 2, 30, 20, 3), 200, dtype=torch.uint8))
    torch.testing.assert_close(const, torch.full_like(const, (200 / 255 - 0.5) * 2))


def test_torchscript_detector_is_called_as_the_reference_calls_it(weights, rng):
    path = write_scripted_detector(weights, outputs=400)
    assert detector_unavailable("styleganv") is None and "i3d_pretrained_400.pt" in detector_unavailable("videogpt")
    ext = I3DFeatures("styleganv", batch_size=2)
    frames = torch.as_tensor(rng.integers(0, 256, (3, 10, 64, 80, 3), dtype=np.uint8))
    got = ext(frames)
    ref = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        want = ref(preprocess_styleganv(frames), rescale=False, resize=True, return_features=True).double().numpy()
    assert got.shape == (3, 400) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert len(ext.sha256) == 64


def test_torchscript_archives_with_python_globals_or_plain_pickles_are_refused(tmp_path):
    torch.save({"a": torch.zeros(2)}, tmp_path / "plain.pt")  # a zip of torch.save: no TorchScript code
    with pytest.raises(DataError, match="without TorchScript code"):
        check_torchscript_archive(tmp_path / "plain.pt")
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as z:
        z.writestr("archive/code/__torch__.py", "")
        z.writestr("archive/data.pkl", pickle.dumps(print))  # names builtins.print; next, a module outside torch
        z.writestr("archive/constants.pkl", pickle.dumps(json.dumps))
    with pytest.raises(DataError, match="json"):
        check_torchscript_archive(tmp_path / "evil.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(DataError, match="not a zip"):
        check_torchscript_archive(tmp_path / "text.pt")


def _video_folder(path, seeds, frames=10, h=32, w=40):
    path.mkdir()
    for s in seeds:
        write_video(path / f"v{s}.mp4", moving_frames(frames, h, w, seed=s), 25, options={"crf": "10"})
    return path


def test_score_fvd_on_video_folders_matches_features_computed_directly(tmp_path, weights):
    from harness.video import read_frames

    real = _video_folder(tmp_path / "real", [1, 2, 3])
    fake = _video_folder(tmp_path / "fake", [4, 5, 6, 7])
    out = tmp_path / "out.json"
    # without weights: null and the reason, exit status 0
    assert main(["score", "fvd", "--real", str(real), "--fake", str(fake), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["fvd"] is None and "i3d_torchscript.pt not found" in got["reason"]
    write_scripted_detector(weights)
    assert main(["score", "fvd", "--real", str(real), "--fake", str(fake), "--num-frames", "9",
                 "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    ext = I3DFeatures("styleganv")
    fr = ext(np.stack([read_frames(p)[:9] for p in sorted(real.iterdir())]))
    ff = ext(np.stack([read_frames(p)[:9] for p in sorted(fake.iterdir())]))
    want = frechet_from_features(fr, ff)
    assert got["n_real"] == 3 and got["n_fake"] == 4 and got["detector"] == "styleganv"
    assert got["fvd"] == pytest.approx(want.value, rel=1e-6) and got["fvd_eig"] == pytest.approx(want.value, rel=1e-4)
    assert "fewer than 256" in got["warning"]
    assert main(["score", "fvd", "--real", str(real), "--fake", str(fake), "--num-frames", "11"]) == 2


def test_score_fvd_accepts_npy_clips_and_names_bad_ones(tmp_path, weights, capsys, rng):
    write_scripted_detector(weights)
    np.save(tmp_path / "a.npy", rng.integers(0, 256, (4, 9, 24, 24, 3), dtype=np.uint8))
    np.save(tmp_path / "b.npy", rng.integers(0, 200, (4, 9, 24, 24, 3), dtype=np.uint8))
    np.save(tmp_path / "bad.npy", np.zeros((4, 9, 24, 24), np.uint8))
    out = tmp_path / "o.json"
    assert main(["score", "fvd", "--real", str(tmp_path / "a.npy"), "--fake", str(tmp_path / "b.npy"),
                 "--num-frames", "9", "--bootstrap", "5", "--paired", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["n_real"] == 4 and got["fvd"] > 0 and got["ci_low"] <= got["ci_high"]
    assert main(["score", "fvd", "--real", str(tmp_path / "a.npy"), "--fake", str(tmp_path / "bad.npy"),
                 "--num-frames", "9"]) == 2
    assert "bad.npy" in capsys.readouterr().err


def test_scripted_detector_fixture_checks_its_input_size():
    det = torch.jit.script(ScriptedDetector())
    with pytest.raises(Exception):
        det(torch.zeros(1, 3, 4, 32, 32))
    assert det(torch.zeros(1, 3, 4, 32, 32), resize=True, return_features=True).shape == (1, 400)
    assert det(torch.zeros(1, 3, 4, 32, 32), resize=True).sum().item() == pytest.approx(1.0)  # softmax otherwise
