"""Paired datasets made by a teacher: plan, shard writer, readers, and the training Dataset.

A dataset is a folder::

    dataset.json                       the plan: teacher + settings, seed, pairing, counts
    shard-00000-of-00002/
        {content}__{style}__{hash}.png one teacher output per pair, named by pair key
        manifest.jsonl                 one line per finished pair (written after its image)
        failures.jsonl                 unreadable inputs (path, role, reason), skipped
        inputs/                        preprocessed inputs, with ``teach --copy-inputs``
    shard-00001-of-00002/ ...

``PairedDataset`` (torch) is imported lazily so reading manifests needs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..plumbing import lazy_attributes
from .plan import Pair, PairPlan, make_plan, pair_key, pair_seed, shard_name
from .reader import (
    DATASET_FILE,
    FAILURES_FILE,
    MANIFEST_FILE,
    dataset_info,
    read_dataset_json,
    read_failures,
    read_manifest,
    split_keys,
)

if TYPE_CHECKING:  # pragma: no cover
    from .paired import PairedDataset
    from .writer import DatasetWriteError, TeachSummary, teach

__all__ = [
    "DATASET_FILE",
    "FAILURES_FILE",
    "MANIFEST_FILE",
    "DatasetWriteError",
    "Pair",
    "PairPlan",
    "PairedDataset",
    "TeachSummary",
    "dataset_info",
    "make_plan",
    "pair_key",
    "pair_seed",
    "read_dataset_json",
    "read_failures",
    "read_manifest",
    "shard_name",
    "split_keys",
    "teach",
]

_LAZY = {
    "PairedDataset": ".paired",
    "teach": ".writer",
    "TeachSummary": ".writer",
    "DatasetWriteError": ".writer",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
