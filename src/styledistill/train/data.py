"""Training data whose order and augmentation are pure functions of the seed.

Data order depends on (seed, epoch) and each sample's random crop/flip on (seed, epoch,
index), so a resumed run sees the batches an uninterrupted one would, whatever the worker
count. Validation pairs are held out by content and by style (``dataset.split_keys``),
so the reported scores include styles the student never saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .config import TrainConfig
from .distributed import Dist
from .rng import seeded


class EpochSeeded(torch.utils.data.Dataset):
    """Makes each item's random augmentation a function of (seed, epoch, index).

    Then the data a step sees does not depend on worker count or on where a resumed
    run restarted inside an epoch.
    """

    def __init__(self, base: torch.utils.data.Dataset, seed: int) -> None:
        self.base = base
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        digest = hashlib.blake2b(f"{self.seed}:{self.epoch}:{index}".encode(), digest_size=8)
        with seeded(int.from_bytes(digest.digest(), "big") & 0x7FFF_FFFF_FFFF):
            return self.base[index]


@dataclass
class TrainingData:
    """The training pairs (per rank), the scored validation pairs and their groups."""

    train_set: EpochSeeded
    #: The scored validation pairs (a PairedDataset; unreadable pairs left out).
    val_set: Any
    #: Group of each scored pair: unseen_content, unseen_style or unseen_both.
    val_groups: list[str]
    #: Micro-batches per epoch on each rank.
    per_epoch: int
    train_pairs: int
    val_pairs: int
    val_scored: int


def load_training_data(
    config: TrainConfig, data_dir: Path, dist: Dist, *, style_size: int
) -> TrainingData:
    """Split the dataset and open both sides; styles load at ``style_size`` (the student's)."""
    from ..dataset.paired import PairedDataset

    val_dir = Path(config.val_data) if config.val_data else data_dir
    if config.val_data:
        train_keys, val_keys, groups = split_by_dataset(data_dir, val_dir)
    else:
        train_keys, val_keys, groups = split(data_dir, config.val_fraction, config.seed)
    augment = (
        {"crop_scale": tuple(config.crop_scale)}
        if config.augment
        else {"crop_scale": (1.0, 1.0), "flip": False}
    )
    train_set = EpochSeeded(
        PairedDataset(
            data_dir,
            size=config.size,
            train=True,
            keys=train_keys,
            style_size=style_size,
            **augment,
        ),
        config.seed,
    )
    per_rank = len(train_set) // dist.world_size
    per_epoch = per_rank // config.batch_size
    if per_epoch < 1:
        raise ConfigError(
            f"{data_dir}: {len(train_set)} training pairs over {dist.world_size} process(es) "
            f"give fewer than one batch of {config.batch_size}; lower --batch-size"
        )
    eval_keys = spread(val_keys, config.val_max_pairs)
    val_set = PairedDataset(
        val_dir, size=config.size, train=False, keys=eval_keys, style_size=style_size
    )
    return TrainingData(
        train_set=train_set,
        val_set=val_set,
        val_groups=[groups[k] for k in val_set.keys],  # unreadable pairs were left out
        per_epoch=per_epoch,
        train_pairs=len(train_keys),
        val_pairs=len(val_keys),
        val_scored=len(eval_keys),
    )


def epoch_indices(n: int, *, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """This rank's sample order for an epoch: DistributedSampler's order (shuffle, drop tail)."""
    sampler = torch.utils.data.DistributedSampler(
        range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return list(sampler)


def micro_batches(
    dataset: EpochSeeded,
    *,
    start_micro: int,
    per_epoch: int,
    config: TrainConfig,
    dist: Dist,
    pin_memory: bool,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Micro-batches forever, starting at global micro-batch ``start_micro``."""
    micro = start_micro
    while True:
        epoch, skip = divmod(micro, per_epoch)
        dataset.epoch = epoch
        indices = epoch_indices(
            len(dataset), seed=config.seed, epoch=epoch, rank=dist.rank, world=dist.world_size
        )
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=indices[skip * config.batch_size :],
            num_workers=config.num_workers,
            drop_last=True,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(config.seed + epoch),
        )
        for batch in loader:
            yield batch
            micro += 1


def fixed_batches(
    items: EpochSeeded, *, seed: int, count: int, batch_size: int, salt: int
) -> list[tuple[torch.Tensor, ...]]:
    """``count`` batches of ``items`` chosen by the seed alone (the same on every rank)."""
    generator = torch.Generator().manual_seed(seed * 1000 + salt)
    order = torch.randperm(len(items), generator=generator).tolist()
    batches = []
    for b in range(count):
        picked = [order[(b * batch_size + i) % len(order)] for i in range(batch_size)]
        batches.append(tuple(torch.stack(t) for t in zip(*(items[i] for i in picked))))
    return batches


def _ids(record: dict[str, Any]) -> tuple[str, str]:
    return (
        str(record.get("content_rel") or record.get("content")),
        str(record.get("style_rel") or record.get("style")),
    )


def _groups(
    train_records: list[dict[str, Any]], val_records: list[dict[str, Any]]
) -> dict[str, str]:
    """Each validation pair's group, by what the training pairs hold."""
    seen_contents = {_ids(r)[0] for r in train_records}
    seen_styles = {_ids(r)[1] for r in train_records}
    groups = {}
    for record in val_records:
        content, style = _ids(record)
        new_content, new_style = content not in seen_contents, style not in seen_styles
        groups[record["key"]] = (
            "unseen_both"
            if new_content and new_style
            else "unseen_style"
            if new_style
            else "unseen_content"
            if new_content
            else "seen"
        )
    return groups


def split_by_dataset(data: Path, val_data: Path) -> tuple[list[str], list[str], dict[str, str]]:
    """Every pair of ``data`` trains; every pair of ``val_data`` validates."""
    from ..dataset.reader import read_manifest

    train_records, val_records = read_manifest(data), read_manifest(val_data)
    if not train_records:
        raise ConfigError(f"{data}: the dataset has no finished pairs")
    if not val_records:
        raise ConfigError(f"--val-data {val_data}: the dataset has no finished pairs")
    groups = _groups(train_records, val_records)
    return [r["key"] for r in train_records], [r["key"] for r in val_records], groups


def split(
    data: Path, val_fraction: float, seed: int
) -> tuple[list[str], list[str], dict[str, str]]:
    """(train keys, val keys, val key -> group) with groups by what the student has seen."""
    from ..dataset.reader import read_manifest, split_keys

    records = read_manifest(data)
    if not records:
        raise ConfigError(f"{data}: the dataset has no finished pairs")
    train_keys, val_keys = split_keys(records, val_fraction, seed=seed)
    if not train_keys or not val_keys:
        raise ConfigError(
            f"{data}: {len(records)} pairs cannot be split into training and validation "
            f"with val-fraction {val_fraction}; make a dataset with more contents and styles"
        )
    by_key = {r["key"]: r for r in records}
    groups = _groups([by_key[k] for k in train_keys], [by_key[k] for k in val_keys])
    return train_keys, val_keys, groups


def spread(items: Sequence[str], count: int) -> list[str]:
    """At most ``count`` items evenly spread over ``items`` (deterministic)."""
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
