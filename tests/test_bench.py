"""``bench`` on tiny settings: the JSON layout, the ratio, the plot, the CLI (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from conftest import TINY_TEXTURE
from styledistill.benchmark import (
    BenchSettings,
    format_table,
    machine_info,
    run_benchmark,
    write_bench,
)
from styledistill.cli import main
from styledistill.errors import ConfigError


def test_run_benchmark_writes_json_and_plot(student_config, tmp_path):
    report = run_benchmark(
        BenchSettings(
            presets=["sttr-small"],
            preset_overrides=student_config(),  # conftest.py
            teacher="texture",
            teacher_options=TINY_TEXTURE,
            sizes=[32, 64],
            teacher_sizes=[32],
            batch_sizes=[1, 2],
            device="cpu",
            repeats=2,
            warmup=0,
            teacher_repeats=1,
            teacher_warmup=0,
            progress=False,
        )
    )
    rows = report["results"]
    assert [(r["model"], r["size"], r["batch_size"]) for r in rows] == [
        ("sttr-small", 32, 1),
        ("sttr-small", 32, 2),
        ("sttr-small", 64, 1),
        ("sttr-small", 64, 2),
        ("texture", 32, 1),
    ]
    for row in rows:
        latency = row["latency_ms"]
        assert (
            latency["min"] <= latency["q1"] <= latency["median"] <= latency["q3"] <= latency["max"]
        )
        assert latency["runs"] == (2 if row["kind"] == "student" else 1)
        # throughput is the batch over the median batch time: 1000 / median per-image ms
        assert row["images_per_second"] == pytest.approx(1000.0 / latency["median"], rel=1e-9)
        assert row["peak_memory_mb"] is None or row["peak_memory_mb"] > 0
    assert report["ratios"] == [
        {
            "student": "sttr-small",
            "teacher": "texture",
            "size": 32,
            "teacher_over_student": pytest.approx(
                rows[4]["latency_ms"]["median"] / rows[0]["latency_ms"]["median"]
            ),
        }
    ]
    assert report["subjects"]["sttr-small"]["weights"].startswith("random")
    table = format_table(report)
    assert report["machine"]["device_name"] in table and "teacher / student" in table

    paths = write_bench(report, tmp_path / "bench")
    assert json.loads(paths["json"].read_text())["results"][0]["model"] == "sttr-small"
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_cli_students_only(student_config, tmp_path, capsys):
    tiny = [f"--preset-option={k}={json.dumps(v)}" for k, v in student_config().items()]
    args = [
        "bench", "--presets", "sttr-small", "--teacher", "none", "--sizes", "32",
        "--batch-sizes", "1", "--repeats", "1", "--warmup", "0", "--device", "cpu", "--quiet",
        "--out", str(tmp_path), *tiny,
    ]  # fmt: skip
    code = main(args)
    assert code == 0
    printed = capsys.readouterr().out
    assert "sttr-small" in printed and "machine:" in printed
    assert (tmp_path / "bench.json").is_file() and (tmp_path / "bench.png").is_file()


def test_bench_rejects_bad_settings(capsys):
    assert main(["bench", "--sizes", "256,abc", "--device", "cpu"]) == 2
    assert "--sizes '256,abc'" in capsys.readouterr().err
    assert main(["bench", "--half", "--device", "cpu", "--sizes", "32"]) == 2
    assert "--half needs a CUDA device" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown STTR preset"):
        run_benchmark(BenchSettings(presets=["nope"], teacher=None, sizes=[32], device="cpu"))


def test_machine_info_names_the_cpu():
    info = machine_info("cpu")
    assert info["cpu_cores"] >= 1 and info["device_name"]
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
