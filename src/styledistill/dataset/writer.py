"""The shard writer: runs a teacher over its slice of the plan, atomically and resumably.

Crash safety comes from ordering, not from locks: the image is written to a temp file,
fsynced and renamed; only then is its manifest line appended (one ``write`` call) and
fsynced. So a manifest line always points at a complete image. A killed run leaves at
most an image without a line (redone on resume, overwritten atomically) or a torn last
line (cut off before the next append). Each shard writes only into its own folder, so
ranks never share a file and a crashing rank cannot damage another's shard.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError, StyledistillError
from ..images import MIN_IMAGE_SIDE, ImageError, center_crop_resize, load_image, save_image
from ..plumbing import atomic_path
from ..runtime import progress_bar
from ..teachers.base import Teacher
from .plan import Pair, PairPlan, input_id, make_plan, shard_name
from .reader import (
    DATASET_FILE,
    FAILURES_FILE,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    STATUS_FILE,
    image_intact,
    iter_jsonl,
    read_dataset_json,
)

__all__ = [
    "IDENTITY_FIELDS",
    "DatasetWriteError",
    "JsonlAppender",
    "TeachSummary",
    "shard_from_env",
    "teach",
]

#: dataset.json fields that must match for a rerun to add to an existing dataset.
IDENTITY_FIELDS = (
    "format",
    "teacher",
    "teacher_config",
    "model",
    "size",
    "seed",
    "pairs",
    "styles_per_content",
    "limit",
    "contents",
    "styles",
)
#: Write errors that stop the run (retrying cannot help until a person acts).
_FATAL_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM}
#: How many preprocessed content images (uint8) to keep in memory for reuse across styles.
_CONTENT_CACHE_BYTES = 256 * 2**20


class DatasetWriteError(StyledistillError):
    """The dataset folder cannot be written (disk full, no permission); the run stops."""

    def __init__(self, errno_code: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno_code


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class JsonlAppender:
    """Append-only JSON-lines file where every line is complete and on disk once ``append`` returns.

    Opening cuts off a torn last line (a writer killed mid-write) so the next line
    starts cleanly. A failed append (e.g. disk full) is rolled back to the last
    complete line before the error is raised.
    """

    def __init__(self, path: str | os.PathLike, *, exclusive: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if exclusive:
                self._lock()
            self._end = self._repair()
        except BaseException:
            os.close(self._fd)
            raise

    def _lock(self) -> None:
        """Refuse a second writer (the same command started twice on one shard)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{self.path} is being written by another process; run each shard once "
                "(check --num-shards/--shard-index, or wait for the other run)"
            ) from None
        except OSError:
            pass  # filesystems without locks (some NFS setups): go on unlocked

    def _repair(self) -> int:
        end = 0
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                end += len(raw)
        if os.fstat(self._fd).st_size != end:
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        return end

    def append(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, self._end)
            except OSError:
                pass  # the next open cuts the torn line off anyway
            raise
        self._end += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class TeachSummary:
    """What one shard run did."""

    shard: str
    pairs_in_shard: int
    written: int
    already_done: int
    failed_inputs: int
    failed_pairs: int
    seconds: float
    out: Path
    #: pairs whose image was missing or corrupt and was made again (counted in ``written``)
    repaired: int = 0

    @property
    def complete(self) -> bool:
        return self.written + self.already_done + self.failed_pairs == self.pairs_in_shard

    def line(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"{self.shard}: {self.written} pairs written, {self.already_done} already done, "
            f"{self.failed_inputs} inputs unreadable ({self.failed_pairs} pairs skipped)"
        )
        if self.failed_inputs:
            text += f" -> {self.out / self.shard / FAILURES_FILE}"
        if self.repaired:
            text += f"; {self.repaired} missing or corrupt images made again"
        return text + f"; {self.seconds:.1f} s ({rate:.2f} pairs/s)"


def shard_from_env(
    num_shards: int | None = None, shard_index: int | None = None
) -> tuple[int, int]:
    """``(count, index)`` of this process's shard.

    torchrun sets ``WORLD_SIZE``/``RANK``; a Slurm array passes ``--num-shards`` and
    ``--shard-index``. Both together (an array of torchrun jobs) make
    ``num_shards * WORLD_SIZE`` shards, this process taking
    ``shard_index * WORLD_SIZE + RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    if (num_shards is None) != (shard_index is None):
        raise ConfigError("--num-shards and --shard-index go together")
    if num_shards is None:
        num_shards, shard_index = 1, 0
    assert shard_index is not None
    if num_shards < 1:
        raise ConfigError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ConfigError(f"--shard-index {shard_index} is outside 0..{num_shards - 1}")
    if not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world})")
    return num_shards * world, shard_index * world + rank


def _describe(plan: PairPlan, teacher: Teacher, num_shards: int) -> dict[str, Any]:
    return _jsonable(
        {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "teacher": teacher.name,
            "teacher_config": teacher.config(),
            "model": teacher.model_info(),
            "size": int(teacher.size),
            "seed": plan.seed,
            "pairs": plan.mode,
            "styles_per_content": plan.styles_per_content,
            "limit": plan.limit,
            "contents": str(plan.contents_dir),
            "styles": str(plan.styles_dir),
            "num_contents": plan.num_contents,
            "num_styles": plan.num_styles,
            "pairs_planned": len(plan),
            "plan_fingerprint": plan.fingerprint(),
            "num_shards": num_shards,
            "created": _now(),
            "styledistill_version": __version__,
        }
    )


def _first_difference(old: Any, new: Any, prefix: str) -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = _first_difference(old.get(key), new.get(key), f"{prefix}.{key}")
            if found:
                return found
        return None
    if old != new:
        return f"{prefix} was {json.dumps(old)}, now {json.dumps(new)}"
    return None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _clear_dataset(out: Path) -> None:
    import shutil

    for shard in out.glob("shard-*"):
        if shard.is_dir():
            shutil.rmtree(shard)
    (out / DATASET_FILE).unlink(missing_ok=True)


def _prepare_dataset_json(
    out: Path,
    description: dict[str, Any],
    shard_index: int,
    overwrite: bool,
    warn: Callable[[str], None],
) -> None:
    """Create dataset.json, or check that the existing one describes the same dataset."""
    existing = read_dataset_json(out)
    if existing:
        for field in IDENTITY_FIELDS:
            difference = _first_difference(existing.get(field), description.get(field), field)
            if difference:
                if not overwrite:
                    raise ConfigError(
                        f"--out {out} already holds a different dataset ({difference}); "
                        "use another --out, or --overwrite to delete it and start over"
                    )
                if description["num_shards"] > 1:
                    raise ConfigError(
                        f"--overwrite of {out} needs a single-process run (this one has "
                        f"{description['num_shards']} shards); delete the folder first"
                    )
                _clear_dataset(out)
                existing = {}
                break
    if existing:
        if existing.get("plan_fingerprint") != description["plan_fingerprint"]:
            warn(
                f"the input folders changed since {out / DATASET_FILE} was written: the plan "
                f"now has {description['pairs_planned']} pairs (was {existing.get('pairs_planned')})"
            )
        changed = any(
            existing.get(k) != description[k]
            for k in (
                "pairs_planned",
                "plan_fingerprint",
                "num_shards",
                "num_contents",
                "num_styles",
            )
        )
        if changed and shard_index == 0:
            _write_json_atomic(
                out / DATASET_FILE, {**description, "created": existing.get("created")}
            )
        return
    _write_json_atomic(out / DATASET_FILE, description)


def _manifest_keys(path: Path) -> Iterator[str]:
    """The key of each complete manifest line, fast for big manifests.

    Our writer puts ``key`` first and keys are plain ASCII, so the key is sliced out
    without parsing the whole line; other lines fall back to ``json.loads``.
    """
    prefix = b'{"key":"'
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return  # torn tail
            if raw.startswith(prefix):
                end = raw.find(b'"', len(prefix))
                if end > 0:
                    yield raw[len(prefix) : end].decode("ascii", "replace")
                    continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                yield record["key"]


def _finished_keys(out: Path, own_shard: Path) -> tuple[set[str], set[str]]:
    """``(finished, to_repair)``: keys finished in any shard, and own-shard keys to redo.

    A rerun with another shard count skips keys finished elsewhere too. In this
    process's own shard a key also needs its image on disk and intact; a key whose
    image is missing or corrupt goes to ``to_repair``: its image is made again and its
    existing manifest line kept (one line per key).
    """
    done: set[str] = set()
    repair: set[str] = set()
    for manifest in out.glob(f"shard-*/{MANIFEST_FILE}"):
        own = manifest.parent == own_shard
        for key in _manifest_keys(manifest):
            if not own:
                done.add(key)
            elif key not in done and key not in repair:
                (done if image_intact(own_shard / f"{key}.png") else repair).add(key)
    repair -= done  # finished intact in another shard
    return done, repair


def _remove_stale_temp_files(folder: Path) -> None:
    for leftover in folder.rglob(".*.tmp"):
        try:
            leftover.unlink()
        except OSError:
            pass


@dataclass
class _StyleInput:
    """A checked style image at the teacher size, its source size and its copy (if any)."""

    image: Any
    size: list[int]
    copy: str | None


class _ContentCache:
    """Recently used preprocessed contents (uint8), reused across the styles of a shard."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: OrderedDict[str, tuple[Any, list[int]]] = OrderedDict()
        self.bytes = 0

    def get(self, key: str):
        item = self.items.get(key)
        if item is not None:
            self.items.move_to_end(key)
        return item

    def put(self, key: str, image_u8: Any, size: list[int]) -> None:
        self.items[key] = (image_u8, size)
        self.bytes += image_u8.numel()
        while self.bytes > self.max_bytes and len(self.items) > 1:
            _, (old, _) = self.items.popitem(last=False)
            self.bytes -= old.numel()


def _write_error(exc: OSError, path: Path, manifest: Path, done: int) -> DatasetWriteError:
    reason = exc.strerror or os.strerror(exc.errno or 0)
    kept = f"the {done} finished pairs in {manifest} are intact; " if done else ""
    return DatasetWriteError(
        exc.errno or 0,
        f"cannot write {path}: {reason}; {kept}"
        "free space or fix permissions, then rerun the same command to resume",
    )


def teach(
    teacher: Teacher,
    contents: str | os.PathLike,
    styles: str | os.PathLike,
    out: str | os.PathLike,
    *,
    styles_per_content: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 1,
    num_shards: int = 1,
    shard_index: int = 0,
    copy_inputs: bool = False,
    min_side: int = MIN_IMAGE_SIDE,
    overwrite: bool = False,
    show_progress: bool = True,
    warn: Callable[[str], None] | None = None,
    plan: PairPlan | None = None,
) -> TeachSummary:
    """Run ``teacher`` over this shard's slice of the pair plan and write the results.

    Makes (or checks) ``out/dataset.json``, then writes ``out/shard-IIIII-of-NNNNN/``:
    ``{key}.png`` per pair, ``manifest.jsonl`` (one line per finished pair) and
    ``failures.jsonl`` (unreadable inputs, skipped). Pairs finished in any shard are
    skipped, so rerunning the same command resumes. ``copy_inputs`` also stores the
    preprocessed content/style under ``inputs/`` so the dataset stands alone.
    ``plan`` (from :func:`make_plan` with the same arguments) saves listing the folders
    again when the caller already checked them.
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    if plan is None:
        plan = make_plan(
            contents, styles, styles_per_content=styles_per_content, limit=limit, seed=seed
        )
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    for flag, folder in (("--contents", plan.contents_dir), ("--styles", plan.styles_dir)):
        if out == folder or folder in out.parents:
            raise ConfigError(
                f"--out {out} is inside {flag} {folder}: its images would become inputs on "
                "a rerun; choose an output folder outside the input folders"
            )
    name = shard_name(shard_index, num_shards)
    shard_dir = out / name
    manifest_path = shard_dir / MANIFEST_FILE
    try:
        out.mkdir(parents=True, exist_ok=True)
        _prepare_dataset_json(
            out, _describe(plan, teacher, num_shards), shard_index, overwrite, warn
        )
        shard_dir.mkdir(exist_ok=True)
        failures_path = shard_dir / FAILURES_FILE
        reported = (
            {str(r.get("path")) for r in iter_jsonl(failures_path)}
            if failures_path.exists()
            else set()
        )
        manifest = JsonlAppender(manifest_path, exclusive=True)
        _remove_stale_temp_files(shard_dir)  # only now: no other writer is using them
        failures = JsonlAppender(failures_path)
    except OSError as exc:
        if exc.errno in _FATAL_WRITE_ERRNOS:
            raise _write_error(exc, Path(exc.filename or out), manifest_path, 0) from None
        raise

    shard_pairs = plan.shard(num_shards, shard_index)
    finished, to_repair = _finished_keys(out, shard_dir)
    todo = [pair for pair in shard_pairs if pair.key not in finished]
    already_done = len(shard_pairs) - len(todo)
    repaired = 0
    done_in_manifest = sum(1 for _ in _manifest_keys(manifest_path))
    remaining = Counter(pair.style_rel for pair in todo)

    import torch

    size = int(teacher.size)
    config = _jsonable(teacher.config())
    model = _jsonable(teacher.model_info())
    cache = _ContentCache(_CONTENT_CACHE_BYTES)
    bad_inputs: dict[str, str] = {}
    style_inputs: dict[str, _StyleInput] = {}
    styles_ready: dict[str, Any] = {}
    written = failed_pairs = 0
    started = time.perf_counter()
    if show_progress:
        print(
            f"{name}: {len(shard_pairs)} of {len(plan)} planned pairs, {already_done} already done",
            file=sys.stderr,
        )
    bar = progress_bar(
        total=len(todo), unit="pair", desc=name, enabled=show_progress and bool(todo)
    )

    def write_or_stop(action: Callable[[], Any], path: Path) -> Any:
        try:
            return action()
        except OSError as exc:
            if exc.errno in _FATAL_WRITE_ERRNOS:
                raise _write_error(exc, path, manifest_path, done_in_manifest) from None
            raise

    def report(path: Path, role: str, reason: str) -> None:
        bad_inputs[str(path)] = reason
        if str(path) in reported:
            return
        reported.add(str(path))
        record = {"path": str(path), "role": role, "reason": reason, "shard": name, "time": _now()}
        write_or_stop(lambda: failures.append(record), failures_path)

    def load(path: Path, role: str) -> tuple[Any, list[int]] | None:
        if str(path) in bad_inputs:
            return None
        try:
            image = load_image(path, min_side=min_side)
        except (ImageError, OSError) as exc:
            report(path, role, getattr(exc, "reason", None) or str(exc))
            return None
        original = [int(image.shape[-1]), int(image.shape[-2])]
        return center_crop_resize(image, size), original

    def copy_input(image: Any, rel: str, role: str) -> str | None:
        if not copy_inputs:
            return None
        relative = f"{name}/inputs/{role}s/{input_id(rel)}.png"
        target = out / relative
        if not target.exists():
            write_or_stop(lambda: save_image(image, target), target)
        return relative

    def style_for(pair: Pair) -> _StyleInput | None:
        """The style as the teacher sees it (loaded and checked once; prepared later)."""
        entry = style_inputs.get(pair.style_rel)
        if entry is None:
            loaded = load(pair.style, "style")
            if loaded is None:
                return None
            image, original = loaded
            entry = _StyleInput(image, original, copy_input(image, pair.style_rel, "style"))
            style_inputs[pair.style_rel] = entry
        return entry

    def content_for(pair: Pair) -> tuple[Any, list[int]] | None:
        cached = cache.get(pair.content_rel)
        if cached is None:
            loaded = load(pair.content, "content")
            if loaded is None:
                return None
            image, original = loaded
            cached = (image.mul(255).round().to(torch.uint8), original)
            cache.put(pair.content_rel, *cached)
        return cached[0].float().div(255), cached[1]

    def finish_style(pair: Pair) -> None:
        remaining[pair.style_rel] -= 1
        if remaining[pair.style_rel] <= 0:
            style_inputs.pop(pair.style_rel, None)
            styles_ready.pop(pair.style_rel, None)  # free StyleID's K/V cache

    def styles_for_batch(batch: list[tuple[Pair, Any, list[int], _StyleInput]]) -> list[Any]:
        """Prepared styles (or plain images) for a batch, preparing new styles together.

        A style with pairs left after this batch is prepared once and kept (StyleID:
        one inversion, K/V reused); the new ones of a batch go through the teacher's
        batched ``prepare_styles`` when it has one. A style whose pairs all sit in this
        batch is passed as an image: the teacher prepares it inside ``stylize`` (StyleID
        inverts it in the same UNet batch as the contents).
        """
        in_batch = Counter(item[0].style_rel for item in batch)
        new = [
            rel for rel in in_batch if rel not in styles_ready and remaining[rel] > in_batch[rel]
        ]
        if new:
            images = [style_inputs[rel].image for rel in new]
            prepare_many = getattr(teacher, "prepare_styles", None)
            if callable(prepare_many):
                prepared = list(prepare_many(images))
            else:
                prepared = [teacher.prepare_style(image) for image in images]
            styles_ready.update(zip(new, prepared))
        return [styles_ready.get(item[0].style_rel, item[3].image) for item in batch]

    try:
        pending: list[tuple[Pair, Any, list[int], _StyleInput]] = []

        def run_batch() -> None:
            nonlocal written, done_in_manifest, repaired
            if not pending:
                return
            tick = time.perf_counter()
            outputs = teacher.stylize(
                torch.stack([item[1] for item in pending]),
                styles_for_batch(pending),
                batch_size=len(pending),
                seeds=[item[0].seed for item in pending],
            )
            share = (time.perf_counter() - tick) / len(pending)
            if tuple(outputs.shape) != (len(pending), 3, size, size):
                raise StyledistillError(
                    f"teacher {teacher.name} returned shape {tuple(outputs.shape)}, "
                    f"expected {(len(pending), 3, size, size)}"
                )
            for (pair, content, content_size, style), output in zip(pending, outputs):
                content_copy = copy_input(content, pair.content_rel, "content")
                target = shard_dir / f"{pair.key}.png"
                write_or_stop(lambda t=target, o=output: save_image(o, t), target)
                record = {
                    "key": pair.key,
                    "content": str(pair.content),
                    "style": str(pair.style),
                    "content_rel": pair.content_rel,
                    "style_rel": pair.style_rel,
                    "output": f"{name}/{target.name}",
                    "teacher": teacher.name,
                    "teacher_config": config,
                    "model": model,
                    "seed": pair.seed,
                    "sizes": {"content": content_size, "style": style.size, "output": [size, size]},
                    "seconds": round(share, 4),
                    "shard": name,
                    "time": _now(),
                }
                if content_copy:
                    record["content_input"] = content_copy
                    record["style_input"] = style.copy
                if pair.key in to_repair:  # its line is already there: one line per key
                    to_repair.discard(pair.key)
                    repaired += 1
                else:
                    write_or_stop(lambda r=record: manifest.append(r), manifest_path)
                    done_in_manifest += 1
                written += 1
                finish_style(pair)
                bar.update(1)
            pending.clear()

        for pair in todo:
            style = style_for(pair)
            content = content_for(pair) if style is not None else None
            if style is None or content is None:
                failed_pairs += 1
                finish_style(pair)
                bar.update(1)
                bar.set_postfix(failed=failed_pairs, refresh=False)
                continue
            pending.append((pair, content[0], content[1], style))
            if len(pending) >= batch_size:
                run_batch()
        run_batch()
        status = {
            "shard": name,
            "pairs_in_shard": len(shard_pairs),
            "pairs_done": already_done + written,
            "pairs_unreadable": failed_pairs,
            "time": _now(),
        }
        write_or_stop(lambda: _write_json_atomic(shard_dir / STATUS_FILE, status), shard_dir)
    finally:
        bar.close()
        manifest.close()
        failures.close()

    return TeachSummary(
        shard=name,
        pairs_in_shard=len(shard_pairs),
        written=written,
        already_done=already_done,
        failed_inputs=len(bad_inputs),
        failed_pairs=failed_pairs,
        seconds=time.perf_counter() - started,
        out=out,
        repaired=repaired,
    )
