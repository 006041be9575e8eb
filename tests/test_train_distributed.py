"""Two-process ``torchrun`` (Gloo, CPU): the DDP path finishes and the ranks agree."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from test_train import make_dataset  # the tiny dataset builder of the single-process tests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_torchrun_gives_identical_weights(tmp_path):
    from styledistill.train import latest_checkpoint, load_checkpoint

    data = make_dataset(tmp_path / "inputs", contents=3, styles=4)
    run = tmp_path / "run"
    script = tmp_path / "ddp_train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            import torch
            torch.set_num_threads(1)
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_train import tiny_config
            from styledistill.train import train
            # batch 2 per rank x 2 ranks; dropout on, so the ranks' RNG streams differ
            config = tiny_config({str(data)!r}, {str(run)!r}, steps=4, batch_size=2,
                                 save_every=2, eval_every=2, grad_accum=2)
            config.model_overrides["dropout"] = 0.1
            train(config)
            """
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        str(script),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    start = next(r for r in records if r["type"] == "start")
    end = next(r for r in records if r["type"] == "end")
    assert start["world_size"] == 2
    hashes = end["rank_weight_hashes"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    checkpoint = load_checkpoint(latest_checkpoint(run))
    assert checkpoint["state"]["world_size"] == 2
    # one RNG state per rank, and they differ (per-rank dropout streams)
    rng = checkpoint["state"]["rng"]
    assert len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])
    assert (run / "student" / "model.safetensors").is_file()
