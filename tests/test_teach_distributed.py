"""``teach`` under ``torchrun --nproc_per_node=2``: each rank writes its own shard, no overlap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from styledistill.dataset import make_plan
from styledistill.images import load_image

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed next to python")
def test_two_ranks_write_disjoint_shards_covering_the_plan(make_images, tmp_path):
    contents, styles, out = tmp_path / "c", tmp_path / "s", tmp_path / "data"
    make_images(contents, 3, seed=0, prefix="c")
    make_images(styles, 3, seed=1, prefix="s")
    (styles / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    command = [
        str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "styledistill", "teach",
        "--teacher", "texture", "--size", "32", "--scales", "1", "--patch-sizes", "8",
        "--gaps", "4", "--iterations", "1", "--contents", str(contents), "--styles", str(styles),
        "--out", str(out), "--styles-per-content", "3", "--seed", "7", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "shard-00000-of-00002:" in result.stderr and "shard-00001-of-00002:" in result.stderr

    plan = make_plan(contents, styles, styles_per_content=3, seed=7)
    expected = {p.key for p in plan.pairs if "broken" not in p.style_rel}
    shards = sorted(out.glob("shard-*"))
    assert [s.name for s in shards] == ["shard-00000-of-00002", "shard-00001-of-00002"]
    per_shard = []
    for shard in shards:
        lines = [json.loads(line) for line in (shard / "manifest.jsonl").read_text().splitlines()]
        assert all(line["shard"] == shard.name for line in lines)
        assert all((shard / Path(line["output"]).name).is_file() for line in lines)
        per_shard.append({line["key"] for line in lines})
        for line in lines:
            assert tuple(load_image(out / line["output"]).shape) == (3, 32, 32)
    assert per_shard[0] and per_shard[1], "both ranks did work"
    assert not per_shard[0] & per_shard[1], "a key was written by both ranks"
    assert per_shard[0] | per_shard[1] == expected
    description = json.loads((out / "dataset.json").read_text())
    assert description["num_shards"] == 2 and description["pairs_planned"] == len(plan)
