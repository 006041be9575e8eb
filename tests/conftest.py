"""Shared fixtures: small deterministic images made by the tests themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture
def smooth_image() -> torch.Tensor:
    """A smooth 48x64 RGB gradient image ``[3, 48, 64]`` in [0, 1] (no randomness)."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    return torch.stack([xs, ys, 0.5 * (xs + ys)]).contiguous()


@pytest.fixture
def noise_image() -> torch.Tensor:
    """A seeded random 64x64 RGB image ``[3, 64, 64]`` in [0, 1]."""
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.uniform(0, 1, (3, 64, 64)).astype(np.float32))
