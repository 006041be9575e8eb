"""``bench``: latency, throughput and peak memory of student presets and a teacher, side by side.

Both are measured in one run on one machine, so the teacher/student ratio is a fair
comparison (targets: docs/architecture.md, Speed targets). Latency is one content + one style -> one stylized image
(style encoding included), timed ``repeats`` times after ``warmup`` untimed runs and
reported as median with quartiles. Throughput stylizes a batch of contents with one
style. Peak memory is ``torch.cuda.max_memory_allocated`` on GPUs and the process's
peak resident set size (``VmHWM``, reset before each measurement) on CPUs.

Speed does not depend on the weights' values, so student presets are timed with
random weights unless a trained checkpoint is given; the texture teacher has no
weights; the StyleID teacher needs its Stable Diffusion model.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .plumbing import atomic_path
from .runtime import progress_bar, resolve_device, synchronize

__all__ = [
    "BenchSettings",
    "cpu_name",
    "format_table",
    "machine_info",
    "machine_line",
    "parse_int_list",
    "plot_latency",
    "run_benchmark",
    "time_calls",
    "write_bench",
]


@dataclass
class BenchSettings:
    """What to measure. ``teacher`` is ``texture``, ``styleid`` or None."""

    presets: list[str] = field(default_factory=lambda: ["sttr-small", "sttr-paper"])
    checkpoints: list[Path] = field(default_factory=list)
    preset_overrides: dict[str, Any] = field(default_factory=dict)
    teacher: str | None = "texture"
    teacher_model: str | None = None
    teacher_options: dict[str, Any] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=lambda: [256, 512, 1024])
    teacher_sizes: list[int] | None = None
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    teacher_batch_sizes: list[int] = field(default_factory=lambda: [1])
    device: str | torch.device | None = None
    half: bool = False
    repeats: int = 10
    warmup: int = 2
    teacher_repeats: int = 3
    teacher_warmup: int = 1
    seed: int = 0
    progress: bool = True


# --------------------------------------------------------------------------- machine


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what :mod:`platform` says."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(device: torch.device | str | None = None) -> dict[str, Any]:
    """The machine a number was measured on: CPU model, cores, GPU name, versions."""
    cpu = cpu_name()
    device = torch.device(device) if device is not None else torch.device("cpu")
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        info.update(
            device_name=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
        )
    else:
        info["device_name"] = f"{cpu} ({os.cpu_count()} cores, CPU)"
    return info


def machine_line(device: torch.device | str | None = None) -> str:
    """:func:`machine_info` as the one line a bench script prints before its numbers, with
    the load average: other work on a shared machine moves timings, so a number is only
    comparable with numbers printed under the same line."""
    info = machine_info(device)
    text = (
        f"{platform.node()}: {info['cpu']}, {info['cpu_cores']} logical cores, "
        f"torch {info['torch']} ({info['torch_threads']} threads)"
    )
    if "gpu_memory_gb" in info:
        text += f", GPU {info['device_name']}"
    if hasattr(os, "getloadavg"):
        text += ", load average {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())
    return text


# --------------------------------------------------------------------------- timing


def time_calls(
    fn: Callable[[], Any],
    repeats: int,
    *,
    warmup: int = 0,
    device: torch.device | str | None = None,
    budget_s: float | None = None,
    min_runs: int = 3,
) -> list[float]:
    """Seconds each of ``repeats`` calls of ``fn`` took, after ``warmup`` untimed calls.

    On a GPU the device is synchronized around every call, so the clock stops when the
    work does, not when it is queued. ``budget_s``: stop once that many seconds are spent,
    but never before ``min(min_runs, repeats)`` runs (a median needs several).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    least = min(min_runs, repeats)
    while len(times) < repeats:
        if budget_s is not None and sum(times) >= budget_s and len(times) >= least:
            break
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


# --------------------------------------------------------------------------- memory


class _PeakMemory:
    """Peak memory over a block: CUDA allocator peak, or the process's peak RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_memory_allocated" if device.type == "cuda" else "process_peak_rss"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:  # Linux: "5" resets VmHWM (peak RSS) to the current RSS
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.kind = "process_peak_rss"
        except OSError:
            self.kind = "process_peak_rss_since_start"

    def peak_mb(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        try:
            with open("/proc/self/status", encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        try:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        except (ImportError, OSError):
            return None


# --------------------------------------------------------------------------- models


@dataclass
class _Subject:
    """Something to time: ``make(size)`` returns ``fn(contents, style) -> images``."""

    name: str
    kind: str  # "student" | "teacher"
    make: Callable[[int], Callable[[torch.Tensor, torch.Tensor], Any]]
    info: dict[str, Any]
    sizes: list[int]
    batch_sizes: list[int]
    repeats: int
    warmup: int
    #: Where the subject allocates (the texture teacher runs on the CPU even in a GPU run).
    memory_device: torch.device | None = None


def _student_subjects(
    settings: BenchSettings, device: torch.device, dtype: torch.dtype
) -> list[_Subject]:
    from .student import STTR

    subjects = []
    models: list[tuple[str, Any, dict[str, Any]]] = []
    for preset in settings.presets:
        torch.manual_seed(settings.seed)
        model = STTR.from_preset(preset, **settings.preset_overrides)
        models.append((preset, model, {"preset": preset, "weights": "random (timing only)"}))
    for checkpoint in settings.checkpoints:
        model = STTR.from_pretrained(checkpoint)
        models.append((Path(checkpoint).name, model, {"checkpoint": str(checkpoint)}))
    for name, model, info in models:
        model = model.to(device, dtype).eval()
        info["parameters"] = sum(p.numel() for p in model.parameters())
        info["dtype"] = str(dtype).removeprefix("torch.")

        def make(size: int, model: Any = model) -> Callable[[torch.Tensor, torch.Tensor], Any]:
            def fn(contents: torch.Tensor, style: torch.Tensor) -> Any:
                with torch.inference_mode():
                    return model(contents.to(device, dtype), style.to(device, dtype))

            return fn

        subjects.append(
            _Subject(
                name,
                "student",
                make,
                info,
                list(settings.sizes),
                list(settings.batch_sizes),
                settings.repeats,
                settings.warmup,
            )
        )
    return subjects


def _teacher_subject(settings: BenchSettings, device: torch.device) -> _Subject | None:
    if settings.teacher in (None, "none"):
        return None
    from .teachers import create_teacher, get_teacher_spec

    name = settings.teacher
    spec = get_teacher_spec(name)
    sizes = list(settings.teacher_sizes or settings.sizes)
    info: dict[str, Any] = {"teacher": name}
    options = dict(settings.teacher_options)
    if spec.needs_weights:
        options.setdefault("progress", False)
        info["model"] = settings.teacher_model or spec.default_model

    def make(size: int) -> Callable[[torch.Tensor, torch.Tensor], Any]:
        teacher = create_teacher(
            name,
            model=settings.teacher_model,
            device=device,
            **{**options, "size": size},
        )
        info.setdefault("config", teacher.config())

        def fn(contents: torch.Tensor, style: torch.Tensor) -> Any:
            prepared = teacher.prepare_style(style[0].cpu())
            return teacher.stylize(
                list(contents.cpu()), [prepared] * len(contents), batch_size=len(contents)
            )

        return fn

    return _Subject(
        name,
        "teacher",
        make,
        info,
        sizes,
        list(settings.teacher_batch_sizes),
        settings.teacher_repeats,
        settings.teacher_warmup,
        memory_device=device if spec.needs_weights else torch.device("cpu"),
    )


# --------------------------------------------------------------------------- measuring


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _measure(
    fn: Callable[[torch.Tensor, torch.Tensor], Any],
    contents: torch.Tensor,
    style: torch.Tensor,
    *,
    repeats: int,
    warmup: int,
    device: torch.device,
    memory_device: torch.device | None = None,
) -> dict[str, Any]:
    memory = _PeakMemory(memory_device or device)
    time_calls(lambda: fn(contents, style), 0, warmup=warmup, device=device)
    synchronize(device)
    memory.reset()
    times = time_calls(lambda: fn(contents, style), repeats, device=device)
    batch = contents.shape[0]
    ms = sorted(t * 1000.0 / batch for t in times)  # per image
    quartiles = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) > 1 else [ms[0]] * 3
    median_batch_s = statistics.median(times)
    return {
        "latency_ms": {
            "median": statistics.median(ms),
            "q1": quartiles[0],
            "q3": quartiles[2],
            "iqr": quartiles[2] - quartiles[0],
            "min": ms[0],
            "max": ms[-1],
            "runs": len(ms),
        },
        "images_per_second": batch / median_batch_s if median_batch_s > 0 else None,
        "peak_memory_mb": memory.peak_mb(),
        "memory_kind": memory.kind,
    }


def run_benchmark(settings: BenchSettings) -> dict[str, Any]:
    """Measure every subject at every size and batch size; returns the bench.json content."""
    device = resolve_device(settings.device)
    for name, values in (("sizes", settings.sizes), ("batch sizes", settings.batch_sizes)):
        if not values or min(values) < 1:
            raise ConfigError(f"--{name.replace(' ', '-')}: give positive integers, got {values}")
    if min(settings.sizes) < 32:
        raise ConfigError(f"--sizes: at least 32 px, got {min(settings.sizes)}")
    if settings.repeats < 1 or settings.teacher_repeats < 1:
        raise ConfigError("--repeats: must be at least 1")
    if settings.half and device.type != "cuda":
        raise ConfigError("--half needs a CUDA device (fp16 on CPU is slower, not faster)")
    dtype = torch.float16 if settings.half else torch.float32

    subjects = _student_subjects(settings, device, dtype)
    teacher = _teacher_subject(settings, device)
    if teacher is not None:
        subjects.append(teacher)
    if not subjects:
        raise ConfigError("nothing to benchmark: give --presets and/or --teacher")

    generator = torch.Generator().manual_seed(settings.seed)
    total = sum(len(s.sizes) * len(s.batch_sizes) for s in subjects)
    bar = progress_bar(total=total, desc="bench", unit="run", enabled=settings.progress)
    rows: list[dict[str, Any]] = []
    for subject in subjects:
        for size in subject.sizes:
            bar.set_postfix_str(f"{subject.name} @ {size}px")
            fn = subject.make(size)
            style = torch.rand(1, 3, size, size, generator=generator)
            for batch in subject.batch_sizes:
                contents = torch.rand(batch, 3, size, size, generator=generator)
                row: dict[str, Any] = {
                    "model": subject.name,
                    "kind": subject.kind,
                    "size": size,
                    "batch_size": batch,
                }
                try:
                    row.update(
                        _measure(
                            fn,
                            contents,
                            style,
                            repeats=subject.repeats,
                            warmup=subject.warmup,
                            device=device,
                            memory_device=subject.memory_device,
                        )
                    )
                except RuntimeError as exc:
                    if not _is_oom(exc):
                        raise
                    row["error"] = "out of memory"
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                rows.append(row)
                bar.update(1)
            del fn
    bar.close()

    ratios = []
    teacher_rows = {
        r["size"]: r
        for r in rows
        if r["kind"] == "teacher" and r["batch_size"] == 1 and "error" not in r
    }
    for row in rows:
        if (
            row["kind"] == "student"
            and row["batch_size"] == 1
            and row["size"] in teacher_rows
            and "error" not in row
        ):
            t = teacher_rows[row["size"]]["latency_ms"]["median"]
            s = row["latency_ms"]["median"]
            ratios.append(
                {
                    "student": row["model"],
                    "teacher": teacher_rows[row["size"]]["model"],
                    "size": row["size"],
                    "teacher_over_student": t / s if s > 0 else None,
                }
            )
    return {
        "machine": machine_info(device),
        "settings": _settings_dict(settings),
        "subjects": {s.name: {"kind": s.kind, **s.info} for s in subjects},
        "results": rows,
        "ratios": ratios,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _settings_dict(settings: BenchSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["device"] = str(settings.device) if settings.device is not None else None
    data["checkpoints"] = [str(p) for p in settings.checkpoints]
    return data


# --------------------------------------------------------------------------- output


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of every measurement plus the teacher/student ratios."""
    header = f"{'model':<16} {'kind':<8} {'size':>5} {'batch':>5} {'median ms':>11} {'IQR ms':>9} {'img/s':>9} {'peak MB':>9}"
    lines = [
        f"machine: {report['machine'].get('device_name')}  (torch {report['machine'].get('torch')})",
        header,
        "-" * len(header),
    ]
    for row in report["results"]:
        if "error" in row:
            lines.append(
                f"{row['model']:<16} {row['kind']:<8} {row['size']:>5} {row['batch_size']:>5} {row['error']:>11}"
            )
            continue
        lat = row["latency_ms"]
        peak = row.get("peak_memory_mb")
        lines.append(
            f"{row['model']:<16} {row['kind']:<8} {row['size']:>5} {row['batch_size']:>5} "
            f"{lat['median']:>11.2f} {lat['iqr']:>9.2f} {row['images_per_second']:>9.2f} "
            f"{(f'{peak:.0f}' if peak is not None else '-'):>9}"
        )
    if report.get("ratios"):
        lines.append("")
        lines.append("teacher / student latency (batch 1, same run, same machine):")
        for ratio in report["ratios"]:
            value = ratio["teacher_over_student"]
            lines.append(
                f"  {ratio['teacher']} / {ratio['student']} @ {ratio['size']}px: {value:,.1f}x"
                if value
                else "  n/a"
            )
    return "\n".join(lines)


def plot_latency(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Median per-image latency (batch 1) against resolution, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in report["results"]:
        if row["batch_size"] == 1 and "error" not in row:
            by_model.setdefault(row["model"], []).append(row)
    for model, rows in by_model.items():
        rows.sort(key=lambda r: r["size"])
        sizes = [r["size"] for r in rows]
        median = [r["latency_ms"]["median"] for r in rows]
        low = [r["latency_ms"]["median"] - r["latency_ms"]["q1"] for r in rows]
        high = [r["latency_ms"]["q3"] - r["latency_ms"]["median"] for r in rows]
        kind = rows[0]["kind"]
        ax.errorbar(
            sizes,
            median,
            yerr=[low, high],
            marker="o" if kind == "student" else "s",
            linestyle="-" if kind == "student" else "--",
            capsize=3,
            label=f"{model} ({kind})",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    all_sizes = sorted({r["size"] for rows in by_model.values() for r in rows})
    ax.set_xticks(all_sizes, [str(s) for s in all_sizes])
    ax.set_xlabel("image side (px)")
    ax.set_ylabel("latency per image (ms, median, IQR bars)")
    ax.set_title(f"styledistill bench: {report['machine'].get('device_name', '')}"[:80], fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_bench(report: dict[str, Any], out: str | os.PathLike) -> dict[str, Path]:
    """``bench.json`` and ``bench.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bench.json"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return {"json": json_path, "plot": plot_latency(report, out / "bench.png")}


def parse_int_list(text: str | Sequence[int], what: str) -> list[int]:
    """``"256,512"`` -> ``[256, 512]`` with a clear error naming the flag."""
    if not isinstance(text, str):
        return [int(v) for v in text]
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"{what} {text!r}: expected comma-separated integers, e.g. 256,512"
        ) from None
    if not values or min(values) < 1:
        raise ConfigError(f"{what} {text!r}: expected positive integers")
    return values
