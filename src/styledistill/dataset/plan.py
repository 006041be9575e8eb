"""The pair plan: which content goes with which style, deterministic from a seed.

A plan is a pure function of (the file lists of the two folders, the pairing mode, the
limit, the seed). Every rank of a multi-GPU run builds the same plan on its own and
takes its slice of it, so no communication is needed.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

__all__ = [
    "Pair",
    "PairPlan",
    "input_id",
    "make_plan",
    "pair_key",
    "pair_seed",
    "shard_name",
    "shard_slice",
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Longest stem kept in a key, so keys stay well below filesystem name limits.
_STEM_CHARS = 40


def _safe_stem(rel_path: str) -> str:
    stem = Path(rel_path).stem
    stem = _UNSAFE.sub("_", stem).strip("._") or "image"
    return stem[:_STEM_CHARS]


def _short_hash(*parts: str, length: int = 8) -> str:
    digest = hashlib.sha1("\n".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


def pair_key(content_rel: str, style_rel: str) -> str:
    """Stable, filesystem-safe pair name: ``{content}__{style}__{hash}``.

    The hash of both relative paths keeps keys unique when stems repeat in
    sub-folders (``a/x.jpg`` and ``b/x.jpg``) or differ only in unsafe characters.
    """
    return (
        f"{_safe_stem(content_rel)}__{_safe_stem(style_rel)}__{_short_hash(content_rel, style_rel)}"
    )


def input_id(rel_path: str) -> str:
    """Stable, filesystem-safe name of one input image (for ``--copy-inputs``)."""
    return f"{_safe_stem(rel_path)}-{_short_hash(rel_path)}"


def pair_seed(seed: int, key: str) -> int:
    """Per-pair seed from the global seed and the key: independent of order and batching."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def shard_name(index: int, count: int) -> str:
    """Folder name of one shard, e.g. ``shard-00003-of-00008``."""
    return f"shard-{index:05d}-of-{count:05d}"


@dataclass(frozen=True)
class Pair:
    """One planned (content, style) pair. ``*_rel`` are POSIX paths inside the input folders."""

    key: str
    content: Path
    style: Path
    content_rel: str
    style_rel: str
    seed: int


@dataclass
class PairPlan:
    """The full plan, style-major: pairs sorted by style, then content.

    Style-major order lets a shard prepare each style once (StyleID: one DDIM
    inversion and one K/V cache per style) and reuse it for all its contents.
    """

    contents_dir: Path
    styles_dir: Path
    pairs: list[Pair]
    mode: str  # "all" or "per-content"
    styles_per_content: int | None
    limit: int | None
    seed: int
    num_contents: int
    num_styles: int
    _fingerprint: str | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.pairs)

    def fingerprint(self) -> str:
        """Hash of the planned keys: changes when the input folders change."""
        if self._fingerprint is None:
            h = hashlib.sha1()
            for pair in self.pairs:
                h.update(pair.key.encode())
                h.update(b"\n")
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def shard(self, num_shards: int, index: int) -> list[Pair]:
        """The pairs of shard ``index`` (a contiguous slice of the style-major order)."""
        start, stop = shard_slice(len(self.pairs), num_shards, index)
        return self.pairs[start:stop]


def shard_slice(total: int, num_shards: int, index: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``index`` when ``total`` items split into equal slices.

    Contiguous slices of the style-major plan keep each style in one or two shards
    (so it is prepared once or twice), while every shard gets the same amount of work.
    """
    if num_shards < 1:
        raise ConfigError(f"number of shards must be >= 1, got {num_shards}")
    if not 0 <= index < num_shards:
        raise ConfigError(f"shard index {index} is outside 0..{num_shards - 1}")
    return total * index // num_shards, total * (index + 1) // num_shards


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def make_plan(
    contents_dir: str | os.PathLike,
    styles_dir: str | os.PathLike,
    *,
    styles_per_content: int | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> PairPlan:
    """Plan the pairs: all contents x all styles, or ``styles_per_content`` random styles each.

    The random choice of styles for a content depends only on the seed and that
    content's relative path, so adding images to a folder does not reshuffle the
    other contents. ``limit`` keeps a seeded random subset of that many pairs (not
    the first ones, so a small run still covers many contents and styles).
    """
    from ..images import ImageError, list_images

    contents_root = Path(contents_dir).expanduser().resolve()
    styles_root = Path(styles_dir).expanduser().resolve()
    try:
        contents = list_images(contents_root)
    except ImageError as exc:
        raise ConfigError(f"--contents {contents_dir}: {exc.reason}") from None
    try:
        styles = list_images(styles_root)
    except ImageError as exc:
        raise ConfigError(f"--styles {styles_dir}: {exc.reason}") from None
    if not contents:
        raise ConfigError(f"--contents {contents_dir}: no image files found")
    if not styles:
        raise ConfigError(f"--styles {styles_dir}: no image files found")
    if styles_per_content is not None and styles_per_content < 1:
        raise ConfigError(f"--styles-per-content must be >= 1, got {styles_per_content}")
    if styles_per_content is not None and styles_per_content > len(styles):
        raise ConfigError(
            f"--styles-per-content {styles_per_content} is more than the {len(styles)} "
            f"style images in {styles_dir}"
        )
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")

    style_items = [(path, _relative(path, styles_root)) for path in styles]
    combos: list[tuple[Path, str, Path, str]] = []
    for content in contents:
        content_rel = _relative(content, contents_root)
        if styles_per_content is None:
            chosen = style_items
        else:
            rng = random.Random(f"{seed}:{content_rel}")
            chosen = rng.sample(style_items, styles_per_content)
        combos.extend((content, content_rel, style, style_rel) for style, style_rel in chosen)

    if limit is not None and limit < len(combos):
        order = sorted(combos, key=lambda c: (c[3], c[1]))
        random.Random(seed).shuffle(order)
        combos = order[:limit]

    combos.sort(key=lambda c: (c[3], c[1]))  # style-major
    pairs = []
    for content, content_rel, style, style_rel in combos:
        key = pair_key(content_rel, style_rel)
        pairs.append(Pair(key, content, style, content_rel, style_rel, pair_seed(seed, key)))
    return PairPlan(
        contents_dir=contents_root,
        styles_dir=styles_root,
        pairs=pairs,
        mode="all" if styles_per_content is None else "per-content",
        styles_per_content=styles_per_content,
        limit=limit,
        seed=seed,
        num_contents=len(contents),
        num_styles=len(styles),
    )
