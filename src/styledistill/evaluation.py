"""``evaluate``: stylize every content x style pair with the teacher and/or the student,
score them with the StyleID protocol (docs/architecture.md) and write ``metrics.json`` + ``report.html``.

The protocol, as StyleID's evaluation code runs it (20 MS-COCO contents x 40 WikiArt
styles = 800 pairs, everything at 512 px):

* FID between the stylized images and the style images *duplicated once per pair*, on
  the 2048-d features of ArtFID's art-finetuned Inception; LPIPS (AlexNet v0.1)
  between stylized and content; ArtFID = (1 + LPIPS) * (1 + FID). StyleID's script
  asks for FID∞ but with 800 < 5000 images its subsets are all the full set, so the
  number it reports is the plain FID; FID∞ proper is available with ``fid_infinity``.
* CFSD: VGG19 relu3_1 self-similarity KL between content and stylized.
* Histogram loss: HistoGAN RGB-uv (64 bins, 256 px) Hellinger distance to the style.

Beyond the paper: student-vs-teacher fidelity (PSNR, SSIM, LPIPS), seconds per pair of
each method measured in the same run, and a per-style breakdown. A metric whose
weights are missing is skipped with its reason recorded; the weight-free ones always run.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError
from .images import (
    ImageError,
    center_crop_resize,
    image_grid,
    list_images,
    load_image,
    require_finite,
    save_image,
)
from .plumbing import atomic_path, jsonable
from .runtime import progress_bar, resolve_device, synchronize

__all__ = [
    "PAPER_REFERENCE",
    "EvaluationSettings",
    "MetricSuite",
    "evaluate",
]

#: The StyleID row of the paper's table (quoted, to be re-checked).
PAPER_REFERENCE = {
    "StyleID (paper)": {"artfid": 28.80, "fid": 18.13, "lpips": 0.506, "cfsd": 0.228}
}


@dataclass
class EvaluationSettings:
    """Everything ``evaluate`` needs; the CLI fills it from flags.

    ``teacher`` is a name (``texture``/``styleid``) or a ready teacher object;
    ``checkpoint`` a student folder or a ready :class:`~styledistill.student.Stylizer`.
    ``size`` is the stylization size (contents and styles are centre-cropped to it);
    ``metric_size`` the short side FID/LPIPS see (ArtFID resizes to 512).
    """

    contents: Path
    styles: Path
    out: Path
    checkpoint: Any = None
    teacher: Any = None
    teacher_model: str | None = None
    teacher_options: dict[str, Any] = field(default_factory=dict)
    weights_dir: Path | None = None
    weight_paths: dict[str, Path] = field(default_factory=dict)
    download_weights: bool = False
    search_hub_cache: bool = True
    size: int = 512
    metric_size: int = 512
    limit_contents: int | None = None
    limit_styles: int | None = None
    device: str | torch.device | None = None
    batch_size: int = 8
    fid_infinity: bool = False
    grid_rows: int = 8
    title: str | None = None
    progress: bool = True
    #: Largest working batch to attempt, in pixels (``batch_size x size x size``); None:
    #: what the device's free memory holds (styledistill.budget), held images included.
    max_pixels: int | None = None


# --------------------------------------------------------------------------- metric networks


class MetricSuite:
    """The metric networks whose weights were found, plus why the others were skipped."""

    def __init__(
        self,
        resolver: Any,
        device: torch.device,
        *,
        metric_size: int = 512,
        fid_infinity: bool = False,
    ) -> None:
        from .metrics.artfid import MIN_INCEPTION_SIDE, load_art_inception
        from .metrics.cfsd import load_vgg19_relu31
        from .metrics.lpips import load_lpips

        self.device = device
        self.metric_size = metric_size
        self.want_fid_infinity = fid_infinity
        self.skipped: dict[str, str] = {}
        self.weights: dict[str, dict[str, Any]] = {}
        found: dict[str, Path] = {}
        for key in ("art_inception", "alexnet", "lpips_alex", "vgg19"):
            path, reason = resolver.find(key)
            if path is None:
                self.weights[key] = {"missing": reason}
            else:
                found[key] = path
                self.weights[key] = resolver.describe(key, path)

        self.inception = None
        if "art_inception" in found and metric_size >= MIN_INCEPTION_SIDE:
            self.inception = load_art_inception(found["art_inception"], device=device)
        elif "art_inception" in found:
            self.skipped["fid"] = (
                f"metric size {metric_size} px is below Inception-v3's minimum of {MIN_INCEPTION_SIDE}"
            )
        else:
            self.skipped["fid"] = self.weights["art_inception"]["missing"]
        self.lpips = None
        if "alexnet" in found and "lpips_alex" in found:
            self.lpips = load_lpips(found["alexnet"], found["lpips_alex"], device=device)
        else:
            self.skipped["lpips"] = "; ".join(
                self.weights[k]["missing"] for k in ("alexnet", "lpips_alex") if k not in found
            )
        self.vgg = load_vgg19_relu31(found["vgg19"], device=device) if "vgg19" in found else None
        if self.vgg is None:
            self.skipped["cfsd"] = self.weights["vgg19"]["missing"]
        if self.inception is None or self.lpips is None:
            self.skipped["artfid"] = (
                "needs both FID and LPIPS ("
                + ", ".join(k for k in ("fid", "lpips") if k in self.skipped)
                + " skipped)"
            )
        if fid_infinity and self.inception is None:
            self.skipped["fid_infinity"] = "needs FID (skipped)"

    def _to_metric_size(self, images: torch.Tensor) -> torch.Tensor:
        from .metrics.artfid import resize_short_side

        return torch.stack([resize_short_side(image, self.metric_size) for image in images])

    @torch.inference_mode()
    def lpips_distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
        if self.lpips is None:
            return None
        a, b = self._to_metric_size(a), self._to_metric_size(b)
        return self.lpips(a.to(self.device), b.to(self.device)).double().cpu()

    @torch.inference_mode()
    def inception_features(self, images: torch.Tensor) -> np.ndarray | None:
        if self.inception is None:
            return None
        from .metrics.artfid import inception_features

        return inception_features(self.inception, images, resize=self.metric_size)

    @torch.inference_mode()
    def cfsd(self, content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor | None:
        if self.vgg is None:
            return None
        from .metrics.cfsd import cfsd_pair

        return torch.cat(
            [cfsd_pair(self.vgg, c[None], s[None]).cpu() for c, s in zip(content, stylized)]
        )


# --------------------------------------------------------------------------- methods


@dataclass
class _Method:
    key: str  # "teacher" | "student"
    label: str
    description: str
    info: dict[str, Any]
    prepare: Callable[[torch.Tensor], Any]
    run: Callable[[torch.Tensor, Any], torch.Tensor]
    seconds: float = 0.0
    pairs: int = 0


def _build_teacher(settings: EvaluationSettings, device: torch.device) -> Any:
    teacher = settings.teacher
    if not isinstance(teacher, str):
        return teacher
    from .teachers import create_teacher, get_teacher_spec

    options = dict(settings.teacher_options)
    options.setdefault("size", settings.size)
    if settings.max_pixels is not None:
        options.setdefault("max_pixels", settings.max_pixels)
    if get_teacher_spec(teacher).needs_weights:
        options.setdefault("progress", False)  # the evaluation's bar is enough
        options.setdefault("batch_size", settings.batch_size)
    return create_teacher(teacher, model=settings.teacher_model or None, device=device, **options)


def _no_weights(name: str) -> str:
    """ " (no weights)" for a registered weight-free teacher, else nothing."""
    from .teachers import get_teacher_spec, list_teachers

    if name in list_teachers() and not get_teacher_spec(name).needs_weights:
        return " (no weights)"
    return ""


def _teacher_method(teacher: Any, batch_size: int) -> _Method:
    if int(teacher.size) <= 0:
        raise ConfigError("teacher size must be positive")
    name = getattr(teacher, "name", type(teacher).__name__)
    info = {
        "name": name,
        "config": jsonable(teacher.config()),
        "model_info": jsonable(teacher.model_info()),
    }
    model_id = info["model_info"].get("model_id") if isinstance(info["model_info"], dict) else None
    description = f"{name} teacher" + (f" on {model_id}" if model_id else _no_weights(name))

    def run(contents: torch.Tensor, prepared: Any) -> torch.Tensor:
        return teacher.stylize(list(contents), [prepared] * len(contents), batch_size=batch_size)

    return _Method("teacher", f"teacher ({name})", description, info, teacher.prepare_style, run)


def _student_method(
    checkpoint: Any,
    device: torch.device,
    size: int,
    batch_size: int,
    max_pixels: int | None = None,
) -> _Method:
    from .student import Stylizer

    if isinstance(checkpoint, (str, os.PathLike)):
        stylizer = Stylizer.from_pretrained(
            checkpoint, device=device, size=size, max_pixels=max_pixels
        )
        source = str(checkpoint)
    else:
        stylizer, source = checkpoint, "in-memory model"
    model = getattr(stylizer, "model", None)
    config = getattr(model, "config", None)
    config_dict = config.to_dict() if hasattr(config, "to_dict") else {}
    params = sum(p.numel() for p in model.parameters()) if model is not None else None
    info = {"checkpoint": source, "config": jsonable(config_dict), "parameters": params}
    preset = config_dict.get("name", "STTR")
    description = f"STTR student '{preset}' from {source}" + (
        f", {params / 1e6:.1f}M parameters" if params else ""
    )

    def run(contents: torch.Tensor, code: Any) -> torch.Tensor:
        outputs = []
        for start in range(0, len(contents), batch_size):
            chunk = contents[start : start + batch_size]
            outputs.append(stylizer.stylize_tensor(chunk.to(device), code).float().cpu())
        return torch.cat(outputs).clamp(0.0, 1.0)

    return _Method("student", f"student ({preset})", description, info, stylizer.encode_style, run)


# --------------------------------------------------------------------------- main entry


def evaluate(settings: EvaluationSettings) -> dict[str, Any]:
    """Run the whole evaluation; returns what was written to ``metrics.json``."""
    from .metrics.fidelity import mean_finite, psnr, ssim
    from .metrics.histogram import HISTOGRAM_SIZE, histogram_distance, rgb_uv_histogram
    from .metrics.weights import WeightsResolver

    if settings.checkpoint is None and settings.teacher is None:
        raise ConfigError("nothing to evaluate: give --checkpoint (student) and/or --teacher")
    if settings.size < 32:
        raise ConfigError(f"--size {settings.size}: must be at least 32")
    if settings.batch_size < 1:
        raise ConfigError(f"--batch-size {settings.batch_size}: must be at least 1")
    device = resolve_device(settings.device)
    out = Path(settings.out)
    # A missing or unreadable checkpoint, or work that cannot fit, is reported before any
    # image is read.
    check_evaluation_memory(settings)
    student = None
    if settings.checkpoint is not None:
        student = _student_method(
            settings.checkpoint, device, settings.size, settings.batch_size, settings.max_pixels
        )
    skipped_inputs: list[dict[str, str]] = []
    contents, content_names = _load_folder(
        settings.contents, "contents", settings.size, settings.limit_contents, skipped_inputs
    )
    styles, style_names = _load_folder(
        settings.styles, "styles", settings.size, settings.limit_styles, skipped_inputs
    )
    resolver = WeightsResolver(
        settings.weights_dir,
        settings.weight_paths,
        download=settings.download_weights,
        search_hub_cache=settings.search_hub_cache,
    )
    suite = MetricSuite(
        resolver, device, metric_size=settings.metric_size, fid_infinity=settings.fid_infinity
    )

    methods: list[_Method] = []
    if settings.teacher is not None:
        methods.append(_teacher_method(_build_teacher(settings, device), settings.batch_size))
    if student is not None:
        methods.append(student)
        _warm_up(student, contents[:1], styles[0], device)

    n_pairs = len(contents) * len(styles)
    per_pair: list[dict[str, Any]] = []
    features: dict[str, list[np.ndarray]] = {m.key: [] for m in methods}
    style_features: list[np.ndarray] = []
    samples: list[dict[str, torch.Tensor]] = []
    sample_every = max(1, len(styles) // max(1, settings.grid_rows))
    bar = progress_bar(
        enabled=settings.progress, total=n_pairs * len(methods), desc="evaluate", unit="pair"
    )
    for s_index, (style, style_name) in enumerate(zip(styles, style_names)):
        outputs: dict[str, torch.Tensor] = {}
        for method in methods:
            synchronize(device)
            start = time.perf_counter()
            prepared = method.prepare(style)
            stylized = method.run(contents, prepared)
            require_finite(stylized, f"the {method.label} output")  # never saved as black
            synchronize(device)
            method.seconds += time.perf_counter() - start
            method.pairs += len(contents)
            if stylized.shape != contents.shape:
                raise ConfigError(
                    f"{method.label} returned images of shape {tuple(stylized.shape)} for contents "
                    f"{tuple(contents.shape)}; evaluate needs outputs at --size {settings.size}"
                )
            stylized = stylized.mul(255).round().div(255)  # what the saved PNG holds
            outputs[method.key] = stylized
            for c_index, image in enumerate(stylized):
                save_image(
                    image,
                    out / "images" / method.key / f"{content_names[c_index]}__{style_name}.png",
                )
            bar.update(len(contents))
        # HistoGAN shrinks images larger than 256 px to 256x256 and keeps smaller ones
        hist_size = HISTOGRAM_SIZE if max(style.shape[-2:]) > HISTOGRAM_SIZE else None
        style_histogram = rgb_uv_histogram(style.unsqueeze(0), size=hist_size)
        style_feature = suite.inception_features(style.unsqueeze(0))
        if style_feature is not None:
            style_features.extend([style_feature[0]] * len(contents))
        rows = [{"content": content_names[c], "style": style_name} for c in range(len(contents))]
        for method in methods:
            stylized = outputs[method.key]
            hist = histogram_distance(
                rgb_uv_histogram(stylized, size=hist_size), style_histogram
            ).double()
            lpips = suite.lpips_distance(stylized, contents)
            cfsd = suite.cfsd(contents, stylized)
            feats = suite.inception_features(stylized)
            if feats is not None:
                features[method.key].append(feats)
            for c, row in enumerate(rows):
                row[method.key] = {
                    "histogram": float(hist[c]),
                    "lpips": None if lpips is None else float(lpips[c]),
                    "cfsd": None if cfsd is None else float(cfsd[c]),
                }
        if "teacher" in outputs and "student" in outputs:
            student, teacher = outputs["student"], outputs["teacher"]
            p_values, s_values = psnr(student, teacher), ssim(student, teacher)
            l_values = suite.lpips_distance(student, teacher)
            for c, row in enumerate(rows):
                row["fidelity"] = {
                    "psnr": float(p_values[c]),
                    "ssim": float(s_values[c]),
                    "lpips": None if l_values is None else float(l_values[c]),
                }
        per_pair.extend(rows)
        if s_index % sample_every == 0 and len(samples) < settings.grid_rows:
            c = s_index % len(contents)
            samples.append(
                {
                    "content": contents[c],
                    "style": style,
                    **{k: v[c] for k, v in outputs.items()},
                    "label": f"{content_names[c]} / {style_name}",
                }
            )
    bar.close()

    results = _summarize(
        settings,
        methods,
        suite,
        per_pair,
        features,
        style_features,
        content_names,
        style_names,
        device,
    )
    results["skipped_inputs"] = skipped_inputs
    results["fidelity"] = _mean_of(per_pair, "fidelity", ("psnr", "ssim", "lpips"), mean_finite)
    if results["fidelity"] is None:
        results["skipped"]["fidelity"] = (
            "needs both a teacher and a student (--teacher and --checkpoint)"
        )
    _write_outputs(out, results, per_pair, samples, methods)
    return results


# --------------------------------------------------------------------------- helpers


def check_evaluation_memory(settings: EvaluationSettings, images: int | None = None) -> None:
    """Refuse (one line) an evaluation whose tensors cannot fit, before images are read.

    The student (from its config.json, before its weights load) and the teacher at
    ``size`` with ``batch_size``, and the ``images`` contents and styles held in memory
    at ``size`` (None: counted from the folders) while the memory is checked.
    """
    from .budget import IMAGE_BYTES_PER_PIXEL, check_memory, student_bytes_per_pixel
    from .teachers.registry import check_teacher_memory

    size, batch, device = settings.size, settings.batch_size, resolve_device(settings.device)
    checkpoint = settings.checkpoint
    if isinstance(checkpoint, (str, os.PathLike)):
        from .student import STTR

        _, config = STTR.read_config(checkpoint)
        multiple = config.pad_multiple
        padded = size + (-size) % multiple
        shape = (batch, padded, padded) if batch > 1 else (padded, padded)
        need = student_bytes_per_pixel(config.image_decoder_channels()[-1]) * batch * padded**2
        check_memory("the student", shape, need, max_pixels=settings.max_pixels, device=device)
    if isinstance(settings.teacher, str):
        options = settings.teacher_options
        check_teacher_memory(
            settings.teacher,
            int(options.get("size", size)),
            int(options.get("batch_size", batch)),
            max_pixels=settings.max_pixels,
            device=device,
        )
    if settings.max_pixels is None:  # by hand, the caller vouches for what is held too
        if images is None:
            images = sum(
                min(len(list_images(folder)), limit or 2**62)
                for folder, limit in (
                    (settings.contents, settings.limit_contents),
                    (settings.styles, settings.limit_styles),
                )
                if Path(folder).is_dir()
            )
        check_memory(
            f"holding {images} contents and styles",
            (images, size, size),
            IMAGE_BYTES_PER_PIXEL * images * size * size,
        )


def _safe_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(relative.parts)) or "image"


def _load_folder(
    folder: Path, what: str, size: int, limit: int | None, skipped: list[dict[str, str]]
) -> tuple[torch.Tensor, list[str]]:
    """The first ``limit`` readable images, centre-cropped; unreadable ones go to ``skipped``."""
    folder = Path(folder)
    paths = list_images(folder)
    if not paths:
        raise ConfigError(f"--{what} {folder}: no images found (png, jpg, webp, ...)")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit for {what}: must be at least 1, got {limit}")
    images, kept = [], []
    for path in paths:
        if limit is not None and len(kept) >= limit:
            break
        try:
            images.append(center_crop_resize(load_image(path), size))
        except ImageError as exc:
            # One bad file (0 bytes, text named .png) should not sink a long run.
            print(f"warning: --{what}: skipped {exc}", file=sys.stderr)
            skipped.append({"path": str(path), "reason": exc.reason})
            continue
        kept.append(path)
    if not kept:
        raise ConfigError(
            f"--{what} {folder}: none of the {len(paths)} image file(s) could be read "
            f"(first: {skipped[0]['path']}: {skipped[0]['reason']})"
        )
    names = []
    for path in kept:
        name = _safe_name(path, folder)
        while name in names:
            name += "_"
        names.append(name)
    return torch.stack(images), names


def _warm_up(
    method: _Method, contents: torch.Tensor, style: torch.Tensor, device: torch.device
) -> None:
    """One untimed pass so lazy init / cuDNN autotuning do not count as stylization time."""
    with torch.inference_mode():
        method.run(contents, method.prepare(style))
    synchronize(device)


def _mean_of(
    rows: Iterable[Mapping[str, Any]],
    group: str,
    keys: Iterable[str],
    mean: Callable[[torch.Tensor], float],
) -> dict[str, float | None] | None:
    rows = [r[group] for r in rows if r.get(group)]
    if not rows:
        return None
    result: dict[str, float | None] = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        result[key] = mean(torch.tensor(values, dtype=torch.float64)) if values else None
    return result


def _plain_mean(values: torch.Tensor) -> float:
    return float(values.mean())


def _summarize(
    settings: EvaluationSettings,
    methods: list[_Method],
    suite: MetricSuite,
    per_pair: list[dict[str, Any]],
    features: dict[str, list[np.ndarray]],
    style_features: list[np.ndarray],
    content_names: list[str],
    style_names: list[str],
    device: torch.device,
) -> dict[str, Any]:
    from . import __version__
    from .benchmark import machine_info
    from .metrics.artfid import artfid_score
    from .metrics.fid import fid_from_features, fid_infinity
    from .metrics.fidelity import mean_finite

    skipped = dict(suite.skipped)
    metrics: dict[str, dict[str, Any]] = {}
    for method in methods:
        entry = _mean_of(per_pair, method.key, ("lpips", "cfsd", "histogram"), _plain_mean) or {}
        entry = {"fid": None, "artfid": None, **entry}
        if features[method.key] and len(per_pair) >= 2:
            stylized = np.concatenate(features[method.key])
            reference = np.stack(style_features)
            entry["fid"] = fid_from_features(stylized, reference)
            if entry.get("lpips") is not None:
                entry["artfid"] = artfid_score(entry["fid"], entry["lpips"])
            if settings.fid_infinity:
                if len(per_pair) >= 10:
                    extrapolated = fid_infinity(stylized, reference)
                    entry["fid_infinity"] = extrapolated["fid_infinity"]
                    entry["fid_infinity_fit"] = extrapolated
                else:
                    skipped["fid_infinity"] = f"needs at least 10 pairs, have {len(per_pair)}"
        elif suite.inception is not None:
            skipped["fid"] = f"needs at least 2 pairs, have {len(per_pair)}"
        metrics[method.key] = entry
    if "fid" in skipped and "artfid" not in skipped:
        skipped["artfid"] = "needs FID (skipped)"

    per_style: dict[str, dict[str, Any]] = {}
    for style_name in style_names:
        rows = [r for r in per_pair if r["style"] == style_name]
        entry: dict[str, Any] = {}
        for method in methods:
            entry[method.key] = _mean_of(
                rows, method.key, ("lpips", "cfsd", "histogram"), _plain_mean
            )
        entry["fidelity"] = _mean_of(rows, "fidelity", ("psnr", "ssim", "lpips"), mean_finite)
        per_style[style_name] = entry

    timing: dict[str, Any] = {}
    for method in methods:
        per = method.seconds / max(1, method.pairs)
        timing[method.key] = {
            "seconds_total": method.seconds,
            "pairs": method.pairs,
            "seconds_per_pair": per,
            "pairs_per_second": (1.0 / per) if per > 0 else None,
            "includes": "style preparation + stylization, excluding image saving and metrics",
        }
    if "teacher" in timing and "student" in timing and timing["student"]["seconds_per_pair"] > 0:
        timing["teacher_over_student"] = (
            timing["teacher"]["seconds_per_pair"] / timing["student"]["seconds_per_pair"]
        )

    return {
        "title": settings.title or "styledistill evaluation",
        "styledistill_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "protocol": {
            "name": "StyleID (Chung et al. 2024) evaluation",
            "size": settings.size,
            "metric_size": settings.metric_size,
            "n_contents": len(content_names),
            "n_styles": len(style_names),
            "n_pairs": len(per_pair),
            "contents": str(settings.contents),
            "styles": str(settings.styles),
            "fid_reference": "style images duplicated once per pair (StyleID's sty_eval)",
        },
        "machine": machine_info(device),
        "methods": {
            m.key: {"label": m.label, "description": m.description, **m.info} for m in methods
        },
        "metrics": metrics,
        "timing": timing,
        "per_style": per_style,
        "skipped": skipped,
        "weights": suite.weights,
        "reference": PAPER_REFERENCE,
    }


def _write_outputs(
    out: Path,
    results: dict[str, Any],
    per_pair: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    methods: list[_Method],
) -> None:
    from .report import write_report

    out.mkdir(parents=True, exist_ok=True)
    _atomic_text(
        out / "metrics.json", json.dumps(jsonable(results), indent=2, allow_nan=False) + "\n"
    )
    _atomic_text(
        out / "pairs.jsonl",
        "".join(json.dumps(jsonable(r), allow_nan=False) + "\n" for r in per_pair),
    )
    grids = []
    if samples:
        keys = [m.key for m in methods]
        columns = ["content", "style", *[m.label for m in methods]]
        rows = [[s["content"], s["style"], *[s[k] for k in keys]] for s in samples]
        grid = image_grid(
            rows,
            column_labels=columns,
            row_labels=None,
            captions=[[s["label"]] for s in samples],
            cell_size=192,
        )
        grid.save(out / "grid.png")
        grids.append(("content | style | " + " | ".join(m.label for m in methods), grid))
    results_with_files = dict(results)
    results_with_files["files"] = {
        "metrics": "metrics.json",
        "pairs": "pairs.jsonl",
        "grid": "grid.png",
        **{f"images_{m.key}": f"images/{m.key}/" for m in methods},
    }
    write_report(out / "report.html", results_with_files, grids)


def _atomic_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
