"""Shared low-level rules: one-line errors, the JSON copy (its NaN policy), the dtype resolver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from styledistill.errors import ConfigError
from styledistill.plumbing import first_line, jsonable
from styledistill.runtime import resolve_dtype


def test_jsonable_turns_non_finite_into_null_and_objects_into_plain_values():
    value = {
        "nan": float("nan"),
        "inf": np.float32("inf"),
        "scalar": torch.tensor(0.5),
        "count": np.int64(3),
        "flag": np.bool_(True),
        "path": Path("a/b.png"),
        "dtype": torch.float16,
        "device": torch.device("cpu"),
        "nested": (1, [2.5, float("-inf")]),
        7: "int key",
    }
    got = jsonable(value)
    assert got == {
        "nan": None,
        "inf": None,
        "scalar": 0.5,
        "count": 3,
        "flag": True,
        "path": str(Path("a/b.png")),
        "dtype": "torch.float16",
        "device": "cpu",
        "nested": [1, [2.5, None]],
        "7": "int key",
    }
    json.dumps(got, allow_nan=False)  # standard JSON, no NaN literal


def test_first_line_skips_blank_lines_and_falls_back_to_the_type():
    assert first_line(ValueError("\n  bad header \nmore detail")) == "bad header"
    assert first_line(KeyError()) == "KeyError"


def test_one_dtype_resolver_with_the_callers_default():
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu, default=torch.bfloat16) == torch.bfloat16
    assert resolve_dtype("BF16", cpu, default=torch.float32) == torch.bfloat16
    assert resolve_dtype("torch.float32", cpu, default=torch.float16) == torch.float32
    with pytest.raises(ConfigError, match="float16 is slow"):
        resolve_dtype("fp16", cpu, default=torch.float32)
    assert resolve_dtype("fp16", cpu, default=torch.float32, float16_on_cpu=True) == torch.float16
    with pytest.raises(ConfigError, match="not supported"):
        resolve_dtype(torch.float64, cpu, default=torch.float32)
    with pytest.raises(ConfigError, match="not one of"):
        resolve_dtype("int8", cpu, default=torch.float32)
