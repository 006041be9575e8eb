"""styledistill.samples and `styledistill samples`: offline photos and generated styles."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import pytest
import torch

from styledistill.cli import main
from styledistill.errors import ConfigError
from styledistill.images import load_image
from styledistill.samples import (
    CONTENT_NAMES,
    STYLE_DESCRIPTIONS,
    STYLE_NAMES,
    content_path,
    generate_style,
    sample_contents,
    sample_styles,
    write_samples,
)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _colour_histogram(image: torch.Tensor, bins: int = 4) -> torch.Tensor:
    q = (image.clamp(0, 1 - 1e-6) * bins).long()
    index = (q[0] * bins + q[1]) * bins + q[2]
    counts = torch.bincount(index.flatten(), minlength=bins**3).float()
    return counts / counts.sum()


def _mean_gradient(image: torch.Tensor) -> float:
    gray = image.mean(0)
    dy = (gray[1:] - gray[:-1]).abs().mean()
    dx = (gray[:, 1:] - gray[:, :-1]).abs().mean()
    return float(dy + dx) / 2


# --------------------------------------------------------------------------- contents


def test_contents_are_bundled_files_inside_scikit_image(no_network):
    import skimage

    package_dir = Path(skimage.__file__).parent
    assert {"astronaut", "chelsea", "coffee", "rocket"} <= set(CONTENT_NAMES)
    for name in CONTENT_NAMES:
        path = content_path(name)
        assert path.is_file() and package_dir in path.parents


def test_sample_contents_load_offline_as_colour_photos(no_network):
    contents = sample_contents(size=64)
    assert list(contents) == list(CONTENT_NAMES)
    for name, image in contents.items():
        assert image.dtype == torch.float32 and image.shape[0] == 3
        assert max(image.shape[1:]) == 64, name
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    # colour photos, not grey: channels differ somewhere
    astronaut = contents["astronaut"]
    assert float((astronaut[0] - astronaut[2]).abs().mean()) > 0.05


def test_sample_contents_full_size_and_selection():
    contents = sample_contents(names=["chelsea", "coffee"])
    assert list(contents) == ["chelsea", "coffee"]
    assert contents["chelsea"].shape == (3, 300, 451)
    assert contents["coffee"].shape == (3, 400, 600)


def test_unknown_content_name():
    with pytest.raises(ConfigError, match="unknown sample photo 'lena'"):
        sample_contents(names=["lena"])


# --------------------------------------------------------------------------- styles


def test_there_are_at_least_six_described_styles():
    assert len(STYLE_NAMES) >= 6
    assert set(STYLE_DESCRIPTIONS) == set(STYLE_NAMES)


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_style_is_deterministic_textured_and_seed_dependent(name):
    first = generate_style(name, 64, seed=0)
    assert first.shape == (3, 64, 64) and first.dtype == torch.float32
    assert torch.isfinite(first).all()
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert torch.equal(generate_style(name, 64, seed=0), first)
    other = generate_style(name, 64, seed=1)
    assert float((other - first).abs().mean()) > 0.05
    assert _mean_gradient(first) > 0.04  # local texture for the patch-based teacher
    assert float(first.std()) > 0.1  # not a flat wash


@pytest.mark.parametrize("name", STYLE_NAMES)
def test_style_any_size(name):
    assert generate_style(name, (100, 37), seed=3).shape == (3, 100, 37)
    assert generate_style(name, (37, 100), seed=3).shape == (3, 37, 100)
    assert generate_style(name, 8, seed=3).shape == (3, 8, 8)


def test_style_does_not_depend_on_thread_count():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = [generate_style(name, (40, 56), seed=4) for name in STYLE_NAMES]
        torch.set_num_threads(2)
        double = [generate_style(name, (40, 56), seed=4) for name in STYLE_NAMES]
    finally:
        torch.set_num_threads(threads)
    for name, a, b in zip(STYLE_NAMES, single, double):
        assert torch.equal(a, b), name


def test_styles_have_distinct_colour_histograms():
    styles = sample_styles(64, seed=0)
    assert list(styles) == list(STYLE_NAMES)
    histograms = {name: _colour_histogram(image) for name, image in styles.items()}
    for a, b in itertools.combinations(STYLE_NAMES, 2):
        total_variation = 0.5 * float((histograms[a] - histograms[b]).abs().sum())
        assert total_variation > 0.35, (a, b, total_variation)


def test_same_style_keeps_its_palette_across_seeds():
    for name in ("swirling_flow", "ink_wash", "stained_glass"):
        a = _colour_histogram(generate_style(name, 64, seed=0))
        b = _colour_histogram(generate_style(name, 64, seed=5))
        assert 0.5 * float((a - b).abs().sum()) < 0.35, name


def test_bad_style_arguments():
    with pytest.raises(ConfigError, match="unknown style 'vaporwave'"):
        generate_style("vaporwave")
    with pytest.raises(ConfigError, match="too small"):
        generate_style("ink_wash", 4)
    with pytest.raises(ConfigError, match=r"int or \(height, width\)"):
        generate_style("ink_wash", (8, 8, 3))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- writing


def test_write_samples(tmp_path, no_network):
    written = write_samples(
        tmp_path,
        size=32,
        seed=2,
        styles=["ink_wash", "pointillism"],
        contents=["rocket"],
        progress=False,
    )
    assert written == {
        "contents": [tmp_path / "contents" / "rocket.png"],
        "styles": [tmp_path / "styles" / "ink_wash.png", tmp_path / "styles" / "pointillism.png"],
    }
    style = load_image(written["styles"][0], min_side=1)
    assert torch.allclose(style, generate_style("ink_wash", 32, seed=2), atol=0.5 / 255 + 1e-6)
    assert load_image(written["contents"][0], min_side=1).shape == (3, 21, 32)


def test_write_samples_checks_names_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="unknown style"):
        write_samples(tmp_path / "out", styles=["ink_wash", "nope"], progress=False)
    assert not (tmp_path / "out").exists()


def test_cli_samples_writes_contents_and_styles(tmp_path, capsys):
    out = tmp_path / "samples"
    assert main(["samples", "--out", str(out), "--size", "32", "--seed", "1"]) == 0
    assert sorted(p.stem for p in (out / "contents").iterdir()) == sorted(CONTENT_NAMES)
    assert sorted(p.stem for p in (out / "styles").iterdir()) == sorted(STYLE_NAMES)
    assert all(p.suffix == ".png" for p in out.rglob("*.*"))
    captured = capsys.readouterr()
    assert f"styles: {len(STYLE_NAMES)} images" in captured.out
    assert "samples" in captured.err  # the progress bar


def test_cli_samples_style_subset(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["samples", "--out", str(out), "--size", "24", "--styles", "ink_wash,mosaic_tiles",
                 "--no-contents", "--quiet"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.rglob("*.png")) == ["ink_wash.png", "mosaic_tiles.png"]
    assert not (out / "contents").exists()
    assert capsys.readouterr().err == ""  # --quiet: no progress bar


def test_cli_samples_bad_style_is_a_one_line_error(tmp_path, capsys):
    assert main(["samples", "--out", str(tmp_path / "x"), "--styles", "ink_wash,nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("styledistill samples: error: unknown style 'nope'")
    assert "\n" not in err
    assert not (tmp_path / "x").exists()


def test_cli_samples_bad_size_and_out(tmp_path, capsys):
    assert main(["samples", "--out", str(tmp_path), "--size", "4"]) == 2
    assert "--size 4: use 16 to 4096 pixels" in capsys.readouterr().err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["samples", "--out", str(a_file)]) == 2
    assert "exists and is a file, not a folder" in capsys.readouterr().err


def test_cli_samples_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["samples", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "styledistill samples --out" in out
    for name in STYLE_NAMES:
        assert name in out
