"""Benchmark: TextureTeacher at 256x256 on this CPU vs the 3 s target and vs exact PCA.

Prints median wall time (and CPU time) over a few runs for: preparing a style, stylizing
one pair with a prepared style, and the two together; side by side for the default
(randomized low-rank PCA) and an exact-covariance-PCA variant, plus the load average,
since the machine may be shared.

examples:
  python bench/texture.py
  python bench/texture.py --runs 5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def measure(fn, runs: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("examples:")[0],
        epilog="examples:" + __doc__.split("examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    import torch

    from styledistill.benchmark import machine_line
    from styledistill.samples import generate_style, sample_contents
    from styledistill.teachers.texture import TextureTeacher

    if args.threads:
        torch.set_num_threads(args.threads)
    content = sample_contents(names=["astronaut"])["astronaut"]
    style = generate_style("stained_glass", args.size, seed=0)
    print(f"machine (before): {machine_line()}")
    results = {}
    for label, settings in [("low-rank PCA (default)", {}), ("exact PCA", {"exact_pca": True})]:
        teacher = TextureTeacher(size=args.size, **settings)
        teacher.stylize([content], [style])  # warm-up
        prepared = teacher.prepare_style(style)
        prep = measure(lambda t=teacher: t.prepare_style(style), args.runs)
        run = measure(lambda t=teacher, p=prepared: t.stylize([content], [p]), args.runs)
        total = measure(lambda t=teacher: t.stylize([content], [style]), args.runs)
        results[label] = total[0]
        print(
            f"{label:24s} prepare {prep[0]:.2f}s (cpu {prep[1]:.2f})  stylize {run[0]:.2f}s "
            f"(cpu {run[1]:.2f})  prepare+stylize {total[0]:.2f}s (cpu {total[1]:.2f})  "
            f"vs 3 s target: {total[0] / 3.0:.2f}x"
        )
    default, exact = results["low-rank PCA (default)"], results["exact PCA"]
    print(f"exact / low-rank PCA time ratio: {exact / default:.2f}x; load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
