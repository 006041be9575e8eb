"""Import stylized images made elsewhere as a paired dataset that ``train`` reads.

A teacher run on another machine (the official StyleID code, or any other tool) leaves
a folder of stylized images beside its content and style folders. :func:`import_pairs`
matches the three, checks every image, and writes the same folder layout as ``teach``
(``dataset.json``, one shard with the images named by pair key and ``manifest.jsonl``),
so training, ``dataset info`` and evaluation need nothing new.

Matching, one of:

- a name pattern (default: the official StyleID code's ``{content}_stylized_{style}``):
  a stylized file whose name, without its extension, is the pattern with a content's and
  a style's name (their paths inside the folders, without extension) filled in;
- a pairs file: CSV with the columns ``content,style,stylized`` or JSON lines with
  those keys. Relative paths are read inside ``--contents``, ``--styles`` and
  ``--stylized`` when given, else beside the pairs file.

Each manifest line records the teacher and its settings (for StyleID, the official
defaults unless told otherwise), that the pair was imported, and the source file with
its SHA-256. A rerun adds only what is new; the sources are only ever read.
"""

from __future__ import annotations

import csv
import inspect
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..images import ImageError, list_images, load_image, save_image
from ..outputs import check_not_an_input, check_output_folder
from ..plumbing import first_line, sha256_file
from ..runtime import progress_bar
from .plan import pair_key, shard_name
from .reader import (
    DATASET_FILE,
    FAILURES_FILE,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    iter_jsonl,
    read_dataset_json,
)

__all__ = [
    "DEFAULT_PATTERN",
    "ImportSummary",
    "import_pairs",
    "match_by_pattern",
    "read_pairs_file",
    "teacher_settings",
]

#: How the official StyleID code names its outputs (``{content}_stylized_{style}.png``).
DEFAULT_PATTERN = "{content}_stylized_{style}"
#: The StyleID teacher settings that change its output (the rest is how it runs).
_STYLEID_SETTINGS = ("num_steps", "gamma", "tau", "adain_init", "inject", "official_schedule")
#: Columns (CSV) or keys (JSON lines) of a pairs file.
PAIR_FIELDS = ("content", "style", "stylized")


@dataclass(frozen=True)
class _Triple:
    """One matched (content, style, stylized) set of files."""

    content: Path
    style: Path
    stylized: Path
    content_rel: str
    style_rel: str

    @property
    def key(self) -> str:
        return pair_key(self.content_rel, self.style_rel)


@dataclass
class ImportSummary:
    """What one import did: counts, and each file left out with its reason."""

    out: Path
    imported: int = 0
    already_there: int = 0
    #: ``(path, reason)`` of every file that could not be imported.
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        text = (
            f"{self.out}: {self.imported} pairs imported, {self.already_there} already there, "
            f"{len(self.skipped)} files skipped"
        )
        if self.skipped:
            text += f" (listed in {self.out / shard_name(0, 1) / FAILURES_FILE})"
        return text


def teacher_settings(teacher: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings recorded for imported pairs: for ``styleid`` the official defaults
    (read off :class:`~styledistill.teachers.styleid.StyleIDTeacher`, so they exist once),
    updated by ``overrides``; for any other teacher only what ``overrides`` says."""
    settings: dict[str, Any] = {}
    if teacher == "styleid":
        from ..teachers._styleid_attention import DEFAULT_LAYERS
        from ..teachers.styleid import StyleIDTeacher

        defaults = inspect.signature(StyleIDTeacher.__init__).parameters
        settings = {name: defaults[name].default for name in _STYLEID_SETTINGS}
        settings.update(layers=list(DEFAULT_LAYERS), size=512, seed=defaults["seed"].default)
    settings.update(overrides or {})
    return json.loads(json.dumps(settings))


def _ids(folder: Path, role: str) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Each image of ``folder`` by its name (path inside it, no extension); names held by
    two files (``a.png`` and ``a.jpg``) are ambiguous and left out."""
    found: dict[str, list[Path]] = {}
    for path in list_images(folder):
        found.setdefault(path.relative_to(folder).with_suffix("").as_posix(), []).append(path)
    unique = {name: paths[0] for name, paths in found.items() if len(paths) == 1}
    skipped = [
        (str(path), f"{role} name {name!r} is used by {len(paths)} files")
        for name, paths in found.items()
        if len(paths) > 1
        for path in paths
    ]
    return unique, skipped


def _triple(content: Path, style: Path, stylized: Path, contents: Path, styles: Path) -> _Triple:
    def rel(path: Path, folder: Path) -> str:
        try:
            return path.relative_to(folder).as_posix()
        except ValueError:
            return path.name

    return _Triple(content, style, stylized, rel(content, contents), rel(style, styles))


def match_by_pattern(
    stylized: Path, contents: Path, styles: Path, pattern: str = DEFAULT_PATTERN
) -> tuple[list[_Triple], list[tuple[str, str]]]:
    """Stylized files named ``pattern`` with a content and a style name filled in.

    Returns the matched triples and ``(path, reason)`` for every stylized file that
    matches no (content, style) name pair, or more than one.
    """
    if pattern.count("{content}") != 1 or pattern.count("{style}") != 1:
        raise ConfigError(
            f"--pattern {pattern!r} must hold {{content}} and {{style}} once each, "
            f"e.g. {DEFAULT_PATTERN!r}"
        )
    content_ids, skipped = _ids(contents, "content")
    style_ids, more = _ids(styles, "style")
    skipped += more
    expected: dict[str, list[tuple[str, str]]] = {}
    for content_name in content_ids:
        for style_name in style_ids:
            name = pattern.replace("{content}", content_name).replace("{style}", style_name)
            expected.setdefault(name, []).append((content_name, style_name))
    triples = []
    for path in list_images(stylized):
        name = path.relative_to(stylized).with_suffix("").as_posix()
        candidates = expected.get(name, [])
        if len(candidates) != 1:
            reason = (
                f"name matches no content and style with --pattern {pattern!r}"
                if not candidates
                else f"name matches {len(candidates)} content/style pairs with --pattern {pattern!r}"
            )
            skipped.append((str(path), reason))
            continue
        content_name, style_name = candidates[0]
        triples.append(
            _triple(content_ids[content_name], style_ids[style_name], path, contents, styles)
        )
    return triples, skipped


def read_pairs_file(
    path: Path,
    contents: Path | None = None,
    styles: Path | None = None,
    stylized: Path | None = None,
) -> tuple[list[_Triple], list[tuple[str, str]]]:
    """Triples listed in a CSV (``content,style,stylized`` columns) or JSON-lines file."""
    if not path.is_file():
        raise ConfigError(f"--pairs {path}: {'is a folder' if path.is_dir() else 'no such file'}")
    rows: list[tuple[int, Any]] = []
    try:
        if path.suffix.lower() in (".jsonl", ".json"):
            with open(path, encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append((number, json.loads(line)))
                        except ValueError:
                            rows.append((number, None))
        else:
            with open(path, encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in PAIR_FIELDS if c not in (reader.fieldnames or [])]
                if missing:
                    raise ConfigError(
                        f"--pairs {path}: needs the CSV columns {','.join(PAIR_FIELDS)} "
                        f"(missing: {', '.join(missing)})"
                    )
                rows = [(number, row) for number, row in enumerate(reader, 2)]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--pairs {path}: cannot read ({first_line(exc)})") from None
    base = path.parent
    folders = {"content": contents, "style": styles, "stylized": stylized}
    triples, skipped = [], []
    for number, row in rows:
        where = f"{path}:{number}"
        if not isinstance(row, dict) or not all(
            isinstance(row.get(c), str) and row.get(c) for c in PAIR_FIELDS
        ):
            skipped.append((where, f"not a record with {', '.join(PAIR_FIELDS)}"))
            continue
        paths = {}
        for column in PAIR_FIELDS:
            given = Path(row[column]).expanduser()
            paths[column] = given if given.is_absolute() else (folders[column] or base) / given
        triples.append(
            _triple(
                paths["content"],
                paths["style"],
                paths["stylized"],
                contents or paths["content"].parent,
                styles or paths["style"].parent,
            )
        )
    return triples, skipped


def _check_folder(path: str | os.PathLike | None, flag: str) -> Path | None:
    if path is None:
        return None
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"{flag} {path}: no such folder")
    if not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a folder")
    return path


def _describe(
    teacher: str, settings: dict[str, Any], model: dict[str, Any], size: int, sources: dict
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "teacher": teacher,
        "teacher_config": settings,
        "model": model,
        "size": size,
        "seed": settings.get("seed"),
        "pairs": "imported",
        "styles_per_content": None,
        "limit": None,
        **sources,
    }


#: dataset.json fields that must match for a rerun to add to an imported dataset.
_IDENTITY = ("format", "teacher", "teacher_config", "model", "size", "pairs")


def _prepare(out: Path, description: dict[str, Any]) -> dict[str, Any]:
    from .writer import _first_difference, _now

    existing = read_dataset_json(out)
    for name in _IDENTITY if existing else ():
        difference = _first_difference(existing.get(name), description.get(name), name)
        if difference:
            raise ConfigError(
                f"--out {out} already holds a different dataset ({difference}); "
                "import into another --out"
            )
    return {**description, "created": existing.get("created") or _now()}


def import_pairs(
    out: str | os.PathLike,
    *,
    contents: str | os.PathLike | None,
    styles: str | os.PathLike | None,
    stylized: str | os.PathLike | None = None,
    pattern: str = DEFAULT_PATTERN,
    pairs_file: str | os.PathLike | None = None,
    teacher: str = "styleid",
    settings: dict[str, Any] | None = None,
    model: str | None = None,
    size: int | None = None,
    progress: bool = True,
    warn: Callable[[str], None] | None = None,
) -> ImportSummary:
    """Import stylized images into the dataset folder ``out`` (see the module docstring).

    ``settings``: teacher settings recorded in the manifest (for ``styleid``: changes to
    the official defaults). ``model``: the weights the teacher ran on (for ``styleid``,
    default ``CompVis/stable-diffusion-v1-4``, the paper's). ``size``: the side of the
    square stylized images (default: the most common size among them); others are
    skipped. Returns what was imported and what was skipped, and why.
    """
    from .writer import _write_json_atomic

    contents_dir = _check_folder(contents, "--contents")
    styles_dir = _check_folder(styles, "--styles")
    stylized_dir = _check_folder(stylized, "--stylized")
    if pairs_file is None:
        if contents_dir is None or styles_dir is None or stylized_dir is None:
            raise ConfigError("give --stylized, --contents and --styles (or a --pairs file)")
        triples, skipped = match_by_pattern(stylized_dir, contents_dir, styles_dir, pattern)
    else:
        pairs_file = Path(pairs_file).expanduser().resolve()
        triples, skipped = read_pairs_file(pairs_file, contents_dir, styles_dir, stylized_dir)
    out = Path(out).expanduser()
    sources = {
        "--contents": contents_dir,
        "--styles": styles_dir,
        "--stylized": stylized_dir,
        "--pairs": pairs_file,
    }
    check_not_an_input(
        [out], {k: v for k, v in sources.items() if v is not None}, folder_output=True
    )
    check_output_folder(out, "--out")
    if size is not None and size < 1:
        raise ConfigError(f"--size must be >= 1, got {size}")
    if model is None and teacher == "styleid":
        from ..teachers.registry import DEFAULT_STYLEID_MODEL

        model = DEFAULT_STYLEID_MODEL
    recorded = teacher_settings(teacher, settings)
    model_info = {"model_id": model, "revision": None} if model else {}

    checked = _check_images(triples, skipped, progress)
    size, kept = _keep_size(checked, size, skipped)
    description = _prepare(
        out,
        _describe(
            teacher,
            recorded,
            model_info,
            size,
            {
                "contents": str(contents_dir) if contents_dir else None,
                "styles": str(styles_dir) if styles_dir else None,
                "imported_from": str(pairs_file or stylized_dir),
                "pattern": None if pairs_file else pattern,
            },
        ),
    )
    record = {"teacher": teacher, "teacher_config": recorded, "model": model_info}
    summary, done, failures_path = _write_pairs(
        out, kept, skipped, record, size, from_pairs_file=pairs_file is not None, progress=progress
    )
    pairs_done = len(done | {t.key for t, _, _ in kept})
    description.update(
        num_contents=len({t.content for t, _, _ in kept}),
        num_styles=len({t.style for t, _, _ in kept}),
        pairs_planned=max(pairs_done, len(done)),
        num_shards=1,
    )
    _write_json_atomic(out / DATASET_FILE, description)
    if warn is not None and summary.skipped:
        for path, reason in summary.skipped[:10]:
            warn(f"skipped {path}: {reason}")
        if len(summary.skipped) > 10:
            warn(f"... {len(summary.skipped) - 10} more in {failures_path}")
    return summary


#: A matched triple, its stylized image's ``(height, width)`` and the content's and
#: style's ``[width, height]``.
_Checked = tuple[_Triple, tuple[int, int], list[int], list[int]]


def _check_images(
    triples: list[_Triple], skipped: list[tuple[str, str]], progress: bool
) -> list[_Checked]:
    """Decode every image once (intact? what size?), adding what fails to ``skipped``.

    Outputs are decoded again when written, so thousands of pairs never sit in memory
    at once; a second stylized image for an already matched pair is skipped."""
    checked: list[_Checked] = []
    shapes: dict[Path, list[int]] = {}
    seen_keys: dict[str, Path] = {}
    bar = progress_bar(total=len(triples), desc="check", unit="pair", disable=not progress)
    for triple in triples:
        bar.update(1)
        if triple.key in seen_keys:
            skipped.append(
                (str(triple.stylized), f"a second image for the pair of {seen_keys[triple.key]}")
            )
            continue
        try:
            for path in (triple.content, triple.style):
                if path not in shapes:
                    image = load_image(path)
                    shapes[path] = [int(image.shape[-1]), int(image.shape[-2])]
            output = load_image(triple.stylized)
        except ImageError as exc:
            skipped.append((str(exc.source), exc.reason))
            continue
        seen_keys[triple.key] = triple.stylized
        shape = (int(output.shape[-2]), int(output.shape[-1]))
        checked.append((triple, shape, shapes[triple.content], shapes[triple.style]))
    bar.close()
    return checked


def _keep_size(
    checked: list[_Checked], size: int | None, skipped: list[tuple[str, str]]
) -> tuple[int, list[tuple[_Triple, list[int], list[int]]]]:
    """The dataset's side (``size``, or the most common square one) and the pairs whose
    stylized image has it; the others go to ``skipped``."""
    if size is None:
        square = [shape for _, shape, _, _ in checked if shape[0] == shape[1]]
        size = int(Counter(square).most_common(1)[0][0][0]) if square else 0
    kept = []
    for triple, (height, width), content_size, style_size in checked:
        if (height, width) != (size, size):
            skipped.append(
                (
                    str(triple.stylized),
                    f"is {width}x{height}, not the dataset's {size}x{size} (--size)",
                )
            )
        else:
            kept.append((triple, content_size, style_size))
    return size, kept


def _write_pairs(
    out: Path,
    kept: list[tuple[_Triple, list[int], list[int]]],
    skipped: list[tuple[str, str]],
    record: dict[str, Any],
    size: int,
    *,
    from_pairs_file: bool,
    progress: bool,
) -> tuple[ImportSummary, set[Any], Path]:
    """Copy the pairs not yet in the shard, with their manifest lines, and list the new
    skipped files in its failures file. ``record``: the teacher fields of each line.

    Returns the summary, the keys the manifest held before, and the failures file."""
    from .writer import JsonlAppender, _now

    shard = shard_name(0, 1)
    shard_dir = out / shard
    summary = ImportSummary(out=out)
    shard_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = shard_dir / MANIFEST_FILE
    done = {r.get("key") for r in iter_jsonl(manifest_path)} if manifest_path.exists() else set()
    failures_path = shard_dir / FAILURES_FILE
    reported = (
        {r.get("path") for r in iter_jsonl(failures_path)} if failures_path.exists() else set()
    )
    with (
        JsonlAppender(manifest_path, exclusive=True) as manifest,
        JsonlAppender(failures_path) as failures,
    ):
        for path, reason in skipped:
            if path not in reported:
                role = "pairs" if from_pairs_file and ":" in Path(path).name else "stylized"
                failures.append({"path": path, "role": role, "reason": reason, "time": _now()})
                reported.add(path)
        summary.skipped = list(skipped)
        todo = [item for item in kept if item[0].key not in done]
        summary.already_there = len(kept) - len(todo)
        bar = progress_bar(total=len(todo), desc="import", unit="pair", disable=not progress)
        for triple, content_size, style_size in todo:
            target = shard_dir / f"{triple.key}.png"
            save_image(load_image(triple.stylized), target)
            manifest.append(
                {
                    "key": triple.key,
                    "content": str(triple.content),
                    "style": str(triple.style),
                    "content_rel": triple.content_rel,
                    "style_rel": triple.style_rel,
                    "output": f"{shard}/{target.name}",
                    **record,
                    "seed": record["teacher_config"].get("seed"),
                    "sizes": {"content": content_size, "style": style_size, "output": [size, size]},
                    "seconds": None,
                    "imported": {
                        "source": str(triple.stylized),
                        "sha256": sha256_file(triple.stylized),
                    },
                    "shard": shard,
                    "time": _now(),
                }
            )
            summary.imported += 1
            bar.update(1)
        bar.close()
    return summary, done, failures_path
