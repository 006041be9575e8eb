"""Model statistics quoted in bench/RESULTS.md: parameters, compute and the histogram path.

For each student preset: parameters (all and trainable), multiply-accumulates of one
full forward pass (content and style at ``--size``, batch 1) counted by
``torch.utils.flop_counter.FlopCounterMode`` (GMAC = FLOPs / 2; matmuls and
convolutions, which is nearly all of the work), and for presets with the colour prior
(histogram specification), the median time of that path alone (style quantiles + the
per-pixel lookup) at ``--size`` on this machine.

  python bench/model_stats.py                         # sttr-small and sttr-paper at 512
  python bench/model_stats.py --presets sttr-small --repeats 50 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from styledistill.runtime import set_threads
from styledistill.student import STTR
from styledistill.student.colour import channel_quantiles, match_channel_quantiles


def gmacs(model: STTR, content: torch.Tensor, style: torch.Tensor) -> float:
    """Multiply-accumulates (in 1e9) of one forward pass."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(content, style)
    return counter.get_total_flops() / 2 / 1e9


def histogram_path_ms(model: STTR, content: torch.Tensor, style: torch.Tensor, repeats: int):
    """Median ms of the histogram colour transfer alone: style quantiles + content lookup."""
    levels = model.config.colour_prior.levels

    def once() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            match_channel_quantiles(content, None, channel_quantiles(style, None, levels))
        return (time.perf_counter() - start) * 1000.0

    once()  # warm-up
    return statistics.median(once() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["sttr-small", "sttr-paper"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of the histogram path")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    set_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, size {args.size}")
    for name in args.presets:
        torch.manual_seed(0)
        model = STTR.from_preset(name).eval()
        content = torch.rand(1, 3, args.size, args.size)
        style_side = model.config.style_size or args.size
        style = torch.rand(1, 3, style_side, style_side)
        line = (
            f"{name}: {model.num_parameters():,} parameters "
            f"({model.num_parameters(trainable_only=True):,} trainable), "
            f"{gmacs(model, content, style):.2f} GMAC at {args.size}x{args.size}"
        )
        if model.config.colour_prior is not None:
            ms = histogram_path_ms(model, content, style, args.repeats)
            line += f", histogram path {ms:.1f} ms"
        print(line)


if __name__ == "__main__":
    main()
