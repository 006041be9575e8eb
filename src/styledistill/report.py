"""The evaluation report: one self-contained HTML file (CSS inline, images as data URIs).

It opens offline in any browser and can be mailed or attached as a CI artifact: the
paper-style metric table for teacher and student, teacher fidelity and speed, a
per-style breakdown, image grids, the metrics that were skipped and why, and which
weights each metric used.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from .plumbing import atomic_path

__all__ = ["METRIC_COLUMNS", "format_value", "image_data_uri", "render_report", "write_report"]

#: The table columns in the StyleID paper's order: (key, label, "lower"/"higher" is better).
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("artfid", "ArtFID", "lower"),
    ("fid", "FID", "lower"),
    ("lpips", "LPIPS", "lower"),
    ("cfsd", "CFSD", "lower"),
    ("histogram", "Histogram", "lower"),
    ("fid_infinity", "FID∞", "lower"),
)
FIDELITY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("psnr", "PSNR (dB)", "higher"),
    ("ssim", "SSIM", "higher"),
    ("lpips", "LPIPS", "lower"),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#222;padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
td.text,th.text{text-align:left}
th:first-child,td:first-child{text-align:left}
thead th{background:#f3f3f3}tr.ref td{color:#777;font-style:italic}
td.best{font-weight:600;background:#eef7ee}.muted{color:#777}.skip{color:#a33}
img.grid{max-width:100%;border:1px solid #ddd;margin:.4rem 0}
code{background:#f5f5f5;padding:0 .2rem}
"""


def format_value(value: Any, digits: int = 3) -> str:
    """Numbers rounded for a table; None/NaN as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 1e-3 or value == 0:
            return f"{value:.{digits}f}"
        return f"{value:.2e}"
    return html.escape(str(value))


def image_data_uri(image: Image.Image | str | os.PathLike, *, quality: int = 88) -> str:
    """An image as a ``data:`` URI (JPEG) so the HTML needs no side files."""
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _best(values: Sequence[float | None], better: str) -> float | None:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(finite) < 2:
        return None
    return min(finite) if better == "lower" else max(finite)


def _metric_table(results: Mapping[str, Any]) -> str:
    methods = results.get("methods", {})
    metrics = results.get("metrics", {})
    timing = results.get("timing", {})
    columns = [
        c
        for c in METRIC_COLUMNS
        if c[0] != "fid_infinity"
        or any(metrics.get(m, {}).get("fid_infinity") is not None for m in methods)
    ]
    head = "".join(
        f"<th>{label} {'↓' if better == 'lower' else '↑'}</th>" for _, label, better in columns
    )
    head += "<th>s / pair ↓</th>"
    rows = []
    best = {
        key: _best([metrics.get(m, {}).get(key) for m in methods], better)
        for key, _, better in columns
    }
    for method, info in methods.items():
        cells = []
        for key, _, _ in columns:
            value = metrics.get(method, {}).get(key)
            cls = ' class="best"' if value is not None and value == best[key] else ""
            cells.append(f"<td{cls}>{format_value(value)}</td>")
        seconds = timing.get(method, {}).get("seconds_per_pair")
        cells.append(f"<td>{format_value(seconds, 4)}</td>")
        title = html.escape(info.get("label", method))
        rows.append(f"<tr><td>{title}</td>{''.join(cells)}</tr>")
    for name, ref in (results.get("reference") or {}).items():
        cells = "".join(f"<td>{format_value(ref.get(key))}</td>" for key, _, _ in columns)
        rows.append(f'<tr class="ref"><td>{html.escape(name)}</td>{cells}<td>—</td></tr>')
    return f"<table><thead><tr><th>method</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _fidelity_and_speed(results: Mapping[str, Any]) -> str:
    parts = []
    fidelity = results.get("fidelity")
    if fidelity:
        head = "".join(f"<th>{label}</th>" for _, label, _ in FIDELITY_COLUMNS)
        cells = "".join(
            f"<td>{format_value(fidelity.get(key))}</td>" for key, _, _ in FIDELITY_COLUMNS
        )
        parts.append(
            "<p>Student output compared with the teacher's on the same pairs "
            "(the distillation target).</p>"
            f"<table><thead><tr><th></th>{head}</tr></thead><tbody>"
            f"<tr><td>student vs teacher</td>{cells}</tr></tbody></table>"
        )
    timing = results.get("timing", {})
    if timing:
        rows = []
        for method, info in timing.items():
            if not isinstance(info, Mapping):
                continue
            rows.append(
                f"<tr><td>{html.escape(method)}</td><td>{format_value(info.get('seconds_per_pair'), 4)}</td>"
                f"<td>{format_value(info.get('pairs_per_second'), 2)}</td>"
                f"<td>{format_value(info.get('seconds_total'), 2)}</td></tr>"
            )
        ratio = timing.get("teacher_over_student")
        if ratio and ratio >= 1:
            ratio_line = (
                f"<p>The student is <b>{format_value(ratio, 1)}×</b> faster than the teacher "
                "on this machine (same run).</p>"
            )
        elif ratio:
            ratio_line = (
                f"<p>The teacher is <b>{format_value(1 / ratio, 1)}×</b> faster than the student "
                "on this machine (same run).</p>"
            )
        else:
            ratio_line = ""
        parts.append(
            "<table><thead><tr><th>method</th><th>s / pair</th><th>pairs / s</th><th>total s</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{ratio_line}"
        )
    return "".join(parts)


def _per_style_table(results: Mapping[str, Any]) -> str:
    per_style = results.get("per_style") or {}
    if not per_style:
        return ""
    methods = list(results.get("methods", {}))
    keys = [
        k
        for k in ("lpips", "cfsd", "histogram")
        if any(per_style[s].get(m, {}).get(k) is not None for s in per_style for m in methods)
    ]
    fidelity_keys = [
        k
        for k in ("psnr", "ssim")
        if any((per_style[s].get("fidelity") or {}).get(k) is not None for s in per_style)
    ]
    head = "".join(f"<th>{m}: {k}</th>" for m in methods for k in keys)
    head += "".join(f"<th>fidelity: {k}</th>" for k in fidelity_keys)
    rows = []
    for style, entry in per_style.items():
        cells = "".join(
            f"<td>{format_value(entry.get(m, {}).get(k))}</td>" for m in methods for k in keys
        )
        cells += "".join(
            f"<td>{format_value((entry.get('fidelity') or {}).get(k))}</td>" for k in fidelity_keys
        )
        rows.append(f"<tr><td>{html.escape(style)}</td>{cells}</tr>")
    return (
        "<p class='muted'>Mean over the content images of each style (FID needs many images, "
        "so it is reported over all pairs only).</p>"
        f"<table><thead><tr><th>style</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _skipped(results: Mapping[str, Any]) -> str:
    skipped = results.get("skipped") or {}
    if not skipped:
        return "<p>Every metric ran.</p>"
    items = "".join(
        f"<li><b>{html.escape(name)}</b>: <span class='skip'>{html.escape(reason)}</span></li>"
        for name, reason in skipped.items()
    )
    return f"<ul>{items}</ul>"


def _skipped_inputs(results: Mapping[str, Any]) -> str:
    skipped = results.get("skipped_inputs") or []
    if not skipped:
        return ""
    items = "".join(
        f"<li><code>{html.escape(str(s.get('path', '')))}</code>: "
        f"<span class='skip'>{html.escape(str(s.get('reason', '')))}</span></li>"
        for s in skipped
    )
    return f"<h2>Skipped inputs (unreadable)</h2><ul>{items}</ul>"


def _weights(results: Mapping[str, Any]) -> str:
    weights = results.get("weights") or {}
    rows = []
    for key, info in weights.items():
        if info.get("file"):
            detail = (
                f"<code>{html.escape(str(info['file']))}</code> "
                f"<span class='muted'>sha256 {html.escape(str(info.get('sha256', ''))[:16])}…, "
                f"{format_value(info.get('bytes', 0) / 1e6, 1)} MB</span>"
            )
        else:
            detail = (
                f"<span class='skip'>{html.escape(str(info.get('missing', 'not used')))}</span>"
            )
        rows.append(
            f"<tr><td>{html.escape(key)}</td><td style='text-align:left'>{detail}</td></tr>"
        )
    methods = results.get("methods", {})
    method_rows = "".join(
        f"<tr><td>{html.escape(m)}</td><td style='text-align:left'>{html.escape(str(info.get('description', '')))}</td></tr>"
        for m, info in methods.items()
    )
    return (
        f"<table><thead><tr><th>method</th><th class='text'>what ran</th></tr></thead><tbody>{method_rows}</tbody></table>"
        f"<table><thead><tr><th>weights</th><th class='text'>file</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _files(results: Mapping[str, Any]) -> str:
    files = results.get("files") or {}
    if not files:
        return ""
    links = " · ".join(
        f"<a href='{html.escape(str(path))}'>{html.escape(str(path))}</a>"
        for path in files.values()
    )
    return f"<p class='muted'>Next to this report: {links}</p>"


def render_report(results: Mapping[str, Any], grids: Sequence[tuple[str, Image.Image]] = ()) -> str:
    """The HTML text for ``results`` (the metrics.json content) and titled grid images."""
    protocol = results.get("protocol", {})
    machine = results.get("machine", {})
    title = results.get("title") or "styledistill evaluation"
    summary = (
        f"{protocol.get('n_contents', '?')} contents × {protocol.get('n_styles', '?')} styles = "
        f"{protocol.get('n_pairs', '?')} pairs at {protocol.get('size', '?')} px · "
        f"{html.escape(str(machine.get('device_name', '')))} · {html.escape(str(results.get('created', '')))}"
    )
    grid_html = "".join(
        f"<h3>{html.escape(caption)}</h3><img class='grid' alt='{html.escape(caption)}' src='{image_data_uri(image)}'>"
        for caption, image in grids
    )
    body = [
        f"<h1>{html.escape(title)}</h1><p class='muted'>{summary}</p>",
        "<h2>Metrics (StyleID protocol)</h2>",
        "<p class='muted'>ArtFID = (1 + LPIPS) × (1 + FID); FID on art-Inception features of "
        "stylized vs style images; LPIPS (AlexNet v0.1) and CFSD (VGG19 relu3_1 self-similarity "
        "KL) of stylized vs content; histogram = RGB-uv Hellinger distance to the style. "
        "Lower is better everywhere.</p>",
        _metric_table(results),
        "<h2>Teacher fidelity and speed</h2>",
        _fidelity_and_speed(results) or "<p class='muted'>Only one method was evaluated.</p>",
        "<h2>Per style</h2>",
        _per_style_table(results),
        "<h2>Images</h2>",
        grid_html or "<p class='muted'>No grids.</p>",
        "<h2>Skipped metrics</h2>",
        _skipped(results),
        _skipped_inputs(results),
        "<h2>What ran</h2>",
        _weights(results),
        _files(results),
    ]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )


def write_report(
    path: str | os.PathLike,
    results: Mapping[str, Any],
    grids: Sequence[tuple[str, Image.Image]] = (),
) -> Path:
    """Write :func:`render_report` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(render_report(results, grids), encoding="utf-8")
    return path
