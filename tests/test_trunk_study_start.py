"""scripts/motion_trunk_study.py --pyratok-start: the study's trained heads become a tiny-lang PyraTok's start, so
that PyraTok's zero-shot score (cosine of embed_text with the mean-pooled code) starts as the study's."""
import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


def load_study():
    spec = importlib.util.spec_from_file_location("motion_trunk_study", ROOT / "scripts" / "motion_trunk_study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["motion_trunk_study"] = module
    spec.loader.exec_module(module)
    return module


def test_the_pyratok_start_puts_the_heads_on_the_free_code_channels(tmp_path):
    from models.pyratok.config import get_config
    from models.pyratok.model import PyraTokModel
    from models.pyratok.train import load_matching

    study = load_study()
    torch.manual_seed(0)
    net = study.Net(8, True)
    text_mlp = nn.Sequential(nn.Linear(384, 256), nn.SiLU(), nn.Linear(256, 8))
    study.write_pyratok_start(tmp_path / "start.safetensors", net, text_mlp, offset=8, spread=0.5)
    model = PyraTokModel(get_config("tiny-lang")[0]).eval()
    fresh = load_matching(model, tmp_path / "start.safetensors")
    assert not any(n.startswith(("trunk.", "quantizer.semantic_in.", "text_to_code.", "text_adapter.mlp."))
                   for n in fresh)
    pooled = torch.randn(3, 384)
    text = model.text_to_code(model.text_adapter.mlp(pooled))
    assert torch.allclose(text[:, 8:], text_mlp(pooled), atol=1e-5) and torch.all(text[:, :8] == 0)
    video = torch.rand(2, 3, 9, 64, 64) * 2 - 1
    with torch.no_grad():
        deep = model.trunk(video)[model.trunk.strides[-1]]
        read_out = model.quantizer.semantic_in[0](deep)
        head = net(F.avg_pool3d(video, (1, 2, 2)))  # the trunk reads the clip at half resolution
    assert torch.allclose(read_out[:, 8:], head * (2.0 / 0.5), atol=1e-4)  # scaled to the colour code's spread
    assert torch.all(read_out[:, :8] == 0)  # the colour channels read nothing
