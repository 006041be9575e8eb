"""ONNX export of the STTR student: two graphs, rewritten for onnxruntime, int8, verified.

Two files, so a style is encoded once and reused for many contents (video frames, a
web page serving one style to many photos):

- ``OUT.style.onnx``: ``style [B,3,Hs,Ws]`` (padded, in [0,1]) + ``style_mask [B,Hs,Ws]``
  (bool, True on padding) -> the style memory, one named output per field of
  :class:`~styledistill.student.memory.StyleMemory`: ``memory [B,L,d]``, ``memory_pos
  [B,L,d]``, ``memory_mask [B,L]``, and with the small preset's parts ``style_colour
  [B,3,K]`` and ``style_stats_S [B,2C]`` per skip stride S.
- ``OUT.onnx``: ``content [B,3,H,W]`` + ``content_mask [B,H,W]`` + the style tensors
  (same batch) -> ``image [B,3,H,W]`` in [0,1].

Batch, height and width are dynamic; H and W must be multiples of the model's
``pad_multiple`` (32), which :class:`OnnxStylizer` takes care of. Both files carry
``styledistill.*`` metadata (role, pad multiple, style size, default size, the
model config), and ``OUT.onnx`` names its style graph, so ``OnnxStylizer("OUT.onnx")``
is all a user needs. Two plain files (rather than one model holding two graphs) keep
each one loadable by any ONNX tool and let an app ship only the content graph with
precomputed style codes.

The export is checked right away: onnxruntime vs PyTorch on the same padded inputs
at a few sizes (multiples of 32 and odd sizes padded the way the runner pads them),
max abs difference <= 1e-3 in fp32. ``int8=True`` adds dynamically quantized copies
(``OUT.int8.onnx``, ``OUT.style.int8.onnx``) and measures their own error.

The files run without torch in :class:`styledistill.onnx_runtime.OnnxStylizer`; this
module needs torch and onnx (it traces and checks the model).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .budget import attention_bytes, check_memory, student_bytes_per_pixel, working_shape
from .errors import ConfigError, StyledistillError
from .onnx_runtime import (
    CONTENT_INPUTS,
    META_PREFIX,
    STYLE_INPUTS,
    OnnxStylizer,
    pad_batch,
    style_model_path,
)
from .plumbing import atomic_path

__all__ = [
    "DEFAULT_OPSET",
    "FP32_TOLERANCE",
    "MAX_OUTLIER_FRACTION",
    "ExportReport",
    "SizeCheck",
    "check_export",
    "export_onnx",
    "int8_path",
    "narrow_gather_indices",
    "quantize_int8",
    "style_model_path",
    "verify_export",
]

DEFAULT_OPSET = 17

#: Largest accepted onnxruntime-vs-PyTorch difference (fp32, images in [0, 1]).
FP32_TOLERANCE = 1e-3
#: Share of output values allowed past FP32_TOLERANCE. Histogram matching is a step
#: function: a value on a histogram bin edge can land on the other side in the other
#: runtime's last float bit, moving a few single pixels by ~1/256 while every other value
#: agrees to ~1e-6. An unfaithful export (a shape baked in at trace time, a wrong op)
#: moves most pixels.
MAX_OUTLIER_FRACTION = 1e-4


def int8_path(onnx_path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx`` (the quantized content graph)."""
    stem = onnx_path.name[: -len(".onnx")] if onnx_path.name.endswith(".onnx") else onnx_path.name
    return onnx_path.with_name(stem + ".int8.onnx")


@dataclass
class SizeCheck:
    """One verification run: content size (before padding) and the differences seen."""

    content_size: tuple[int, int]
    padded_size: tuple[int, int]
    style_size: tuple[int, int]
    batch: int
    max_abs_diff: float
    memory_max_abs_diff: float
    #: Share of output values that differ by more than FP32_TOLERANCE.
    outlier_fraction: float = 0.0
    #: The largest share accepted at this size (:func:`allowed_outliers`).
    allowed_fraction: float = MAX_OUTLIER_FRACTION

    @property
    def faithful(self) -> bool:
        return self.outlier_fraction <= self.allowed_fraction


@dataclass
class ExportReport:
    """Files written and the onnxruntime-vs-PyTorch differences measured after export."""

    onnx_path: Path
    style_path: Path
    opset: int
    checks: list[SizeCheck] = field(default_factory=list)
    int8_paths: tuple[Path, Path] | None = None
    int8_checks: list[SizeCheck] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.checks), default=float("nan"))

    @property
    def outlier_fraction(self) -> float:
        return max((c.outlier_fraction for c in self.checks), default=float("nan"))

    @property
    def faithful(self) -> bool:
        """fp32 onnxruntime agrees with PyTorch at every size checked: all but a few
        step-function values within :data:`FP32_TOLERANCE` (:func:`allowed_outliers`)."""
        return bool(self.checks) and all(check.faithful for check in self.checks)

    @property
    def allowed_fraction(self) -> float:
        return min((c.allowed_fraction for c in self.checks), default=MAX_OUTLIER_FRACTION)

    @property
    def int8_max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.int8_checks), default=float("nan"))

    def lines(self) -> list[str]:
        out = [
            f"wrote {self.onnx_path} (content + style memory -> image, "
            f"{_mb(self.onnx_path)}) and {self.style_path} (style encoder, {_mb(self.style_path)}), "
            f"opset {self.opset}"
        ]
        for check in self.checks:
            out.append("fp32 " + _check_line(check))
        if self.checks:
            verdict = "OK" if self.faithful else "FAILED"
            out.append(
                f"fp32 max abs diff {self.max_abs_diff:.2e}, values over {FP32_TOLERANCE:g}: "
                f"{self.outlier_fraction:.1e} (allowed: {self.allowed_fraction:.1e}): {verdict}"
            )
        if self.int8_paths:
            out.append(
                f"wrote {self.int8_paths[0]} ({_mb(self.int8_paths[0])}) and "
                f"{self.int8_paths[1]} ({_mb(self.int8_paths[1])}), int8 dynamic quantization"
            )
            for check in self.int8_checks:
                out.append("int8 " + _check_line(check))
            if self.int8_checks:
                out.append(f"int8 max abs diff vs PyTorch fp32: {self.int8_max_abs_diff:.3g}")
        return out


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _check_line(check: SizeCheck) -> str:
    h, w = check.content_size
    ph, pw = check.padded_size
    sh, sw = check.style_size
    padded = f" (padded to {ph}x{pw})" if (h, w) != (ph, pw) else ""
    return (
        f"content {h}x{w}{padded}, style {sh}x{sw}, batch {check.batch}: "
        f"image max abs diff {check.max_abs_diff:.2e}, memory {check.memory_max_abs_diff:.2e}, "
        f"over tolerance {check.outlier_fraction:.1e} (allowed {check.allowed_fraction:.1e})"
    )


def export_onnx(
    model,
    onnx_path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    size: int = 512,
    int8: bool = False,
    verify: bool = True,
    verify_sizes: list[tuple[int, int]] | None = None,
    seed: int = 0,
    max_pixels: int | None = None,
) -> ExportReport:
    """Export an :class:`~styledistill.student.STTR` (or a checkpoint folder) to ONNX.

    Writes ``onnx_path`` and :func:`style_model_path` (``OUT.style.onnx``). ``size`` is
    the long side the exported stylizer uses by default and the scale of the
    verification sizes. With ``verify`` (default), onnxruntime is compared with
    PyTorch on ``verify_sizes`` (content ``(H, W)``; default: three sizes from
    ``size``, one of them odd) and a :class:`StyledistillError` is raised if more than
    :data:`MAX_OUTLIER_FRACTION` of the fp32 output values differ by over
    :data:`FP32_TOLERANCE`. Settings and the pixel budget (``max_pixels``, as
    :class:`OnnxStylizer`) are checked by :func:`check_export` before anything is traced.
    """
    import time

    import torch

    from .student import STTR

    start = time.perf_counter()
    if isinstance(model, (str, os.PathLike)):
        model = STTR.from_pretrained(model)
    if not isinstance(model, STTR):
        raise ConfigError(
            f"export_onnx needs an STTR model or checkpoint folder, got {type(model).__name__}"
        )
    check_export(
        onnx_path,
        model.config,
        opset=opset,
        size=size,
        verify=verify,
        verify_sizes=verify_sizes,
        max_pixels=max_pixels,
    )
    multiple = model.config.pad_multiple
    onnx_path = Path(onnx_path)
    style_path = style_model_path(onnx_path)
    try:
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(onnx_path.parent, exc) from None

    model = model.to("cpu", torch.float32).eval()
    encoder, decoder = _graph_modules(model)
    generator = torch.Generator().manual_seed(seed)
    style_side = model.config.style_size or size
    style_hw = (_round(style_side, multiple), _round(style_side * 3 // 4, multiple))
    content_hw = (_round(size * 3 // 4, multiple), _round(size, multiple))
    style = torch.rand(2, 3, *style_hw, generator=generator)
    style_mask = torch.zeros(2, *style_hw, dtype=torch.bool)
    style_mask[:, :, -(multiple // 2) :] = True  # trace the masked path: real images are padded
    with torch.no_grad():
        memory = encoder(style, style_mask)
    content = torch.rand(2, 3, *content_hw, generator=generator)
    content_mask = torch.zeros(2, *content_hw, dtype=torch.bool)
    content_mask[:, -(multiple // 2) :, :] = True

    metadata = {
        "role": "stylizer",
        "decoder_width": str(model.config.image_decoder_channels()[-1]),  # the pixel budget
        "style_model": style_path.name,
        "pad_multiple": str(multiple),
        "style_size": "" if model.config.style_size is None else str(model.config.style_size),
        "size": str(size),
        "config": json.dumps(model.config.to_dict()),
        "version": _version(),
    }
    from .student.memory import StyleMemory

    batch, tokens = "batch", "style_tokens"
    memory_names = StyleMemory.names(model.config)
    memory_axes = {"memory": {0: batch, 1: tokens}, "memory_pos": {0: batch, 1: tokens}}
    memory_axes["memory_mask"] = {0: batch, 1: tokens}
    memory_axes.update({name: {0: batch} for name in memory_names[3:]})
    _export_graph(
        encoder,
        (style, style_mask),
        style_path,
        opset,
        input_names=list(STYLE_INPUTS),
        output_names=list(memory_names),
        dynamic_axes={
            "style": {0: batch, 2: "style_height", 3: "style_width"},
            "style_mask": {0: batch, 1: "style_height", 2: "style_width"},
            **memory_axes,
        },
        metadata={**metadata, "role": "style_encoder"},
    )
    _export_graph(
        decoder,
        (content, content_mask, *memory),
        onnx_path,
        opset,
        input_names=[*CONTENT_INPUTS, *memory_names],
        output_names=["image"],
        dynamic_axes={
            "content": {0: batch, 2: "height", 3: "width"},
            "content_mask": {0: batch, 1: "height", 2: "width"},
            **memory_axes,
            "image": {0: batch, 2: "height", 3: "width"},
        },
        metadata=metadata,
    )
    report = ExportReport(onnx_path=onnx_path, style_path=style_path, opset=opset)
    sizes = verify_sizes or _default_verify_sizes(size, multiple)
    if int8:
        report.int8_paths = quantize_int8(onnx_path)
    if verify:
        paths = [onnx_path] + ([report.int8_paths[0]] if report.int8_paths else [])
        found = verify_export(model, paths, sizes, seed=seed)
        report.checks = found[0]
        report.int8_checks = found[1] if len(found) > 1 else []
    report.seconds = time.perf_counter() - start
    if verify and not report.faithful:
        raise StyledistillError(
            f"{onnx_path}: onnxruntime differs from PyTorch by more than {FP32_TOLERANCE:g} on "
            f"{report.outlier_fraction:.1e} of the output values (max {report.max_abs_diff:.2e}, "
            f"allowed {report.allowed_fraction:.1e} at the strictest size); the export is not "
            "faithful"
        )
    return report


def check_export(
    onnx_path: str | os.PathLike,
    config: Any,
    *,
    opset: int = DEFAULT_OPSET,
    size: int = 512,
    verify: bool = True,
    verify_sizes: list[tuple[int, int]] | None = None,
    max_pixels: int | None = None,
) -> None:
    """Refuse, in one line and before any work, an export that cannot succeed.

    ``config``: the model's STTRConfig (the CLI reads it from config.json before the
    weights load). Checks the opset, the size, the ``.onnx`` suffix and the pixel
    budget of the trace and of the verification runs (:mod:`styledistill.budget`).
    """
    if not 14 <= opset <= 20:
        raise ConfigError(
            f"--opset {opset}: choose 14..20 (attention needs 14; the TorchScript exporter stops at 20)"
        )
    multiple = config.pad_multiple
    if size < multiple:
        raise ConfigError(f"--size {size}: must be at least the pad multiple {multiple}")
    if Path(onnx_path).suffix != ".onnx":
        raise ConfigError(f"{onnx_path}: the output file must end in .onnx")
    per_pixel = student_bytes_per_pixel(config.image_decoder_channels()[-1])
    content_hw = (_round(size * 3 // 4, multiple), _round(size, multiple))
    need = per_pixel * 2 * content_hw[0] * content_hw[1]  # the trace: a batch of 2
    largest = (2, *content_hw)
    if verify:
        style_side = config.style_size or size
        style_tokens = (style_side // config.style_stride) ** 2
        sizes = verify_sizes or _default_verify_sizes(size, multiple)
        for index, (height, width) in enumerate(sizes):
            batch = 1 + index % 2
            padded = working_shape(height, width, None, multiple)
            tokens = (padded[0] // config.content_stride) * (padded[1] // config.content_stride)
            run = per_pixel * batch * padded[0] * padded[1] * 2 + attention_bytes(
                batch, config.num_heads, tokens, tokens + style_tokens
            )  # PyTorch and onnxruntime on the same inputs
            if run > need:
                need, largest = run, (batch, *padded)
    shape = largest if largest[0] > 1 else largest[1:]
    check_memory("exporting", shape, need, max_pixels=max_pixels)


def _round(value: int, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _default_verify_sizes(size: int, multiple: int) -> list[tuple[int, int]]:
    """Square at ``size``, a landscape multiple of 32, and an odd portrait size."""
    return [
        (_round(size, multiple), _round(size, multiple)),
        (_round(size // 2, multiple), _round(size * 3 // 4, multiple)),
        (max(multiple + 1, size * 5 // 8 + 7) | 1, max(multiple + 1, size * 3 // 8 + 3) | 1),
    ]


def _version() -> str:
    from . import __version__

    return __version__


def _graph_modules(model):
    """The two exportable halves of ``model`` as modules (torch is imported lazily here)."""
    from torch import nn

    from .student.memory import StyleMemory

    class StyleGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, style, style_mask):
            return self.model.encode_style(style, style_mask).tensors()

    class ContentGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, content, content_mask, *memory):
            style = StyleMemory.from_tensors(self.model.config, memory)
            return self.model.decode(content, style, content_mask)

    # eval() matters: the exporter restores each wrapper's mode onto the model afterwards.
    return StyleGraph().eval(), ContentGraph().eval()


def _export_graph(
    module,
    args: tuple,
    path: Path,
    opset: int,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    metadata: dict[str, str],
) -> None:
    """torch.onnx.export (TorchScript exporter: reliable dynamic H/W), metadata, atomic write."""
    import warnings

    import onnx
    import torch

    try:
        with atomic_path(path) as tmp:
            with warnings.catch_warnings():
                # Tracer notes about Python-side shape checks in the model; none affect the graph.
                warnings.simplefilter("ignore")
                with torch.no_grad():
                    torch.onnx.export(
                        module,
                        args,
                        str(tmp),
                        dynamo=False,
                        opset_version=opset,
                        input_names=input_names,
                        output_names=output_names,
                        dynamic_axes=dynamic_axes,
                        do_constant_folding=True,
                    )
            proto = onnx.load(str(tmp))
            narrow_gather_indices(proto.graph)
            for key, value in metadata.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = META_PREFIX + key, value
            proto.producer_name = "styledistill"
            proto.producer_version = _version()
            onnx.checker.check_model(proto)
            onnx.save(proto, str(tmp))
    except OSError as exc:  # full disk, read-only folder: say which file, in one line
        raise _write_error(path, exc) from None


#: Ops whose input ``[op, position]`` is an index tensor that may be int32 or int64.
_INDEX_INPUTS = {("Gather", 1), ("GatherElements", 1), ("ScatterElements", 1)}
#: Ops that pass their first input's values on unchanged (only its shape changes).
_SHAPE_ONLY = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


def narrow_gather_indices(graph) -> int:
    """Make int64 casts that only feed gathers' and scatters' indices int32, in place.

    PyTorch indexes with int64, so a pixel's histogram bin is cast to int64 before the
    gathers and the scatter that read it. onnxruntime's float -> int64 cast is about 5x
    slower than float -> int32 (0.24 against 0.05 ms on a 384 px image) and the gathers
    read half the bytes with int32 indices; both index types are valid ONNX. A cast is
    changed only when every path from it, through shape-only ops, ends in an index input
    (or a Shape). Returns how many were changed."""
    from onnx import TensorProto

    consumers: dict[str, list[tuple[str, int, Any]]] = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node.op_type, position, node))
    outputs = {output.name for output in graph.output}
    changed = 0
    retyped: set[str] = set()
    for node in graph.node:
        target = next((a for a in node.attribute if a.name == "to"), None)
        if node.op_type != "Cast" or target is None or target.i != TensorProto.INT64:
            continue
        pending, reached, only_indices = [node.output[0]], [], True
        while pending and only_indices:
            name = pending.pop()
            reached.append(name)
            uses = consumers.get(name, [])
            only_indices = bool(uses) and name not in outputs
            for op, position, user in uses:
                if (op, position) in _INDEX_INPUTS or op == "Shape":
                    continue
                if op in _SHAPE_ONLY and position == 0:
                    pending.append(user.output[0])
                else:
                    only_indices = False
        if only_indices:
            target.i = TensorProto.INT32
            retyped.update(reached)
            changed += 1
    if retyped:  # drop the int64 types the exporter recorded for the retyped tensors
        kept = [info for info in graph.value_info if info.name not in retyped]
        del graph.value_info[:]
        graph.value_info.extend(kept)
    return changed


def _write_error(path: Path, exc: OSError) -> StyledistillError:
    """A one-line 'cannot write FILE: reason' for a failed export write (disk full, read-only)."""
    return StyledistillError(f"cannot write {path}: {exc.strerror or exc}")


def quantize_int8(onnx_path: str | os.PathLike) -> tuple[Path, Path]:
    """Dynamic int8 quantization (weights int8, activations quantized on the fly).

    Quantizes MatMul/Gemm (attention and feed-forward projections, the bulk of the
    transformer's weights); convolutions stay fp32, since onnxruntime's dynamic
    ConvInteger is slower than fp32 Conv on CPUs and hurts image quality most.
    Returns the int8 content and style model paths.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx_path = Path(onnx_path)
    pairs = [
        (onnx_path, int8_path(onnx_path)),
        (style_model_path(onnx_path), style_model_path(int8_path(onnx_path))),
    ]
    for source, target in pairs:
        try:
            with atomic_path(target, suffix=".onnx") as tmp:
                root = logging.getLogger()
                level = root.level
                # its "consider pre-processing" advice is for static quantization
                root.setLevel(logging.ERROR)
                try:
                    quantize_dynamic(
                        str(source),
                        str(tmp),
                        op_types_to_quantize=["MatMul", "Gemm"],
                        weight_type=QuantType.QInt8,
                    )
                finally:
                    root.setLevel(level)
                _retarget_style_model(tmp, style_model_path(int8_path(onnx_path)).name)
        except OSError as exc:
            raise _write_error(target, exc) from None
    return pairs[0][1], pairs[1][1]


def _retarget_style_model(path: Path, style_name: str) -> None:
    import onnx

    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key == META_PREFIX + "style_model":
            entry.value = style_name
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_PREFIX + "quantization", "int8-dynamic"
    onnx.save(proto, str(path))


def verify_export(
    model,
    onnx_paths: str | os.PathLike | list[str | os.PathLike],
    sizes: list[tuple[int, int]],
    *,
    seed: int = 0,
) -> list[list[SizeCheck]]:
    """onnxruntime vs PyTorch on identical padded inputs at each content size.

    Returns one list of :class:`SizeCheck` per path (PyTorch runs once per size).
    Odd sizes are padded by :class:`OnnxStylizer`'s own padding code, so the masked
    path users hit is the one checked. The batch alternates 1 and 2. Inputs are smooth
    random images, as photos are.
    """
    import torch
    import torch.nn.functional as F

    def image_like(*shape: int) -> np.ndarray:
        coarse = torch.from_numpy(
            rng.random((*shape[:2], -(-shape[2] // 8), -(-shape[3] // 8)), dtype=np.float32)
        )
        return F.interpolate(coarse, size=shape[2:], mode="bilinear").numpy()

    paths = onnx_paths if isinstance(onnx_paths, list) else [onnx_paths]
    runners = [OnnxStylizer(path) for path in paths]
    multiple = runners[0].pad_multiple
    rng = np.random.default_rng(seed)
    style_side = model.config.style_size or max(max(s) for s in sizes)
    checks: list[list[SizeCheck]] = [[] for _ in runners]
    for index, (height, width) in enumerate(sizes):
        batch = 1 + index % 2
        # the style's shape changes too (landscape, square, portrait; the export traced a
        # landscape one), so a size the graph kept from the trace cannot pass unseen
        style_hw = [
            (style_side, max(multiple, style_side * 2 // 3 + 5)),
            (style_side, style_side),
            (max(multiple, style_side // 2), style_side),
        ][index % 3]
        style_padded, style_mask = pad_batch(image_like(1, 3, *style_hw), multiple)
        content = image_like(batch, 3, height, width)
        content_padded, content_mask = pad_batch(content, multiple)
        with torch.no_grad():
            memory = model.encode_style(
                torch.from_numpy(style_padded), torch.from_numpy(style_mask)
            )
            image = model.decode(
                torch.from_numpy(content_padded), memory, torch.from_numpy(content_mask)
            ).numpy()
        for runner, found in zip(runners, checks):
            code = runner.encode_padded_style(style_padded, style_mask)
            difference = np.abs(runner.run_padded(content_padded, content_mask, code) - image)
            found.append(
                SizeCheck(
                    content_size=(height, width),
                    padded_size=tuple(content_padded.shape[-2:]),
                    style_size=style_hw,
                    batch=batch,
                    max_abs_diff=float(difference.max()),
                    memory_max_abs_diff=float(np.abs(code.memory - memory.tokens.numpy()).max()),
                    outlier_fraction=float((difference > FP32_TOLERANCE).mean()),
                    allowed_fraction=MAX_OUTLIER_FRACTION,
                )
            )
    return checks
