"""Shared fixtures: one torch thread, small deterministic images and image folders, tiny
Stable Diffusion components. Everything is made by the tests themselves (no downloads)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


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
