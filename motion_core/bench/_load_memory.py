"""Host memory while a Wan fp8 file loads: kept in fp8 as stored against widened to bf16, as a ratio to the file size.

The file is one of ComfyUI's scaled-fp8 diffusion-model files (``*_fp8_scaled.safetensors``: each 2-D weight in
float8_e4m3fn with a float32 ``scale_weight``, the rest in bf16, a ``scaled_fp8`` marker) of a REAL Wan architecture
with random weights, written tensor by tensor (never the whole model in memory) so that even the 14B fits the
writer. The load runs in a fresh subprocess (nothing cached from the writer or another case) through the product's
own ``load_transformer_file``; a watcher thread samples /proc/self/status every millisecond: VmRSS (all resident
memory), RssAnon (what the process allocated) and RssFile (mapped file pages), each as growth above the values after
the imports. The file's pages in the kernel's page cache are not the process's and are not counted.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import torch

PREFIX = "model.diffusion_model."
VARIANTS = ("wan2.1_t2v_1.3b", "wan2.1_t2v_14b")
_FP8 = torch.float8_e4m3fn
_NAMES = {_FP8: "F8_E4M3", torch.bfloat16: "BF16", torch.float32: "F32"}


def _layout(variant: str, blocks: int | None) -> list[tuple[str, torch.dtype, tuple[int, ...]]]:
    """(name, dtype, shape) of every tensor of the scaled-fp8 file, in ComfyUI's names."""
    from diffusers import WanTransformer3DModel

    from ..backbones.wan import CONFIGS_DIR
    from ..backbones.wan.keys import diffusers_to_original

    config = dict(WanTransformer3DModel.load_config(str(CONFIGS_DIR / "wan_transformer" / variant)))
    if blocks:
        config["num_layers"] = int(blocks)
    with torch.device("meta"):
        model = WanTransformer3DModel.from_config(config)
    layout = [(PREFIX + "scaled_fp8", _FP8, (0,))]
    for key, tensor in diffusers_to_original(model.state_dict(), PREFIX).items():
        if key.endswith(".weight") and tensor.dim() == 2:
            layout += [(key, _FP8, tuple(tensor.shape)), (key[: -len("weight")] + "scale_weight", torch.float32, ())]
        else:
            layout.append((key, torch.bfloat16, tuple(tensor.shape)))
    return layout


def header_table(layout) -> tuple[bytes, int]:
    """The safetensors header of ``layout`` [(name, dtype, shape)], padded to 8 bytes, and the size of its data."""
    header, offset = {}, 0
    for name, dtype, shape in layout:
        size = dtype.itemsize * (int(torch.tensor(shape).prod()) if shape else 1)
        header[name] = {"dtype": _NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    table = json.dumps(header, separators=(",", ":")).encode()
    return table + b" " * (-len(table) % 8), offset  # safetensors pads its header to 8 bytes


def write_scaled_fp8_file(path, variant: str = "wan2.1_t2v_1.3b", blocks: int | None = None, seed: int = 0) -> int:
    """Write the file (weights N(0, 0.02), each matrix scaled so its largest |w| is e4m3's 448); returns its size.
    Memory: one tensor at a time."""
    layout = _layout(variant, blocks)
    table, _ = header_table(layout)
    generator = torch.Generator().manual_seed(seed)
    scales: dict[str, torch.Tensor] = {}
    path = Path(path)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(table)) + table)
        for name, dtype, shape in layout:
            if name.endswith("scale_weight"):
                tensor = scales.pop(name)
            elif dtype == _FP8 and shape == (0,):
                tensor = torch.empty(0, dtype=_FP8)
            else:
                values = torch.randn(shape, generator=generator) * 0.02
                if dtype == _FP8:
                    scale = values.abs().amax() / torch.finfo(_FP8).max
                    scales[name[: -len("weight")] + "scale_weight"] = scale.float()
                    tensor = (values / scale).to(_FP8)
                else:
                    tensor = values.to(dtype)
                del values
            out.write(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
    return path.stat().st_size


def _child(path: str, keep_fp8: bool) -> None:
    """In a fresh process: the peak growth of load_transformer_file(path, bf16, keep_fp8), as JSON on stdout."""
    import diffusers.models.transformers.transformer_wan  # noqa: F401 - imported before the baseline

    from ..backbones.wan.single_file import load_transformer_file
    from .peak_rss import SampledStatus

    torch.set_num_threads(1)
    began = time.perf_counter()
    with SampledStatus() as peaks:
        model, _ = load_transformer_file(path, torch.bfloat16, keep_fp8=keep_fp8)
    seconds = time.perf_counter() - began
    dtypes = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        key = str(tensor.dtype).removeprefix("torch.")
        dtypes[key] = dtypes.get(key, 0) + tensor.numel() * tensor.element_size()
    print(json.dumps({"growth": peaks.growth, "kept": peaks.kept, "baseline": peaks.baseline, "seconds": seconds,
                      "model_bytes": dtypes}))


def measure(path, keep_fp8: bool, threads: int = 1) -> dict:
    """The child's figures for one load of ``path``."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    code = f"from {__package__}._load_memory import _child; _child({str(path)!r}, {bool(keep_fp8)!r})"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loading measurement failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_case(variant: str, blocks: int | None, folder, modes: tuple[bool, ...] = (True, False)) -> list[dict]:
    """Write the file of ``variant`` (``blocks`` of its blocks; None: all) into ``folder``, load it each way of
    ``modes`` (True: fp8 as stored, False: widened to bf16; the 14B widened needs ~2x its 14 GiB file in RAM),
    delete it; one row per way."""
    path = Path(folder) / f"{variant}_bench_fp8_scaled.safetensors"
    began = time.perf_counter()
    size = write_scaled_fp8_file(path, variant, blocks)
    written = time.perf_counter() - began
    rows = []
    try:
        for keep in modes:
            figures = measure(path, keep)
            growth = figures["growth"]
            rows.append({"variant": variant, "blocks": blocks or "all", "file_bytes": size,
                         "mode": "fp8 as stored" if keep else "widened to bf16",
                         "peak_rss_bytes": growth["VmRSS"], "peak_anon_bytes": growth["RssAnon"],
                         "peak_file_pages_bytes": growth["RssFile"], "kept_rss_bytes": figures["kept"]["VmRSS"],
                         "rss_ratio": round(growth["VmRSS"] / size, 3),
                         "anon_ratio": round(growth["RssAnon"] / size, 3),
                         "baseline_rss_bytes": figures["baseline"]["VmRSS"], "load_s": round(figures["seconds"], 1),
                         "write_s": round(written, 1), "model_bytes": figures["model_bytes"]})
    finally:
        path.unlink(missing_ok=True)
    return rows


def describe(row: dict) -> str:
    gib = 2**30
    blocks = "" if row["blocks"] == "all" else f" ({row['blocks']} blocks)"
    return (f"{row['variant']}{blocks} file {row['file_bytes'] / gib:.2f} GiB, {row['mode']:<15}: peak RSS "
            f"+{row['peak_rss_bytes'] / gib:.2f} GiB ({row['rss_ratio']:.2f}x the file), anonymous "
            f"+{row['peak_anon_bytes'] / gib:.2f} GiB ({row['anon_ratio']:.2f}x), mapped file pages "
            f"+{row['peak_file_pages_bytes'] / 2**20:.0f} MiB; load {row['load_s']} s")
