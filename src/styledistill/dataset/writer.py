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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from .. import __version__
from ..errors import ConfigError, StyledistillError
from ..images import (
    MIN_IMAGE_SIDE,
    ImageError,
    center_crop_resize,
    load_image,
    require_finite,
    save_image,
)
from ..plumbing import atomic_path, jsonable
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
    BadLine,
    image_intact,
    iter_jsonl,
    read_dataset_json,
    record_problem,
)

if TYPE_CHECKING:  # pragma: no cover
    from tqdm import tqdm

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
    #: manifest lines of this shard that are not pair records (``file line N: reason``)
    bad_lines: list[str] = field(default_factory=list)

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
        if self.bad_lines:
            more = f" and {len(self.bad_lines) - 1} more" if len(self.bad_lines) > 1 else ""
            text += (
                f"; {len(self.bad_lines)} manifest lines are not pair records, left as they "
                f"are (first: {self.bad_lines[0]}{more})"
            )
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
    return jsonable(
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


def _manifest_keys(path: Path, bad: list[BadLine] | None = None) -> Iterator[str]:
    """The key of each complete manifest line, fast for big manifests.

    Our writer puts ``key`` first and keys are plain ASCII, so the key is sliced out
    without parsing the whole line; other lines fall back to ``json.loads`` and the
    reader's rule (:func:`record_problem`): a line that is not a pair record is not a
    finished pair, and goes to ``bad`` when given.
    """
    prefix = b'{"key":"'
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                return  # torn tail
            if raw.startswith(prefix):
                end = raw.find(b'"', len(prefix))
                if end > 0:
                    yield raw[len(prefix) : end].decode("ascii", "replace")
                    continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                problem = record_problem(record)
            except ValueError:
                record, problem = None, "not JSON"
            if problem is None:
                yield record["key"]
            elif bad is not None:
                bad.append(BadLine(path, number, problem))


def _finished_keys(
    out: Path, own_shard: Path, bad: list[BadLine] | None = None
) -> tuple[set[str], set[str]]:
    """``(finished, to_repair)``: keys finished in any shard, and own-shard keys to redo.

    A rerun with another shard count skips keys finished elsewhere too. In this
    process's own shard a key also needs its image on disk and intact; a key whose
    image is missing or corrupt goes to ``to_repair``: its image is made again and its
    existing manifest line kept (one line per key). Own-shard lines that are not pair
    records go to ``bad``.
    """
    done: set[str] = set()
    repair: set[str] = set()
    for manifest in out.glob(f"shard-*/{MANIFEST_FILE}"):
        own = manifest.parent == own_shard
        for key in _manifest_keys(manifest, bad if own else None):
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


def _checked_out(out: str | os.PathLike, plan: PairPlan) -> Path:
    """``out`` resolved; refused if it is a file or inside an input folder (a rerun would read it)."""
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    for flag, folder in (("--contents", plan.contents_dir), ("--styles", plan.styles_dir)):
        if out == folder or folder in out.parents:
            raise ConfigError(
                f"--out {out} is inside {flag} {folder}: its images would become inputs on "
                "a rerun; choose an output folder outside the input folders"
            )
    return out


@dataclass
class _ShardFolder:
    """This process's shard folder, the only place it writes.

    Every write goes through :meth:`guard`, so a full disk or a permission error stops
    the run with one :class:`DatasetWriteError` that says how many finished pairs are safe.
    """

    out: Path
    name: str
    path: Path
    manifest: JsonlAppender
    failures: JsonlAppender
    #: input paths already in failures.jsonl (a rerun does not report them twice)
    reported: set[str]
    copy_inputs: bool
    #: lines in manifest.jsonl, for the error message
    done_in_manifest: int = 0

    def guard(self, action: Callable[[], Any], path: Path) -> Any:
        """``action()``, with a write error that needs a person turned into DatasetWriteError."""
        try:
            return action()
        except OSError as exc:
            if exc.errno in _FATAL_WRITE_ERRNOS:
                raise _write_error(exc, path, self.manifest.path, self.done_in_manifest) from None
            raise

    def report_failure(self, path: Path, role: str, reason: str) -> None:
        """Log an unreadable input to failures.jsonl, once per path across reruns."""
        if str(path) in self.reported:
            return
        self.reported.add(str(path))
        record = {
            "path": str(path),
            "role": role,
            "reason": reason,
            "shard": self.name,
            "time": _now(),
        }
        self.guard(lambda: self.failures.append(record), self.failures.path)

    def copy_input(self, image: torch.Tensor, rel: str, role: str) -> str | None:
        """With ``copy_inputs``, store the preprocessed input once; its dataset-relative path."""
        if not self.copy_inputs:
            return None
        relative = f"{self.name}/inputs/{role}s/{input_id(rel)}.png"
        target = self.out / relative
        if not target.exists():
            self.guard(lambda: save_image(image, target), target)
        return relative

    def save_output(self, key: str, output: torch.Tensor) -> str:
        """Write a pair's image (atomically); its dataset-relative path."""
        target = self.path / f"{key}.png"
        self.guard(lambda: save_image(output, target), target)
        return f"{self.name}/{target.name}"

    def append_record(self, record: dict[str, Any]) -> None:
        """Append a finished pair's manifest line (after its image is on disk)."""
        self.guard(lambda: self.manifest.append(record), self.manifest.path)
        self.done_in_manifest += 1

    def write_status(self, pairs_in_shard: int, pairs_done: int, pairs_unreadable: int) -> None:
        """Record how far this run got in status.json (replaced atomically)."""
        status = {
            "shard": self.name,
            "pairs_in_shard": pairs_in_shard,
            "pairs_done": pairs_done,
            "pairs_unreadable": pairs_unreadable,
            "time": _now(),
        }
        self.guard(lambda: _write_json_atomic(self.path / STATUS_FILE, status), self.path)

    def close(self) -> None:
        self.manifest.close()
        self.failures.close()


def _open_shard(
    out: Path,
    plan: PairPlan,
    teacher: Teacher,
    *,
    num_shards: int,
    shard_index: int,
    overwrite: bool,
    copy_inputs: bool,
    warn: Callable[[str], None],
) -> _ShardFolder:
    """Make (or check) dataset.json and open this shard's folder as its only writer.

    A setup error that needs a person (disk full, no permission) stops the run with a
    one-line DatasetWriteError; leftover temp files of a killed run are removed.
    """
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
    done = sum(1 for _ in _manifest_keys(manifest_path))
    return _ShardFolder(out, name, shard_dir, manifest, failures, reported, copy_inputs, done)


@dataclass
class _Resume:
    """This shard's pairs, split into those finished by earlier runs and those still to do."""

    pairs: list[Pair]
    todo: list[Pair]
    #: own-shard keys whose manifest line exists but whose image must be made again
    to_repair: set[str]
    #: own-shard manifest lines that are not pair records (their pairs are made again)
    bad_lines: list[BadLine] = field(default_factory=list)

    @property
    def already_done(self) -> int:
        return len(self.pairs) - len(self.todo)


def _resume(plan: PairPlan, folder: _ShardFolder, num_shards: int, shard_index: int) -> _Resume:
    """What this run has to do: pairs finished in any shard are skipped."""
    pairs = plan.shard(num_shards, shard_index)
    bad: list[BadLine] = []
    finished, to_repair = _finished_keys(folder.out, folder.path, bad)
    todo = [pair for pair in pairs if pair.key not in finished]
    return _Resume(pairs, todo, to_repair, bad)


class _Pending(NamedTuple):
    """A pair whose inputs loaded, waiting for its batch."""

    pair: Pair
    content: torch.Tensor
    content_size: list[int]
    style: _StyleInput


class _Inputs:
    """Loads inputs at the teacher size; an unreadable one is reported once and skipped.

    Preprocessed contents are cached (uint8) since every content recurs once per style.
    """

    def __init__(self, folder: _ShardFolder, size: int, min_side: int) -> None:
        self.folder = folder
        self.size = size
        self.min_side = min_side
        #: unreadable inputs of this run: path -> reason
        self.bad: dict[str, str] = {}
        self.contents = _ContentCache(_CONTENT_CACHE_BYTES)

    def load(self, path: Path, role: str) -> tuple[torch.Tensor, list[int]] | None:
        """The image centre-cropped to the teacher size and its source ``[width, height]``."""
        if str(path) in self.bad:
            return None
        try:
            image = load_image(path, min_side=self.min_side)
        except (ImageError, OSError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            self.bad[str(path)] = reason
            self.folder.report_failure(path, role, reason)
            return None
        original = [int(image.shape[-1]), int(image.shape[-2])]
        return center_crop_resize(image, self.size), original

    def content(self, pair: Pair) -> tuple[torch.Tensor, list[int]] | None:
        """The pair's content (from the cache when it was loaded for an earlier style)."""
        cached = self.contents.get(pair.content_rel)
        if cached is None:
            loaded = self.load(pair.content, "content")
            if loaded is None:
                return None
            image, original = loaded
            cached = (image.mul(255).round().to(torch.uint8), original)
            self.contents.put(pair.content_rel, *cached)
        return cached[0].float().div(255), cached[1]


class _Styles:
    """Each style loaded once, prepared by the teacher at most once, and freed after its last pair."""

    def __init__(
        self, teacher: Teacher, inputs: _Inputs, folder: _ShardFolder, todo: list[Pair]
    ) -> None:
        self.teacher = teacher
        self.inputs = inputs
        self.folder = folder
        #: pairs left per style; at 0 the style is dropped (frees StyleID's K/V cache)
        self.remaining = Counter(pair.style_rel for pair in todo)
        self.loaded: dict[str, _StyleInput] = {}
        self.ready: dict[str, Any] = {}

    def get(self, pair: Pair) -> _StyleInput | None:
        """The style as the teacher sees it (loaded and checked once; prepared later)."""
        entry = self.loaded.get(pair.style_rel)
        if entry is None:
            loaded = self.inputs.load(pair.style, "style")
            if loaded is None:
                return None
            image, original = loaded
            entry = _StyleInput(
                image, original, self.folder.copy_input(image, pair.style_rel, "style")
            )
            self.loaded[pair.style_rel] = entry
        return entry

    def finish(self, pair: Pair) -> None:
        """Count a pair of this style as handled (written or skipped)."""
        self.remaining[pair.style_rel] -= 1
        if self.remaining[pair.style_rel] <= 0:
            self.loaded.pop(pair.style_rel, None)
            self.ready.pop(pair.style_rel, None)

    def for_batch(self, batch: list[_Pending]) -> list[Any]:
        """Prepared styles (or plain images) for a batch, preparing new styles together.

        A style with pairs left after this batch is prepared once and kept (StyleID:
        one inversion, K/V reused); the new ones of a batch go through the teacher's
        batched ``prepare_styles`` when it has one. A style whose pairs all sit in this
        batch is passed as an image: the teacher prepares it inside ``stylize`` (StyleID
        inverts it in the same UNet batch as the contents).
        """
        in_batch = Counter(item.pair.style_rel for item in batch)
        new = [
            rel for rel in in_batch if rel not in self.ready and self.remaining[rel] > in_batch[rel]
        ]
        if new:
            images = [self.loaded[rel].image for rel in new]
            prepare_many = getattr(self.teacher, "prepare_styles", None)
            if callable(prepare_many):
                prepared = list(prepare_many(images))
            else:
                prepared = [self.teacher.prepare_style(image) for image in images]
            self.ready.update(zip(new, prepared))
        return [self.ready.get(item.pair.style_rel, item.style.image) for item in batch]


class _BatchWriter:
    """Runs the teacher on one batch and writes each pair: its image, then its manifest line."""

    def __init__(
        self, teacher: Teacher, folder: _ShardFolder, styles: _Styles, to_repair: set[str]
    ) -> None:
        self.teacher = teacher
        self.folder = folder
        self.styles = styles
        self.to_repair = to_repair
        self.size = int(teacher.size)
        self.config = jsonable(teacher.config())
        self.model = jsonable(teacher.model_info())
        self.written = 0
        #: pairs in ``to_repair`` made again (their manifest line was already there)
        self.repaired = 0

    def write(self, batch: list[_Pending], bar: tqdm) -> None:
        """Stylize ``batch`` in one teacher call and write its pairs in order."""
        if not batch:
            return
        tick = time.perf_counter()
        outputs = self.teacher.stylize(
            torch.stack([item.content for item in batch]),
            self.styles.for_batch(batch),
            batch_size=len(batch),
            seeds=[item.pair.seed for item in batch],
        )
        share = (time.perf_counter() - tick) / len(batch)
        expected = (len(batch), 3, self.size, self.size)
        if tuple(outputs.shape) != expected:
            raise StyledistillError(
                f"teacher {self.teacher.name} returned shape {tuple(outputs.shape)}, "
                f"expected {expected}"
            )
        require_finite(  # never a black image in the dataset
            outputs, f"the {self.teacher.name} teacher's output for pair {batch[0].pair.key}"
        )
        for item, output in zip(batch, outputs):
            self._write_pair(item, output, share)
            self.styles.finish(item.pair)
            bar.update(1)

    def _write_pair(self, item: _Pending, output: torch.Tensor, seconds: float) -> None:
        """Save one output, then its manifest line (a repaired pair keeps its old line)."""
        pair, style = item.pair, item.style
        content_copy = self.folder.copy_input(item.content, pair.content_rel, "content")
        output_rel = self.folder.save_output(pair.key, output)
        record = {
            "key": pair.key,
            "content": str(pair.content),
            "style": str(pair.style),
            "content_rel": pair.content_rel,
            "style_rel": pair.style_rel,
            "output": output_rel,
            "teacher": self.teacher.name,
            "teacher_config": self.config,
            "model": self.model,
            "seed": pair.seed,
            "sizes": {
                "content": item.content_size,
                "style": style.size,
                "output": [self.size, self.size],
            },
            "seconds": round(seconds, 4),
            "shard": self.folder.name,
            "time": _now(),
        }
        if content_copy:
            record["content_input"] = content_copy
            record["style_input"] = style.copy
        if pair.key in self.to_repair:  # its line is already there: one line per key
            self.to_repair.discard(pair.key)
            self.repaired += 1
        else:
            self.folder.append_record(record)
        self.written += 1


def _progress(name: str, resume: _Resume, planned: int, show_progress: bool) -> tqdm:
    """Say where a (resumed) shard starts, and a bar over the pairs still to do."""
    if show_progress:
        print(
            f"{name}: {len(resume.pairs)} of {planned} planned pairs, "
            f"{resume.already_done} already done",
            file=sys.stderr,
        )
    return progress_bar(
        total=len(resume.todo), unit="pair", desc=name, enabled=show_progress and bool(resume.todo)
    )


def _write_pairs(
    todo: list[Pair],
    inputs: _Inputs,
    styles: _Styles,
    batches: _BatchWriter,
    bar: tqdm,
    batch_size: int,
) -> int:
    """Feed ``todo`` to the teacher in batches; the number of pairs skipped (unreadable input)."""
    failed = 0
    pending: list[_Pending] = []
    for pair in todo:
        style = styles.get(pair)
        content = inputs.content(pair) if style is not None else None
        if style is None or content is None:
            failed += 1
            styles.finish(pair)
            bar.update(1)
            bar.set_postfix(failed=failed, refresh=False)
            continue
        pending.append(_Pending(pair, content[0], content[1], style))
        if len(pending) >= batch_size:
            batches.write(pending, bar)
            pending = []
    batches.write(pending, bar)
    return failed


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
    out = _checked_out(out, plan)
    folder = _open_shard(
        out,
        plan,
        teacher,
        num_shards=num_shards,
        shard_index=shard_index,
        overwrite=overwrite,
        copy_inputs=copy_inputs,
        warn=warn,
    )
    try:  # from here on the shard's files (and its manifest lock) are closed on any failure
        resume = _resume(plan, folder, num_shards, shard_index)
        inputs = _Inputs(folder, int(teacher.size), min_side)
        shard_styles = _Styles(teacher, inputs, folder, resume.todo)
        batches = _BatchWriter(teacher, folder, shard_styles, resume.to_repair)
        started = time.perf_counter()
        bar = _progress(folder.name, resume, len(plan), show_progress)
        try:
            failed_pairs = _write_pairs(resume.todo, inputs, shard_styles, batches, bar, batch_size)
            folder.write_status(
                len(resume.pairs), resume.already_done + batches.written, failed_pairs
            )
        finally:
            bar.close()
    finally:
        folder.close()

    return TeachSummary(
        shard=folder.name,
        pairs_in_shard=len(resume.pairs),
        written=batches.written,
        already_done=resume.already_done,
        failed_inputs=len(inputs.bad),
        failed_pairs=failed_pairs,
        seconds=time.perf_counter() - started,
        out=out,
        repaired=batches.repaired,
        bad_lines=[str(line) for line in resume.bad_lines],
    )
