"""Student speed: ms per image for sttr-small and sttr-paper, side by side, one run.

Measures, per preset and square size, at batch 1 in eval mode under inference_mode:
  full   = forward(content, style): both tokenizers, encoder and decoder;
  cached = decode(content, cached style): what folders and video pay per frame.
Prints median and spread (min..max), the small/paper speed ratio, the ratio to the
speed target (docs/architecture.md; sttr-small <= 150 ms at 512 on a 2-core CPU; on GPU sttr-paper <= 5 ms
at 512, >= 500 images/s batched), the machine, and the load average (shared CPUs
make numbers noisy: compare columns from the same run only).

  python bench/student.py                              # CPU, 256/512/1024, both presets
  python bench/student.py --sizes 512 --repeats 20
  python bench/student.py --device cuda --half --batch 64   # GPU, fp16, + batched throughput
  python bench/student.py --json results.json
  python bench/student.py --device cuda --half --check    # correctness on the GPU first
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from styledistill.benchmark import machine_line, time_calls
from styledistill.student import STTR

CPU_TARGET_MS = 150.0  # sttr-small, 512x512, 2-core CPU (docs/architecture.md)
GPU_TARGET_MS = 5.0  # sttr-paper, 512x512, H100, batch 1
GPU_TARGET_IPS = 500.0  # sttr-paper, 512x512, H100, batched


#: Timed runs every measurement gets, however slow: a median needs more than one run.
MIN_RUNS = 3


def timed(fn, device: torch.device, repeats: int, budget_s: float) -> list[float]:
    """Milliseconds per call: one warm-up (two on a GPU: cuDNN autotuning, allocator),
    then ``repeats`` runs; slow cases stop once ``budget_s`` is spent, but never before
    ``MIN_RUNS`` runs (or ``repeats``, if lower): the printed ``n=`` says how many."""
    warmup = 2 if device.type == "cuda" else 1
    times = time_calls(
        fn, repeats, warmup=warmup, device=device, budget_s=budget_s, min_runs=MIN_RUNS
    )
    return [t * 1000.0 for t in times]


def summary(times: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "runs": len(times),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["sttr-small", "sttr-paper"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true", help="float16 on GPU, bfloat16 on CPU")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--budget", type=float, default=20.0, help="seconds per measurement at most"
    )
    parser.add_argument(
        "--batch", type=int, default=0, help="also measure batched cached-style throughput"
    )
    parser.add_argument(
        "--batch-max-size", type=int, default=512, help="largest size to measure batched"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument(
        "--contiguous",
        action="store_true",
        help="NCHW memory format (default: channels_last, as the Stylizer uses)",
    )
    parser.add_argument(
        "--no-fold",
        action="store_true",
        help="keep BatchNorm separate (default: folded into the convs, as the Stylizer runs)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile decode/forward")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument(
        "--check", action="store_true", help="first check correctness on this device (sttr-paper)"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.float32
    if args.half:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"machine: {machine_line(device)}")
    print(
        f"dtype {dtype}, channels_last {not args.contiguous}, BatchNorm folded {not args.no_fold}, "
        f"compile {args.compile}"
    )
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    if args.check and not check(device, dtype):
        return 1

    results: list[dict] = []
    for preset in args.presets:
        torch.manual_seed(0)
        model = STTR.from_preset(preset).to(device=device, dtype=dtype).eval()
        params = model.num_parameters()
        if not args.no_fold:
            model = model.inference_copy()
        memory_format = torch.channels_last if not args.contiguous else torch.contiguous_format
        model = model.to(memory_format=memory_format)
        forward, decode = model, model.decode
        if args.compile:
            forward, decode = torch.compile(model), torch.compile(model.decode)
        for size in args.sizes:
            content = torch.rand(1, 3, size, size, device=device, dtype=dtype)
            content = content.contiguous(memory_format=memory_format)
            style = torch.rand_like(content)
            row = {"preset": preset, "size": size, "params": params}
            try:
                with torch.inference_mode():
                    padded, _ = model.prepare_style(style)
                    code = model.encode_style(padded)
                    row["full"] = summary(
                        timed(
                            lambda c=content, s=style, f=forward: f(c, s),
                            device,
                            args.repeats,
                            args.budget,
                        )
                    )
                    row["cached"] = summary(
                        timed(
                            lambda c=content, m=code, d=decode: d(c, *m),
                            device,
                            args.repeats,
                            args.budget,
                        )
                    )
                    if args.batch > 1 and size <= args.batch_max_size:
                        row["batched"] = batched(decode, content, code, device, args)
            except torch.OutOfMemoryError:
                row["error"] = "out of memory"
                torch.cuda.empty_cache()
            results.append(row)
            print(_row_text(row), flush=True)
        del model
        forward = decode = None
        if device.type == "cuda":
            torch.cuda.empty_cache()

    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    _print_comparison(results, device)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_line(device),
                    "dtype": str(dtype),
                    "load_before": load_before,
                    "load_after": load_after,
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


def batched(decode, content, code, device: torch.device, args: argparse.Namespace) -> dict:
    """Images per second for a batch of contents sharing one cached style."""
    memory_format = torch.contiguous_format if args.contiguous else torch.channels_last
    batch = content.expand(args.batch, -1, -1, -1).contiguous(memory_format=memory_format)
    try:
        times = timed(lambda: decode(batch, *code), device, max(3, args.repeats // 2), args.budget)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"batch": args.batch, "error": "out of memory"}
    median_s = statistics.median(times) / 1000.0
    return {"batch": args.batch, "images_per_s": args.batch / median_s, **summary(times)}


def check(device: torch.device, dtype: torch.dtype) -> bool:
    """sttr-paper on this device: odd sizes, reduced precision vs float32, cached style
    vs full forward, batched vs one by one. Prints one PASS/FAIL line per check."""
    torch.manual_seed(0)
    model = STTR.from_preset("sttr-paper").to(device).eval()
    ok = True

    def report(name: str, passed: bool, detail: str) -> None:
        nonlocal ok
        ok &= passed
        print(f"check {'PASS' if passed else 'FAIL'}: {name} ({detail})", flush=True)

    gen = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        content = torch.rand(1, 3, 301, 457, generator=gen).to(device)
        style = torch.rand(1, 3, 480, 640, generator=gen).to(device)
        out = model(content, style)
        report(
            "odd sizes -> content size, finite, in [0,1]",
            out.shape == content.shape
            and bool(torch.isfinite(out).all())
            and float(out.min()) >= 0
            and float(out.max()) <= 1,
            f"{tuple(out.shape)}",
        )
        contents = torch.rand(4, 3, 512, 512, generator=gen).to(device)
        style = torch.rand(1, 3, 512, 512, generator=gen).to(device)
        reference = model(contents, style.expand(4, -1, -1, -1))
        if dtype != torch.float32:
            low = model.to(dtype)
            result = low(contents.to(dtype), style.expand(4, -1, -1, -1).to(dtype)).float()
            diff = float((result - reference).abs().max())
            report(f"{dtype} vs float32 at 512", diff < 0.05, f"max abs diff {diff:.4f}")
        model = model.to(dtype)
        contents, style = contents.to(dtype), style.to(dtype)
        tolerance = 1e-4 if dtype == torch.float32 else 1e-2  # ~2 ulp of bf16/fp16 near 0.5
        full = model(contents, style.expand(4, -1, -1, -1)).float()
        code = model.encode_style(style)
        cached = model.decode(contents, *code).float()
        diff = float((cached - full).abs().max())
        report("cached style == full forward", diff < tolerance, f"max abs diff {diff:.2e}")
        single = torch.cat([model.decode(contents[i : i + 1], *code) for i in range(4)]).float()
        diff = float((single - cached).abs().max())
        report("batched == one by one", diff < tolerance, f"max abs diff {diff:.2e}")
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return ok


def _row_text(row: dict) -> str:
    if "error" in row:
        return f"{row['preset']:>11} {row['size']:>5}px  {row['error']}"
    full, cached = row["full"], row["cached"]
    text = (
        f"{row['preset']:>11} {row['size']:>5}px  full {full['median_ms']:9.1f} ms "
        f"({full['min_ms']:.1f}..{full['max_ms']:.1f}, n={full['runs']})  "
        f"cached style {cached['median_ms']:9.1f} ms ({cached['min_ms']:.1f}..{cached['max_ms']:.1f}, n={cached['runs']})"
    )
    if "batched" in row:
        result = row["batched"]
        speed = result.get("error") or f"{result['images_per_s']:.0f} img/s"
        text += f"  batch {result['batch']}: {speed}"
    return text


def _print_comparison(results: list[dict], device: torch.device) -> None:
    by_key = {(r["preset"], r["size"]): r for r in results if "error" not in r}
    print("\nside by side (median ms, full / cached style):")
    for size in sorted({r["size"] for r in results}):
        small, paper = by_key.get(("sttr-small", size)), by_key.get(("sttr-paper", size))
        if small and paper:
            print(
                f"  {size:>5}px  sttr-small {small['full']['median_ms']:.1f} / {small['cached']['median_ms']:.1f}"
                f"   sttr-paper {paper['full']['median_ms']:.1f} / {paper['cached']['median_ms']:.1f}"
                f"   small is {paper['full']['median_ms'] / small['full']['median_ms']:.1f}x / "
                f"{paper['cached']['median_ms'] / small['cached']['median_ms']:.1f}x faster"
            )
    if device.type == "cpu" and ("sttr-small", 512) in by_key:
        row = by_key[("sttr-small", 512)]
        print(
            f"target sttr-small 512px <= {CPU_TARGET_MS:.0f} ms: full {row['full']['median_ms']:.1f} ms "
            f"= {row['full']['median_ms'] / CPU_TARGET_MS:.2f}x target, cached style "
            f"{row['cached']['median_ms']:.1f} ms = {row['cached']['median_ms'] / CPU_TARGET_MS:.2f}x target"
        )
    if device.type == "cuda" and ("sttr-paper", 512) in by_key:
        row = by_key[("sttr-paper", 512)]
        print(
            f"target sttr-paper 512px batch 1 <= {GPU_TARGET_MS:.0f} ms: full {row['full']['median_ms']:.2f} ms "
            f"= {row['full']['median_ms'] / GPU_TARGET_MS:.2f}x target, cached style "
            f"{row['cached']['median_ms']:.2f} ms = {row['cached']['median_ms'] / GPU_TARGET_MS:.2f}x target"
        )
        if "images_per_s" in row.get("batched", {}):
            ips = row["batched"]["images_per_s"]
            print(
                f"target sttr-paper 512px batched >= {GPU_TARGET_IPS:.0f} img/s: {ips:.0f} img/s = {ips / GPU_TARGET_IPS:.2f}x target"
            )


if __name__ == "__main__":
    sys.exit(main())
