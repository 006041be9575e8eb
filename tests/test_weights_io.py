"""The one weights reader (``styledistill.weights_io``): its pickle policy and its refusals."""

from __future__ import annotations

import pytest
import torch

from styledistill.errors import CheckpointError
from styledistill.weights_io import read_state_dict


def test_pickles_only_when_allowed_and_then_tensors_only(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"model": {"module.a": torch.ones(2)}}, path)
    with pytest.raises(CheckpointError, match=r"weights\.pth: refusing to load a pickle"):
        read_state_dict(path)
    assert list(read_state_dict(path, allow_pickle=True)) == ["a"]  # unwrapped, unprefixed
    torch.save({"a": torch.ones(1), "step": 3}, path)
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        read_state_dict(path, allow_pickle=True)
    path.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        read_state_dict(path, allow_pickle=True)


def test_refusals_are_one_line_naming_the_file_and_the_tensor(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"good": torch.ones(2), "bad": torch.tensor([1.0, float("inf")])}, str(path))
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: tensor bad holds NaN"):
        read_state_dict(path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match=r"weights\.safetensors: corrupt") as info:
        read_state_dict(path)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="no such weights file"):
        read_state_dict(tmp_path / "missing.safetensors")
