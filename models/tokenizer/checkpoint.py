"""Checkpoints: weights as safetensors, the configuration as JSON beside them, and (for resuming) the optimizer and
random states through torch.save / torch.load(weights_only=True). Loading never executes code from the files."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.errors import MissingDataError
from harness.io import atomic_path, read_json, write_json
from models.tokenizer.lora import has_lora_keys, merge_lora_state

FORMAT = 1


def save_weights(module: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None,
                 dtype: torch.dtype | None = None) -> None:
    from safetensors.torch import save_file

    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous().cpu()
             for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata or {})


def load_weights(module: torch.nn.Module, path: str | Path, strict: bool = True) -> tuple[list[str], list[str]]:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"weights file {path} not found")
    state = load_file(str(path))
    own = module.state_dict()
    if has_lora_keys(state) and not has_lora_keys(own):  # a LoRA-trained checkpoint into the plain model
        state = merge_lora_state(state)
    state = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() else v for k, v in state.items()}
    missing, unexpected = module.load_state_dict(state, strict=strict)
    return list(missing), list(unexpected)


def save_checkpoint(folder: str | Path, module: torch.nn.Module, info: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                    rng_state: dict[str, Any] | None = None, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """folder/model.safetensors, folder/config.json (info + format), and folder/trainer_state.pt when an optimizer
    is given. The JSON is written last: a folder with a config.json is complete."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(module, folder / "model.safetensors")
    if optimizer is not None:
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
                 "torch_rng": torch.get_rng_state(), **(tensors or {})}
        with atomic_path(folder / "trainer_state.pt") as tmp:
            torch.save(state, tmp)
    write_json(folder / "config.json", {"format": FORMAT, **info, "rng": rng_state or {}})
    return folder


def load_trainer_state(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / "trainer_state.pt"
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint_info(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise MissingDataError(f"no checkpoint at {folder}: config.json is missing")
    return read_json(path)


def bundle_files(path: str | Path, model: str, bundled: Path) -> tuple[Path, Path]:
    """(weights .safetensors, config .json) of a bundle stem, either file of a bundle, or a training folder; a missing
    file is named with the command that makes one."""
    p = Path(path).expanduser()
    if p.is_dir():
        w, j = p / "model.safetensors", p / "config.json"
    elif p.suffix in (".safetensors", ".json"):
        w, j = p.with_suffix(".safetensors"), p.with_suffix(".json")
    else:
        w, j = p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")
    for f in (w, j):
        if not f.exists():
            raise MissingDataError(f"{model} checkpoint file {f} not found (train one with `python -m harness train "
                                   f"--model {model} --config tiny --export STEM`, or use the bundled "
                                   f"{bundled}.safetensors)")
    return w, j
