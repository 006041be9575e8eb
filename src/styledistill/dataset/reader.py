"""Reading a dataset folder: manifests, dataset.json, failures, train/val split, summary.

Pure Python (no torch), so ``styledistill dataset info`` stays fast. Readers tolerate
a torn last manifest line (a writer killed mid-line) by ignoring it.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..plumbing import human_bytes, path_problem

__all__ = [
    "DATASET_FILE",
    "FAILURES_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "STATUS_FILE",
    "BadLine",
    "dataset_info",
    "image_intact",
    "iter_jsonl",
    "read_dataset_json",
    "read_failures",
    "read_manifest",
    "read_records",
    "record_problem",
    "shard_dirs",
    "split_keys",
]

DATASET_FILE = "dataset.json"
MANIFEST_FILE = "manifest.jsonl"
FAILURES_FILE = "failures.jsonl"
#: Per shard, rewritten at the end of each run: how many of its pairs cannot be made
#: because an input is unreadable (so progress is counted against what can be made).
STATUS_FILE = "status.json"
FORMAT = "styledistill-paired-dataset"
FORMAT_VERSION = 1


def jsonl_lines(path: str | os.PathLike) -> Iterator[tuple[int, Any, str | None]]:
    """``(line number, value, problem)`` of each complete, non-empty line of a JSON-lines file.

    ``problem`` is None for a JSON object, else why the line is not one; a last line
    without its newline (a torn write, cut off by the next writer) is not yielded.
    """
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                return
            line = raw.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except ValueError:
                yield number, None, "not JSON"
                continue
            if not isinstance(value, dict):
                yield number, value, f"a JSON {type(value).__name__}, not an object"
                continue
            yield number, value, None


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Objects of a JSON-lines file. A last line without its newline (torn write) is skipped,
    and so is any line that is not an object: never fatal for a reader."""
    for _, record, problem in jsonl_lines(path):
        if problem is None:
            yield record


def shard_dirs(root: str | os.PathLike) -> list[Path]:
    """Shard folders of a dataset (``shard-*`` holding a manifest), sorted by name."""
    root = Path(root)
    return sorted(
        path for path in root.glob("shard-*") if path.is_dir() and (path / MANIFEST_FILE).is_file()
    )


def _require_dataset(root: Path) -> None:
    problem = path_problem(root, "folder", "dataset folder")
    if problem:
        raise ConfigError(f"{root}: {problem}")
    if not (root / DATASET_FILE).is_file() and not shard_dirs(root):
        raise ConfigError(
            f"{root}: not a styledistill dataset (no {DATASET_FILE} and no shard-*/{MANIFEST_FILE}); "
            "make one with 'styledistill teach'"
        )


def read_dataset_json(root: str | os.PathLike) -> dict[str, Any]:
    """The plan description at the top of a dataset (``{}`` when absent)."""
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a styledistill dataset description")
    return data


#: Manifest fields every finished pair has; a line without them is skipped (and counted).
_REQUIRED_FIELDS = ("key", "output", "content", "style")


def record_problem(record: Any) -> str | None:
    """Why a parsed manifest line is not a pair record (None when it is one)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    missing = [name for name in _REQUIRED_FIELDS if not isinstance(record.get(name), str)]
    if missing:
        return f"no {', '.join(missing)} (text fields every pair record has)"
    return None


@dataclass(frozen=True)
class BadLine:
    """A manifest line that is not a pair record: where it is and why."""

    path: Path
    line: int
    reason: str

    def where(self, root: str | os.PathLike | None = None) -> str:
        """``shard-…/manifest.jsonl line 12`` (relative to ``root`` when given)."""
        path = self.path
        if root is not None:
            try:
                path = path.relative_to(root)
            except ValueError:
                pass
        return f"{path} line {self.line}"

    def __str__(self) -> str:
        return f"{self.where()}: {self.reason}"


def manifest_records(path: Path) -> Iterator[tuple[dict[str, Any] | None, BadLine | None]]:
    """Each line of one manifest: ``(record, None)`` for a pair, ``(None, BadLine)`` otherwise."""
    for number, value, problem in jsonl_lines(path):
        problem = problem or record_problem(value)
        if problem:
            yield None, BadLine(path, number, problem)
        else:
            yield value, None


def read_records(root: str | os.PathLike) -> tuple[list[dict[str, Any]], list[BadLine]]:
    """:func:`read_manifest`'s records and the manifest lines that are not pair records."""
    root = Path(root)
    _require_dataset(root)
    seen: set[str] = set()
    records, bad = [], []
    for shard in shard_dirs(root):
        for record, problem in manifest_records(shard / MANIFEST_FILE):
            if problem is not None:
                bad.append(problem)
            elif record["key"] not in seen:
                seen.add(record["key"])
                records.append(record)
    return records, bad


def read_manifest(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished pair of the dataset, one dict per key (all shards, in shard order).

    Fields: ``key``, ``content``/``style`` (source paths), ``content_rel``/``style_rel``
    (paths inside the input folders), ``output`` (image path relative to ``root``),
    ``teacher``, ``teacher_config``, ``model``, ``seed``, ``sizes`` (``[width, height]``
    of the content, style and output), ``seconds``, ``shard``, ``time``; and
    ``content_input``/``style_input`` (relative to ``root``) when inputs were copied.
    A key seen twice (impossible with one writer per shard) is kept once; lines that
    are not pair records are left out (:func:`read_records` lists them).
    """
    return read_records(root)[0]


def read_failures(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Unreadable inputs reported by all shards (``path``, ``role``, ``reason``), once per path."""
    root = Path(root)
    seen: set[str] = set()
    failures = []
    for path in sorted(root.glob(f"shard-*/{FAILURES_FILE}")):
        for record in iter_jsonl(path):
            where = str(record.get("path"))
            if where not in seen:
                seen.add(where)
                failures.append(record)
    return failures


def _held_out(items: Sequence[str], fraction: float, rng: random.Random) -> set[str]:
    if fraction <= 0 or len(items) < 2:
        return set()
    count = min(len(items) - 1, max(1, round(fraction * len(items))))
    return set(rng.sample(list(items), count))


def split_keys(
    records: Iterable[dict[str, Any]], val_fraction: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split pair keys into ``(train, val)`` so no validation content or style is trained on.

    A share of the contents and a share of the styles are held out; a pair goes to
    validation when its content or its style is held out, else to training. The
    held-out share ``h`` per axis solves ``1 - (1 - h)^2 = val_fraction``, so roughly
    ``val_fraction`` of the pairs (of an all-pairs plan) end up in validation. With a
    single content (or style) only the other axis is held out. Deterministic for a seed.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    records = list(records)
    contents = sorted({_content_id(r) for r in records})
    styles = sorted({_style_id(r) for r in records})
    per_axis = 1.0 - math.sqrt(1.0 - val_fraction)
    if len(contents) < 2 or len(styles) < 2:
        per_axis = val_fraction  # only one axis can be held out
    rng = random.Random(f"split:{seed}")
    held_contents = _held_out(contents, per_axis, rng)
    held_styles = _held_out(styles, per_axis, rng)
    train, val = [], []
    for record in records:
        if _content_id(record) in held_contents or _style_id(record) in held_styles:
            val.append(record["key"])
        else:
            train.append(record["key"])
    return train, val


def _content_id(record: dict[str, Any]) -> str:
    return str(record.get("content_rel") or record.get("content"))


def _style_id(record: dict[str, Any]) -> str:
    return str(record.get("style_rel") or record.get("style"))


def _disk_use(root: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _spread(values: list[int]) -> dict[str, int] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1]}


def image_intact(path: str | os.PathLike, *, decode: bool = False) -> bool:
    """The image exists and every chunk checks out (PNG CRCs, complete to its end marker).

    Pillow's ``verify`` reads the whole file without decompressing pixels, so checking
    a big shard is quick; it catches truncated and bit-flipped files. (Formats without
    a verifier, such as JPEG, are checked as far as their header.) ``decode``: decode
    every pixel instead, which a file can fail after passing ``verify``.
    """
    from PIL import Image

    try:
        if os.path.getsize(path) == 0:
            return False
        with Image.open(path) as image:
            image.load() if decode else image.verify()
        return True
    except Exception:
        return False


def _unreadable_pairs(root: Path) -> int:
    """Planned pairs the last run of each shard skipped because an input is unreadable."""
    total = 0
    for path in root.glob(f"shard-*/{STATUS_FILE}"):
        try:
            status = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(status, dict) and isinstance(status.get("pairs_unreadable"), int):
            total += status["pairs_unreadable"]
    return total


def dataset_info(root: str | os.PathLike, *, verify: bool = False) -> dict[str, Any]:
    """A summary of a dataset folder: progress, failures, teachers, sizes, disk use.

    ``verify`` also decodes every output image (slow on big datasets) and counts
    the ones that do not decode as ``corrupt_outputs``.
    """
    root = Path(root)
    _require_dataset(root)
    plan = read_dataset_json(root)
    shards = []
    keys: Counter[str] = Counter()
    teachers: Counter[str] = Counter()
    settings: dict[str, dict[str, Any]] = {}
    output_sizes: Counter[str] = Counter()
    missing = 0
    seconds = 0.0
    timed = 0
    contents: set[str] = set()
    styles: set[str] = set()
    short_sides: dict[str, dict[str, int]] = {"content": {}, "style": {}}
    corrupt = 0
    bad_lines: list[BadLine] = []
    for shard in shard_dirs(root):
        count = 0
        for record, problem in manifest_records(shard / MANIFEST_FILE):
            if problem is not None:
                bad_lines.append(problem)
                continue
            count += 1
            keys[record["key"]] += 1
            teacher = str(record.get("teacher"))
            label = json.dumps(
                {
                    "teacher": teacher,
                    "config": record.get("teacher_config"),
                    "model": record.get("model"),
                },
                sort_keys=True,
            )
            teachers[label] += 1
            settings[label] = {
                "teacher": teacher,
                "config": record.get("teacher_config"),
                "model": record.get("model"),
            }
            size = (record.get("sizes") or {}).get("output")
            if size:
                output_sizes["x".join(str(v) for v in size)] += 1
            if record.get("seconds") is not None:  # None: imported, time unknown
                seconds += float(record["seconds"])
                timed += 1
            contents.add(_content_id(record))
            styles.add(_style_id(record))
            for role, name in (("content", _content_id(record)), ("style", _style_id(record))):
                size = (record.get("sizes") or {}).get(role)
                if size:
                    short_sides[role][name] = min(size)
            output = root / str(record.get("output"))
            if not output.is_file():
                missing += 1
            elif verify and not image_intact(output, decode=True):
                corrupt += 1
        failures_file = shard / FAILURES_FILE
        failed = sum(1 for _ in iter_jsonl(failures_file)) if failures_file.is_file() else 0
        shards.append({"name": shard.name, "pairs": count, "failures": failed})
    done = len(keys)
    unreadable_pairs = _unreadable_pairs(root)
    planned = plan.get("pairs_planned")
    # pairs left from an earlier plan (the input folders changed): done never exceeds planned
    beyond = max(0, done - planned) if isinstance(planned, int) else 0
    done -= beyond
    makeable = max(done, planned - unreadable_pairs) if isinstance(planned, int) else None
    failures = read_failures(root)
    disk = _disk_use(root)
    return {
        "path": str(root),
        "pairs_done": done,
        "pairs_beyond_plan": beyond,
        "pairs_planned": planned,
        "pairs_unreadable": unreadable_pairs,
        "pairs_makeable": makeable,
        "duplicate_keys": sum(1 for c in keys.values() if c > 1),
        "missing_outputs": missing,
        "contents": len(contents),
        "styles": len(styles),
        "failures": len(failures),
        "failed_inputs": [
            {"path": f.get("path"), "role": f.get("role"), "reason": f.get("reason")}
            for f in failures
        ],
        "teachers": [dict(settings[label], pairs=count) for label, count in teachers.items()],
        "output_sizes": dict(output_sizes),
        "content_short_side": _spread(list(short_sides["content"].values())),
        "style_short_side": _spread(list(short_sides["style"].values())),
        "corrupt_outputs": corrupt if verify else None,
        "bad_lines": len(bad_lines),
        "bad_line_list": [{"where": line.where(root), "reason": line.reason} for line in bad_lines],
        "teacher_seconds": round(seconds, 3),
        "seconds_per_pair": round(seconds / timed, 4) if timed else None,
        "disk_bytes": disk,
        "disk": human_bytes(disk),
        "shards": shards,
        "plan": plan,
    }
