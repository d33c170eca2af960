"""Where metric weights live: one folder of files under their canonical names, found without any download.

`$PYRATOK_BENCH_WEIGHTS` (default `~/.cache/pyratok-bench/weights`) holds the files below. A metric asks for a file
by its canonical name; when it is absent the metric reports `null` with `missing_message(name)`, which says where to
get it. Files torchvision downloads itself are also looked up in torch's hub cache, where many users already have
them. Every file used is hashed (sha256) into the results, so two numbers computed with different weights never look
alike.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.errors import MissingDataError
from harness.hashing import sha256_file

WEIGHTS_ENV = "PYRATOK_BENCH_WEIGHTS"


@dataclass(frozen=True)
class WeightFile:
    name: str  # canonical file (or folder) name inside the weights folder
    what: str
    sources: tuple[str, ...]
    torch_hub: bool = False  # also looked up in $TORCH_HOME/hub/checkpoints (torchvision's download cache)


KNOWN: dict[str, WeightFile] = {w.name: w for w in (
    WeightFile("i3d_pretrained_400.pt", "VideoGPT/TATS PyTorch I3D (Kinetics-400), pytorch-i3d InceptionI3d state dict",
               ("https://github.com/songweige/TATS/raw/main/tats/fvd/i3d_pretrained_400.pt (TATS repository, "
                "tats/fvd/i3d_pretrained_400.pt)",
                "the VideoGPT release linked from JunyaoHu/common_metrics_on_video_quality fvd/videogpt/fvd.py")),
    WeightFile("i3d_torchscript.pt", "StyleGAN-V TorchScript port of the tf.hub I3D (Kinetics-400)",
               ("https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1 (universome/stylegan-v "
                "src/metrics/frechet_video_distance.py)",)),
    WeightFile("alexnet-owt-7be5be79.pth", "torchvision AlexNet (ImageNet), backbone of LPIPS-alex",
               ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",), torch_hub=True),
    WeightFile("vgg16-397923af.pth", "torchvision VGG16 (ImageNet), backbone of LPIPS-vgg",
               ("https://download.pytorch.org/models/vgg16-397923af.pth",), torch_hub=True),
    WeightFile("alex.pth", "LPIPS v0.1 linear layers for AlexNet",
               ("the `lpips` PyPI package: lpips/weights/v0.1/alex.pth",
                "richzhang/PerceptualSimilarity: lpips/weights/v0.1/alex.pth")),
    WeightFile("vgg.pth", "LPIPS v0.1 linear layers for VGG16",
               ("the `lpips` PyPI package: lpips/weights/v0.1/vgg.pth",
                "richzhang/PerceptualSimilarity: lpips/weights/v0.1/vgg.pth")),
    WeightFile("clip-vit-base-patch32", "CLIP ViT-B/32 as a transformers folder (config.json, weights, tokenizer, "
               "preprocessor_config.json)", ("the Hugging Face repository openai/clip-vit-base-patch32 "
                                             "(huggingface-cli download ... --local-dir <this folder>)",)),
    WeightFile("videomae-v2-g-ssv2", "VideoMAE-v2 ViT-g fine-tuned on SSv2 as a transformers VideoMAE folder "
               "(content-debiased FVD)", ("convert OpenGVLab's vit_g_hybrid_pt_1200e_ssv2_ft.pth (the checkpoint "
                                          "songweige/content-debiased-fvd downloads) with `python -m "
                                          "harness.metrics.cdfvd convert CKPT OUT_DIR`",)),
)}


def weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV) or Path.home() / ".cache" / "pyratok-bench" / "weights").expanduser()


def _torch_hub_dir() -> Path:
    home = os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"
    return Path(home).expanduser() / "hub" / "checkpoints"


def find_weight(name: str) -> Path | None:
    """The path of the weight file (or folder) `name`, or None when it is nowhere to be found."""
    candidates = [weights_dir() / name]
    if name in KNOWN and KNOWN[name].torch_hub:
        candidates.append(_torch_hub_dir() / name)
    for path in candidates:
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            return path
    return None


def missing_message(name: str) -> str:
    """Why a metric cannot be computed: which file is missing, where it was looked for, where to get it."""
    w = KNOWN.get(name)
    where = f"{weights_dir() / name}" + (f" or {_torch_hub_dir() / name}" if w and w.torch_hub else "")
    text = f"weight file {name} not found (looked for {where}; set ${WEIGHTS_ENV} to the folder holding it)"
    if w:
        text += f"; it is the {w.what}; get it from: " + "; ".join(w.sources)
    return text


def require_weight(name: str) -> Path:
    path = find_weight(name)
    if path is None:
        raise MissingDataError(missing_message(name))
    return path


_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def weight_sha256(path: str | Path) -> str:
    """sha256 of a weight file (of a folder: of its files' names and hashes), memoised by path, size and mtime."""
    path = Path(path)
    if path.is_dir():
        from harness.hashing import sha256_obj

        return sha256_obj({str(p.relative_to(path)): weight_sha256(p) for p in sorted(path.rglob("*")) if p.is_file()})
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = sha256_file(path)
    with _hash_lock:
        _hash_cache[key] = digest
    return digest
