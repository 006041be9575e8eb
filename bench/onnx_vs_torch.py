"""onnxruntime vs PyTorch for the student on this machine's CPU, side by side.

Exports the model (random weights unless --checkpoint is given: speed does not depend
on the weights), encodes one style, then times the content half (what every photo or
video frame pays) at SIZE x SIZE, batch 1, for PyTorch fp32, onnxruntime fp32 and
onnxruntime int8 (dynamic quantization). Prints medians, the ratios and the machine.

    python bench/onnx_vs_torch.py                       # sttr-small at 512
    python bench/onnx_vs_torch.py --preset sttr-paper --repeats 5
    python bench/onnx_vs_torch.py --checkpoint runs/small/student --size 768
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="sttr-small")
    parser.add_argument(
        "--checkpoint", default=None, help="student folder (default: random weights)"
    )
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for both (default: all cores)"
    )
    args = parser.parse_args()

    import numpy as np
    import torch

    from styledistill.benchmark import machine_line, time_calls
    from styledistill.export import export_onnx
    from styledistill.onnx_runtime import OnnxStylizer, pad_batch
    from styledistill.student import STTR

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = (
        STTR.from_pretrained(args.checkpoint) if args.checkpoint else STTR.from_preset(args.preset)
    )
    model = model.eval()
    name = args.checkpoint or f"{args.preset} (random weights)"
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "student.onnx"
        report = export_onnx(
            model, onnx_path, size=args.size, int8=True, verify_sizes=[(args.size, args.size)]
        )
        fp32 = OnnxStylizer(onnx_path, threads=threads)
        int8 = OnnxStylizer(report.int8_paths[0], threads=threads)

        rng = np.random.default_rng(0)
        style_side = model.config.style_size or args.size
        style, style_mask = pad_batch(
            rng.random((1, 3, style_side, style_side), dtype=np.float32), 32
        )
        content, content_mask = pad_batch(
            rng.random((1, 3, args.size, args.size), dtype=np.float32), 32
        )
        t_content, t_mask = torch.from_numpy(content), torch.from_numpy(content_mask)
        with torch.inference_mode():
            memory = model.encode_style(torch.from_numpy(style), torch.from_numpy(style_mask))

        def torch_run():
            with torch.inference_mode():
                model.decode(t_content, *memory, t_mask)

        code32 = fp32.encode_padded_style(style, style_mask)
        code8 = int8.encode_padded_style(style, style_mask)
        results = {
            "pytorch fp32": time_calls(torch_run, args.repeats, warmup=2),
            "onnxruntime fp32": time_calls(
                lambda: fp32.run_padded(content, content_mask, code32), args.repeats, warmup=2
            ),
            "onnxruntime int8": time_calls(
                lambda: int8.run_padded(content, content_mask, code8), args.repeats, warmup=2
            ),
        }

        def torch_style():
            with torch.inference_mode():
                model.encode_style(torch.from_numpy(style), torch.from_numpy(style_mask))

        style_times = {
            "pytorch fp32": time_calls(torch_style, 3, warmup=1),
            "onnxruntime fp32": time_calls(
                lambda: fp32.encode_padded_style(style, style_mask), 3, warmup=1
            ),
        }

    print(f"machine: {machine_line()}")
    print(
        f"torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}, {threads} threads"
    )
    print(
        f"model: {name}, {model.num_parameters() / 1e6:.1f}M parameters; content {args.size}x{args.size}, batch 1"
    )
    print(
        f"export check: fp32 max abs diff {report.max_abs_diff:.2e}, int8 {report.int8_max_abs_diff:.2e}"
    )
    base = statistics.median(results["pytorch fp32"])
    print(f"{'runtime':<18} {'median ms':>10} {'min ms':>8} {'vs pytorch':>11}")
    for label, times in results.items():
        median = statistics.median(times)
        print(f"{label:<18} {median * 1e3:>10.1f} {min(times) * 1e3:>8.1f} {base / median:>10.2f}x")
    for label, times in style_times.items():
        print(f"style encoding, {label}: {statistics.median(times) * 1e3:.1f} ms (once per style)")


if __name__ == "__main__":
    main()
