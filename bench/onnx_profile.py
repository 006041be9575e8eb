"""Where the time goes in sttr-small's exported content path: onnxruntime's own profiler.

Exports the student (random weights unless ``--checkpoint``; speed does not depend on
them), encodes one style, runs the content graph ``--runs`` times with profiling on, and
prints the time per part of the network (the tokenizer backbone, the transformer, the
image decoder, and the rest: the texture head, the histogram prior and the glue between
them), the rest's time by op type, and the slowest nodes. Kernel times only, summed over
the runs and divided by them.

    python bench/onnx_profile.py --size 384 --top 15
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
from pathlib import Path

from peer_speed import exported_student, load_student
from styledistill.benchmark import machine_line

PARTS = {"features": "backbone", "decoder": "transformer", "image_decoder": "image decoder"}
REST = "texture head, histogram prior, glue"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", help="a trained student folder (default: random)")
    parser.add_argument("--size", type=int, default=384, help="content side")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--top", type=int, default=15, help="slowest nodes to list")
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    threads = args.threads or os.cpu_count() or 1
    torch.manual_seed(0)
    model = load_student(args.checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        stylizer, arguments = exported_student(model.eval(), args.size, threads, Path(folder))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "profile")
        stylizer.session = ort.InferenceSession(
            str(stylizer.path), options, providers=["CPUExecutionProvider"]
        )
        for _ in range(args.runs + 1):  # the first warms up; it is averaged in with the rest
            stylizer.run_padded(*arguments)
        events = json.loads(Path(stylizer.session.end_profiling()).read_text())
    runs = args.runs + 1
    nodes: collections.Counter[str] = collections.Counter()
    kinds: dict[str, str] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            name = event["name"][: -len("_kernel_time")]
            nodes[name] += event["dur"] / 1000 / runs
            kinds[name] = event["args"]["op_name"]
    parts: collections.Counter[str] = collections.Counter()
    rest_ops: collections.Counter[str] = collections.Counter()  # the head's time by op
    rest_counts: collections.Counter[str] = collections.Counter()
    for name, ms in nodes.items():
        scope = name.strip("/").split("/")[0].split(".")[0]
        part = PARTS.get(scope, REST)
        parts[part] += ms
        if part == REST:
            rest_ops[kinds[name]] += ms
            rest_counts[kinds[name]] += 1
    print(f"machine: {machine_line()}")
    print(f"onnxruntime {ort.__version__}, {threads} threads, {args.size}x{args.size}, batch 1")
    print("\n| part | ms per run | share |\n|---|---|---|")
    total = sum(parts.values())
    for part, ms in parts.most_common():
        print(f"| {part} | {ms:.1f} | {ms / total:.0%} |")
    print(f"| all {len(nodes)} nodes | {total:.1f} | |")
    print(f"\n| {REST}: op | nodes | ms per run |\n|---|---|---|")
    for op, ms in rest_ops.most_common(args.top):
        print(f"| {op} | {rest_counts[op]} | {ms:.2f} |")
    print("\n| slowest nodes | op | ms per run |\n|---|---|---|")
    for name, ms in nodes.most_common(args.top):
        print(f"| {name} | {kinds[name]} | {ms:.2f} |")


if __name__ == "__main__":
    main()
