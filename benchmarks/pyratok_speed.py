"""PyraTok speed and memory: encode/decode milliseconds per frame, LaPQ's cost over the bare VAE, and peak memory by
resolution with tiling. Prints figures; no thresholds (targets live in docs/pyratok.md).

    python benchmarks/pyratok_speed.py                         # tiny + paper configs at 17x128^2 and 17x256^2
    python benchmarks/pyratok_speed.py --configs tiny --sizes 128 --memory 128,256,512,1024 --device cpu
    python benchmarks/pyratok_speed.py --memory 2160,4320 --frames 5   # high resolution (slow on a CPU)

Models are randomly initialized (speed does not depend on the weights), encoding runs text-free as the adapter does.
Peak memory: each resolution runs in a fresh subprocess and reports its peak RSS (CPU) or
torch.cuda.max_memory_allocated (GPU), with tiling on (tile 256, overlap 64) and off.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(config: str, device: str, tiling: str = "auto"):
    from models.pyratok.adapter import PyraTokAdapter

    torch.manual_seed(0)
    return PyraTokAdapter(device=device, checkpoint="none", config=config, text_width=384, tiling=tiling)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn, device: str, repeats: int) -> float:
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


@torch.no_grad()
def speed(config: str, size: int, frames: int, device: str, repeats: int) -> dict:
    a = build(config, device, tiling="off")
    m = a.model
    x = torch.rand(1, 3, frames, size, size, device=device) * 2 - 1
    tokens = a.encode(x)
    enc = time_call(lambda: a.encode(x), device, repeats)
    dec = time_call(lambda: a.decode(tokens), device, repeats)
    bare_enc = time_call(lambda: m.backbone.encode_taps(x, ["latent"]), device, repeats)
    z = m.backbone.encode_taps(x, ["latent"])["latent"]
    bare_dec = time_call(lambda: m.backbone.decode(z), device, repeats)
    return {"config": config, "size": size, "frames": frames, "device": device,
            "encode_ms_per_frame": 1000 * enc / frames, "decode_ms_per_frame": 1000 * dec / frames,
            "vae_encode_ms_per_frame": 1000 * bare_enc / frames, "vae_decode_ms_per_frame": 1000 * bare_dec / frames,
            "lapq_overhead_encode": enc / bare_enc - 1, "lapq_overhead_total": (enc + dec) / (bare_enc + bare_dec) - 1,
            "params_M": sum(p.numel() for p in m.parameters()) / 1e6}


def memory_child(config: str, height: int, frames: int, device: str, tiling: str) -> None:
    import resource

    a = build(config, device, tiling)
    width = height * 16 // 9 // 8 * 8
    x = torch.rand(1, 3, frames, height, width, device=device) * 2 - 1
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    y = a.decode(a.encode(x))
    _sync(device)
    peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({"config": config, "height": height, "width": width, "frames": frames, "tiling": tiling,
                      "peak_MiB": peak / 2 ** 20, "seconds": time.perf_counter() - t, "ok": tuple(y.shape) ==
                      tuple(x.shape)}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="tiny,paper")
    p.add_argument("--sizes", default="128,256")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--memory", default="128,256,512", help="heights for the peak-memory table ('' to skip)")
    p.add_argument("--memory-config", default="tiny")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--child", nargs=4, metavar=("CONFIG", "HEIGHT", "FRAMES", "TILING"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        memory_child(args.child[0], int(args.child[1]), int(args.child[2]), args.device, args.child[3])
        return 0
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'config':<7}{'size':>6}{'enc ms/f':>10}{'dec ms/f':>10}{'VAE enc':>10}{'VAE dec':>10}"
          f"{'LaPQ enc +%':>13}{'LaPQ all +%':>13}{'params M':>10}")
    for config in args.configs.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            r = speed(config, size, args.frames, args.device, args.repeats)
            print(f"{config:<7}{size:>6}{r['encode_ms_per_frame']:>10.1f}{r['decode_ms_per_frame']:>10.1f}"
                  f"{r['vae_encode_ms_per_frame']:>10.1f}{r['vae_decode_ms_per_frame']:>10.1f}"
                  f"{100 * r['lapq_overhead_encode']:>13.1f}{100 * r['lapq_overhead_total']:>13.1f}"
                  f"{r['params_M']:>10.2f}", flush=True)
    if args.memory:
        print(f"\npeak memory ({args.memory_config}, {args.frames} frames, 16:9, encode + decode)")
        print(f"{'height':>7}{'width':>7}{'tiling':>8}{'peak MiB':>10}{'seconds':>9}")
        for h in (int(s) for s in args.memory.split(",")):
            for tiling in ("on", "off"):
                cmd = [sys.executable, __file__, "--device", args.device, "--child", args.memory_config, str(h),
                       str(args.frames), tiling]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{h:>7}{'':>7}{tiling:>8}  failed: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{r['height']:>7}{r['width']:>7}{tiling:>8}{r['peak_MiB']:>10.0f}{r['seconds']:>9.1f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
