"""plumbing's shared rules: one-line errors and the JSON copy (with its NaN policy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from styledistill.plumbing import first_line, jsonable


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
