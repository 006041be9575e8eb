"""Shared fixtures: one torch thread, small deterministic images and image folders, a tiny
STTR student (settings, model, saved folder), tiny texture-teacher options, tiny Stable
Diffusion components and a tiny StyleID teacher. Everything is made by the tests themselves
(no downloads)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image

if TYPE_CHECKING:
    from styledistill.student import STTR


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch CPU thread for a test module (``pytestmark = usefixtures("one_thread")``).

    Tiny models are overhead-bound: thread start-up and OpenMP spinning cost more than
    they save, and CI CPUs are shared.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def write_random_images(
    folder: Path, count: int, seed: int, prefix: str = "img", *, digits: int = 1
) -> list[Path]:
    """``count`` random RGB PNGs of different sizes and aspect ratios (sides >= 35 px).

    Named ``{prefix}{i}`` with ``i`` zero-padded to ``digits``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        height, width = 40 + 7 * i, 56 - 3 * i
        path = folder / f"{prefix}{i:0{digits}d}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def make_images() -> Callable[..., list[Path]]:
    """:func:`write_random_images`: ``make_images(folder, count, seed, prefix)``."""
    return write_random_images


def write_content_and_style(
    folder: Path,
    content_size: tuple[int, int] = (80, 60),
    style_size: tuple[int, int] = (48, 48),
    style_name: str = "style.png",
    seed: int = 2,
    wave: float = 5.0,
) -> tuple[Path, Path]:
    """``folder/content.png``, a smooth gradient with vertical waves ``wave`` px per radian
    (some structure for a student to keep), and ``folder/style_name``, seeded RGB noise.
    Sizes are (width, height)."""
    folder.mkdir(parents=True, exist_ok=True)
    (width, height), (style_width, style_height) = content_size, style_size
    ys, xs = np.mgrid[0:height, 0:width]
    content = np.stack([xs / width, ys / height, 0.5 + 0.4 * np.sin(xs / wave)], -1)
    Image.fromarray((content * 255).astype(np.uint8)).save(folder / "content.png")
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (style_height, style_width, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / style_name)
    return folder / "content.png", folder / style_name


@pytest.fixture(scope="session")
def content_and_style() -> Callable[..., tuple[Path, Path]]:
    """:func:`write_content_and_style`: ``content_and_style(folder, content_size, ...)``."""
    return write_content_and_style


def modules_imported_by(code: str, modules: Sequence[str] = ("torch",)) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``.

    For the import paths that must stay light (the ONNX runner's decoder, the CLI's
    teacher list): this process has imported torch long ago, so only a new one can tell.
    """
    script = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted(m for m in {list(modules)!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def assert_same_image(
    got: torch.Tensor | np.ndarray,
    want: torch.Tensor | np.ndarray,
    *,
    tolerance: float,
    worst: float,
    outliers: float = 0.0,
    per_image: int = 0,
) -> None:
    """``got`` and ``want`` are one image (or batch) computed two ways, equal but for rounding.

    No value differs by more than ``worst``; at most a share ``outliers`` of the values, or
    ``per_image`` values per image (whichever allows more), differ by more than
    ``tolerance``. Rounding moves a few values across a step (an 8-bit floor, a histogram
    bin edge, a near-tie between two patches) in the last float bit; a real difference
    (a wrong op, a shape baked in) moves most of them. Images are ``[B,3,H,W]`` batches or
    single ``[3,H,W]`` / ``[H,W,3]`` images.
    """
    got = got.detach().cpu().double().numpy() if isinstance(got, torch.Tensor) else got
    want = want.detach().cpu().double().numpy() if isinstance(want, torch.Tensor) else want
    assert got.shape == want.shape, (got.shape, want.shape)
    difference = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
    over = int((difference > tolerance).sum())
    images = difference.shape[0] if difference.ndim == 4 else 1
    allowed = max(outliers * difference.size, per_image * images)
    assert over <= allowed, f"{over} values off by > {tolerance:g} (allowed {allowed:g})"
    assert difference.max() <= worst, f"max difference {difference.max():.3g} > {worst:g}"


# --------------------------------------------------------------------------- tiny student

#: What depends on the token stride: one x2 decoder stage per halving down to the pixels,
#: the style side, and the finer content skips (sttr-small's [8] fits stride 16 only).
_TINY_BY_STRIDE: dict[int, dict] = {
    16: {"decoder_channels": [16, 8, 8, 8], "style_size": 64, "skips": {"strides": [8, 4]}},
    8: {"decoder_channels": [32, 16, 8], "style_size": 32, "skips": {"strides": [4]}},
}


def tiny_student_config(stride: int = 16, **overrides) -> dict:
    """``sttr-small`` overrides for a tiny student (JSON-friendly: ``--model-option`` too).

    ResNet-18 tokenizers cut at ``stride`` (16 or 8) for content and style, d=32 with 2
    heads, FFN 64, one encoder and one decoder layer, no dropout, a slim image decoder;
    the preset's colour prior, AdaIN skips and content skip stay.
    """
    config = {
        "content_backbone": "resnet18",
        "content_stride": stride,
        "style_backbone": "resnet18",
        "style_stride": stride,
        "d_model": 32,
        "num_heads": 2,
        "ffn_dim": 64,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "dropout": 0.0,
        **_TINY_BY_STRIDE[stride],
    }
    config.update(overrides)
    return config


def make_tiny_student(seed: int = 0, **settings) -> STTR:
    """A tiny ``sttr-small`` with random weights (seeded), in eval mode.

    ``settings`` go to :func:`tiny_student_config` (``stride`` or any STTR setting). The
    output layer's weights on the decoder features are scaled up, so outputs move away
    from the colour prior and depend on the content.
    """
    from styledistill.student import STTR

    torch.manual_seed(seed)
    model = STTR.from_preset("sttr-small", **tiny_student_config(**settings)).eval()
    with torch.no_grad():
        model.output.conv.weight.mul_(20.0)
    return model


@pytest.fixture(scope="session")
def student_config() -> Callable[..., dict]:
    """:func:`tiny_student_config`: ``student_config(stride=16, **overrides) -> dict``."""
    return tiny_student_config


@pytest.fixture(scope="session")
def tiny_student() -> Callable[..., STTR]:
    """:func:`make_tiny_student`: ``tiny_student(seed=0, **settings) -> STTR``."""
    return make_tiny_student


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory) -> Path:
    """``make_tiny_student()`` saved once per session (``save_pretrained``): read only."""
    return make_tiny_student().save_pretrained(tmp_path_factory.mktemp("tiny") / "student")


#: ``styledistill train`` flags for tiny ResNets, which have no offline weights file.
RANDOM_BACKBONES = ["--backbone-weights", "random"]


@pytest.fixture
def train_args(student_config) -> Callable[..., list[str]]:
    """``train_args(data, out, *extra)``: ``styledistill train`` arguments for a tiny
    stride-8 student at 32 px on the CPU (random backbones, no perceptual term)."""
    tiny = student_config(stride=8)
    options = [a for k, v in tiny.items() for a in ("--model-option", f"{k}={json.dumps(v)}")]

    def args(data: Path, out: Path, *extra: str) -> list[str]:
        return [
            "train", "--data", str(data), "--out", str(out), "--size", "32", "--device", "cpu",
            "--no-progress", "--no-tensorboard", "--num-workers", "0", "--perceptual-weight", "0",
            "--batch-size", "2", "--val-fraction", "0.3", *RANDOM_BACKBONES, *options, *extra,
        ]  # fmt: skip

    return args


# --------------------------------------------------------------------------- stand-in teacher


class TintTeacher:
    """A fast, learnable stand-in teacher: half the content, half the style's mean colour.

    Takes images or paths (centre-cropped to ``size``, as the real teachers do); a style
    already prepared (a ``[3, 1, 1]`` mean colour) is used as it is.
    """

    name = "tint"

    def __init__(self, size: int = 32) -> None:
        self.size = size

    def config(self) -> dict:
        return {"size": self.size, "mix": 0.5}

    def model_info(self) -> dict:
        return {}

    def _view(self, image) -> torch.Tensor:
        from styledistill.images import center_crop_resize, load_image

        image = image if isinstance(image, torch.Tensor) else load_image(image)
        return center_crop_resize(image, self.size)

    def prepare_style(self, style) -> torch.Tensor:
        return self._view(style).mean(dim=(1, 2), keepdim=True)

    def stylize(self, contents, styles, *, batch_size=None, seeds=None) -> torch.Tensor:
        out = []
        for content, style in zip(contents, styles):
            tint = (
                style
                if isinstance(style, torch.Tensor) and style.shape[-1] == 1
                else self.prepare_style(style)
            )
            out.append((0.5 * self._view(content) + 0.5 * tint).clamp(0, 1))
        return torch.stack(out)


# --------------------------------------------------------------------------- tiny texture

#: Texture-teacher options for a fast run: one scale, one 9 px patch size, one IRLS step,
#: a PCA of at most 8 components (``from conftest import TINY_TEXTURE``; read only).
TINY_TEXTURE = {
    "scales": [1.0],
    "patch_sizes": [9],
    "gaps": [6],
    "iterations": 1,
    "irls_steps": 1,
    "pca_max_components": 8,
}


# --------------------------------------------------------------------------- tiny SD


def tiny_sd_components(
    seed: int = 0, prediction_type: str = "epsilon", sample_size: int = 16
) -> dict:
    """SD 1.x layout (4 stages, 2 layers per block, 3 decoder attentions) at toy width.

    ``prediction_type="v_prediction"`` gives the SD 2.x variant: linear projections in the
    transformer blocks and a v-prediction DDIM scheduler. ``sample_size`` is the latent
    side (the VAE downsamples by 2).
    """
    pytest.importorskip("diffusers")
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=2,
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
        use_linear_projection=prediction_type == "v_prediction",
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
    )
    scheduler = DDIMScheduler(  # the SD 1.x scheduler config
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        num_train_timesteps=1000,
        prediction_type=prediction_type,
    )
    prompt_embeds = torch.randn(1, 7, 16)
    return {"unet": unet, "vae": vae, "scheduler": scheduler, "prompt_embeds": prompt_embeds}


def save_tiny_sd_folder(components: dict, folder: Path) -> Path:
    """A diffusers SD folder: the components plus a tiny random CLIP text encoder/tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    components["unet"].save_pretrained(folder / "unet")
    components["vae"].save_pretrained(folder / "vae")
    components["scheduler"].save_pretrained(folder / "scheduler")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "a</w>": 3}
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(
        str(folder / "tokenizer" / "vocab.json"),
        str(folder / "tokenizer" / "merges.txt"),
        model_max_length=7,
    ).save_pretrained(folder / "tokenizer")
    torch.manual_seed(0)
    text_config = CLIPTextConfig(
        vocab_size=4, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=7, bos_token_id=0, eos_token_id=1,
        pad_token_id=1,
    )  # fmt: skip
    CLIPTextModel(text_config).save_pretrained(folder / "text_encoder")
    return folder


@pytest.fixture(scope="session")
def tiny_sd() -> Callable[..., dict]:
    """:func:`tiny_sd_components` as a factory: ``tiny_sd(seed=0, prediction_type=...)``."""
    return tiny_sd_components


@pytest.fixture(scope="session")
def save_sd_folder() -> Callable[[dict, Path], Path]:
    """:func:`save_tiny_sd_folder`: ``save_sd_folder(components, folder) -> folder``."""
    return save_tiny_sd_folder


def tiny_styleid_teacher(size: int = 32, **settings):
    """A ``StyleIDTeacher`` on :func:`tiny_sd_components` for ``size`` px images (latent
    side ``size // 2``), on the CPU in float32, quiet, 2 steps unless ``settings`` say
    otherwise (``num_steps``, ``model_id``...)."""
    from styledistill.teachers.styleid import StyleIDTeacher

    options = {"num_steps": 2, "device": "cpu", "dtype": torch.float32, "progress": False}
    options.update(settings)
    return StyleIDTeacher(**tiny_sd_components(sample_size=size // 2), size=size, **options)


@pytest.fixture(scope="session")
def styleid_teacher() -> Callable[..., object]:
    """:func:`tiny_styleid_teacher`: ``styleid_teacher(size=32, **settings)``."""
    return tiny_styleid_teacher
