"""STTR student + Stylizer: architecture facts, any-size inputs, checkpoints, reuse of styles."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from styledistill.errors import CheckpointError, ConfigError
from styledistill.student import STTR, StyleCode, Stylizer, list_presets
from styledistill.student.sttr import sine_position_encoding

TINY = dict(
    d_model=32,
    num_heads=2,
    ffn_dim=64,
    encoder_layers=1,
    decoder_layers=1,
    decoder_channels=[16, 8, 8, 4],
    style_size=64,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def tiny_model(seed: int = 0, **overrides) -> STTR:
    """The sttr-small structure at test size (MobileNetV3 tokenizers build fast)."""
    torch.manual_seed(seed)
    return STTR.from_preset("sttr-small", **{**TINY, **overrides}).eval()


@pytest.fixture(scope="module")
def model() -> STTR:
    return tiny_model()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 48, 72, generator=gen), torch.rand(2, 3, 64, 40, generator=gen)


def test_presets_listed():
    assert {"sttr-paper", "sttr-small"} <= set(list_presets())


def test_paper_preset_has_45_6m_parameters():
    with torch.device("meta"):  # counts only; no memory or init time
        paper = STTR.from_preset("sttr-paper")
    total = paper.num_parameters()
    assert abs(total - 45.6e6) / 45.6e6 < 0.01, total
    config = paper.config
    assert (config.d_model, config.num_heads, config.ffn_dim) == (256, 8, 2048)
    assert (len(paper.encoder), len(paper.decoder)) == (6, 6)
    assert (config.content_backbone, config.content_stride) == ("resnet50", 8)
    assert (config.style_backbone, config.style_stride) == ("resnet50", 32)
    assert config.image_decoder_channels() == [512, 256, 128]
    # official trainable count: conv1/layer1 frozen, BatchNorm frozen in the backbones
    assert paper.num_parameters(trainable_only=True) == 45_197_827
    assert "layer3" not in dict(paper.content_tokenizer.backbone.named_children())
    assert "layer4" in dict(paper.style_tokenizer.backbone.named_children())


def test_small_preset_is_much_lighter():
    with torch.device("meta"):
        small = STTR.from_preset("sttr-small")
        paper = STTR.from_preset("sttr-paper")
    assert small.num_parameters() < paper.num_parameters() / 5
    assert small.config.content_stride == 16 and small.config.style_size == 256


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown STTR preset"):
        STTR.from_preset("sttr-huge")
    with pytest.raises(ConfigError, match="unknown STTR setting"):
        STTR.from_preset("sttr-small", d_modle=64)
    with pytest.raises(ConfigError, match="multiple of num_heads"):
        STTR.from_preset("sttr-small", d_model=30, num_heads=4)
    with pytest.raises(ConfigError, match="decoder_channels"):
        STTR.from_preset("sttr-small", decoder_channels=[8, 4])


def test_token_counts_match_strides(model):
    with torch.inference_mode():
        memory, pos, mask = model.encode_style(torch.rand(1, 3, 64, 96))
        content_tokens = model.content_tokenizer(torch.rand(1, 3, 64, 96))
    styles = 4 * 6  # stride 16
    # + statistics (colour, AdaIN skips) + for the nearest-patch head, per style token, its
    # 16x16 pixels (as 8 px row segments) and the match codes (8x8 brightness, 2x2
    # chroma, + the code's norm) of its share of the bank of 16 px patches (one every 8
    # px: 4 per style token)
    code = 8 * 8 + 2 * 2 * 2 + 1
    assert model.tokens_per_patch == -(-(3 * 16 * 16 + 4 * code) // 32)
    assert model.patches_per_style_token == 4
    bank = styles * 4
    tokens = styles + model.num_stat_tokens + styles * model.tokens_per_patch
    assert memory.shape == pos.shape == (1, tokens, 32)
    assert mask.shape == (1, tokens) and not mask.any()
    assert content_tokens.shape == (1, 32, 4, 6)
    style_tokens, _, style_mask, stats, segments, codes = model._split_memory(memory, pos, mask)
    assert style_tokens.shape == (1, styles, 32) and stats.shape[1] == model.num_stat_tokens
    assert not style_mask.any()  # an unpadded style: no style token is masked
    assert segments.shape == (1, 3 * 64 * 96 // 8, 8) and codes.shape == (1, bank, code)
    torch.testing.assert_close(stats[0, 0, 6:8], torch.tensor([64 / 8, 96 / 8]))  # bank grid
    # the patches that overhang the style's border are flagged by a norm no real patch has
    # (so the flag survives a dropped mask); the inner ones are not
    invalid = codes[..., -1] > 1000
    assert int((~invalid).sum()) == 6 * 10  # the patches inside the style


def test_style_patches_fold_and_unfold_like_torch():
    """The texture head's reshape-only unfold/fold equal F.unfold/F.fold (which need opset 18)."""
    import torch.nn.functional as F

    from styledistill.student.sttr import fold_patches, unfold_patches

    image = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    for side in (16, 32):
        margin = (side - 16) // 2
        padded = F.pad(image, (margin,) * 4, mode="replicate")
        expected = F.unfold(padded, side, stride=16).transpose(1, 2)
        torch.testing.assert_close(unfold_patches(image, side, 16), expected, rtol=0, atol=0)
        patches = torch.rand(2, 4 * 6, 3 * side * side)
        size = (64 + 2 * margin, 96 + 2 * margin)
        folded = F.fold(patches.transpose(1, 2), size, side, stride=16)
        expected = folded[..., margin : margin + 64, margin : margin + 96]
        torch.testing.assert_close(fold_patches(patches, 4, 6, side, 16), expected)


def test_the_texture_head_pastes_the_styles_own_pixels():
    """Untrained, the mosaic already carries the style: with a one-colour-per-half style,
    every mosaic pixel is one of the style's colours mixed by the window, nothing else."""
    model = tiny_model(texture_head="attention", style_patches=32)
    style = torch.zeros(1, 3, 64, 64)
    style[:, 0, :, :32] = 1.0  # red left half
    style[:, 2, :, 32:] = 1.0  # blue right half
    content = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        memory, pos, mask = model.encode_style(*model.prepare_style(style))
        tokens, _, _, _, patches, _ = model._split_memory(memory, pos, mask)
        queries = torch.zeros(1, 16, 32)
        mosaic = model._paste_patches(queries, content, tokens, None, patches)
    assert mosaic.shape == content.shape
    assert float(mosaic[:, 1].abs().max()) == 0.0  # no green anywhere: only style pixels
    torch.testing.assert_close(mosaic[:, 0] + mosaic[:, 2], torch.ones(1, 64, 64))
    with pytest.raises(ConfigError, match="style_patches 24 must be style_stride or twice it"):
        tiny_model(texture_head="attention", style_patches=24)
    with pytest.raises(ConfigError, match="style_patches 24 must be a multiple of 8"):
        tiny_model(style_patches=24)
    with pytest.raises(ConfigError, match="patch_descriptor_cells 3 must be even"):
        tiny_model(patch_descriptor_cells=3)
    with pytest.raises(ConfigError, match="needs colour_film with colour_transfer 'histogram'"):
        tiny_model(colour_transfer="meanstd")


def test_the_last_conv_kernel_is_a_setting_and_older_checkpoints_keep_their_3x3(tmp_path):
    """sttr-small's last conv is 1x1 (nothing to pad); a checkpoint saved before the
    setting existed (no ``output_kernel`` in its config.json) loads as the 3x3 it was."""
    small = tiny_model()
    assert small.image_decoder[-1].kernel_size == (1, 1)
    assert isinstance(small.image_decoder[-2], torch.nn.Identity)
    older = tiny_model(output_kernel=3)
    assert older.image_decoder[-1].kernel_size == (3, 3)
    with torch.no_grad():
        older.image_decoder[-1].weight.normal_(0.0, 0.1)
    folder = older.save_pretrained(tmp_path / "older")
    config = json.loads((folder / "config.json").read_text())
    del config["output_kernel"]
    (folder / "config.json").write_text(json.dumps(config))
    loaded = STTR.from_pretrained(folder)
    content, style = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(content, style), older(content, style))
    with pytest.raises(ConfigError, match="output_kernel 2 must be 1 or 3"):
        tiny_model(output_kernel=2)


#: The settings sttr-small changed from the last release, as that release had them.
_LAST_RELEASE_HEAD = {
    "decoder_padding": "reflect",
    "patch_chroma_cells": None,
    "patch_edge_stride": 1,
}


def test_lighter_settings_are_settings_and_older_checkpoints_keep_theirs(tmp_path):
    """sttr-small's decoder convs pad with zeros (no pad layers), its match codes carry
    chroma at 2x2 and its edge weight is measured at half resolution; a checkpoint saved
    before those settings existed loads with reflection pads, 4x4 chroma and full
    resolution edges, and gives the outputs it gave."""
    small = tiny_model()
    config = small.config
    assert (config.decoder_padding, config.patch_chroma_cells, config.patch_edge_stride) == (
        "zeros",
        2,
        2,
    )
    assert not any(isinstance(m, torch.nn.ReflectionPad2d) for m in small.image_decoder)
    squares = [m for m in small.image_decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.padding == (m.kernel_size[0] // 2,) * 2 for m in squares)
    older = tiny_model(**_LAST_RELEASE_HEAD)
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in older.image_decoder)
    with torch.no_grad():
        older.image_decoder[-1].weight.normal_(0.0, 0.1)
    folder = older.save_pretrained(tmp_path / "older")
    saved = json.loads((folder / "config.json").read_text())
    for key in _LAST_RELEASE_HEAD:
        del saved[key]
    (folder / "config.json").write_text(json.dumps(saved))
    loaded = STTR.from_pretrained(folder)
    assert {k: getattr(loaded.config, k) for k in _LAST_RELEASE_HEAD} == _LAST_RELEASE_HEAD
    content, style = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(content, style), older(content, style))
        same_weights = STTR(dataclasses.replace(config, **_LAST_RELEASE_HEAD)).eval()
        same_weights.load_state_dict(small.state_dict())  # the settings change the output
        assert not torch.allclose(small(content, style), same_weights(content, style))
    with pytest.raises(ConfigError, match="decoder_padding must be"):
        tiny_model(decoder_padding="circular")
    with pytest.raises(ConfigError, match="patch_chroma_cells 3 must be even"):
        tiny_model(patch_chroma_cells=3)
    with pytest.raises(ConfigError, match="patch_edge_stride 3 must be"):
        tiny_model(patch_edge_stride=3)


def test_the_nearest_patch_head_draws_the_styles_texture_from_the_start():
    """Untrained, sttr-small's output follows its one-pass patch synthesis (gate ~0.95):
    a two-colour style gives an output made of those two colours, nothing in between
    where the content is flat."""
    model = tiny_model()
    assert model.config.texture_head == "nearest" and model.config.style_patches == 16
    style = torch.zeros(1, 3, 64, 64)
    style[:, 0, :, ::8] = 1.0  # red stripes on black
    content = torch.full((1, 3, 64, 64), 0.5)
    with torch.inference_mode():
        out = model(content, style)
    assert float(out[:, 1:].max()) < 0.05  # no green or blue was invented
    red = out[0, 0, 8:-8, 8:-8]
    assert float(red.max()) > 0.6 and float(red.min()) < 0.1  # stripes, not a red-grey blur


def test_odd_sizes_give_content_size(model):
    content = torch.rand(1, 3, 301, 457)
    style = torch.rand(1, 3, 480, 640)
    with torch.inference_mode():
        out = model(content, style)
    assert out.shape == (1, 3, 301, 457)
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()


def test_sine_encoding_ignores_padding():
    mask = torch.zeros(1, 5, 7, dtype=torch.bool)
    mask[:, 3:, :] = True
    mask[:, :, 4:] = True
    padded = sine_position_encoding(mask, 16)
    plain = sine_position_encoding(torch.zeros(1, 3, 4, dtype=torch.bool), 16)
    assert torch.allclose(padded[:, :, :3, :4], plain, atol=1e-6)


def test_padding_mask_hides_padded_style_tokens():
    """A masked style token must not change the result, whatever its content.

    (Without the texture head: its border patches overhang half a cell into the padding,
    which ``forward`` fills by reflecting the style itself.)
    """
    model = tiny_model(style_patches=0)
    style = torch.rand(1, 3, 64, 64)
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[:, :, 32:] = True
    other = style.clone()
    other[..., 32:] = torch.rand(1, 3, 64, 32)
    content = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        a = model.decode(content, *model.encode_style(style, mask))
        b = model.decode(content, *model.encode_style(other, mask))
        c = model.decode(content, *model.encode_style(other))
    memory_a = model.encode_style(style, mask)[0][:, [0]]
    memory_b = model.encode_style(other, mask)[0][:, [0]]
    assert torch.allclose(memory_a, memory_b, atol=1e-5)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.equal(a, c)  # unmasked, the same pixels do take part


def test_deterministic_in_eval(model, images):
    content, style = images
    with torch.inference_mode():
        assert torch.equal(model(content, style), model(content, style))


def test_train_mode_backward_and_parameter_groups(images):
    net = tiny_model(seed=3).train()
    with torch.no_grad():  # as after a first step: the residual starts at zero, so until
        net.image_decoder[-1].weight.normal_(0.0, 0.01)  # then nothing reaches the tokenizers
    content, style = images
    out = net(content, style)
    loss = (out - content).abs().mean()
    loss.backward()
    backbone = list(net.backbone_parameters())
    other = list(net.other_parameters())
    assert {id(p) for p in backbone}.isdisjoint({id(p) for p in other})
    assert sum(p.numel() for p in backbone + other) == net.num_parameters(trainable_only=True)
    assert all(p.grad is not None for p in other)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in backbone)
    frozen = dict(net.content_tokenizer.backbone.named_parameters())["features.0.0.weight"]
    assert not frozen.requires_grad


def test_save_load_round_trip(model, images, tmp_path):
    content, style = images
    model.save_pretrained(
        tmp_path, model_card={"training_data": "pairs/texture", "teacher": "texture"}
    )
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "sttr" and config["d_model"] == 32
    card = (tmp_path / "README.md").read_text()
    assert "sttr-small" in card and "pairs/texture" in card and "teacher: texture" in card
    loaded = STTR.from_pretrained(tmp_path)
    assert not loaded.training
    with torch.inference_mode():
        assert torch.equal(model(content, style), loaded(content, style))
    # a training run folder holding student/ works too
    run_dir = tmp_path / "run"
    model.save_pretrained(run_dir / "student")
    assert STTR.from_pretrained(run_dir).config == model.config


def test_saved_files_get_the_umask_mode_not_private(model, tmp_path):
    from styledistill.plumbing import UMASK

    model.save_pretrained(tmp_path / "student", model_card={"teacher": "texture"})
    files = sorted((tmp_path / "student").iterdir())
    assert {f.name for f in files} >= {"config.json", "model.safetensors"}
    assert not [f for f in files if f.name.endswith(".tmp")]
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o666 & ~UMASK, path.name


def test_refuses_pickle_unless_allowed(model, images, tmp_path):
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin: refusing to load a pickle"):
        STTR.from_pretrained(tmp_path)
    loaded = STTR.from_pretrained(tmp_path, allow_pickle=True)
    content, style = images
    with torch.inference_mode():
        assert torch.equal(model(content, style), loaded(content, style))


def test_broken_checkpoints_are_one_line_errors(model, tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        STTR.from_pretrained(tmp_path / "nope")
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: corrupt") as info:
        STTR.from_pretrained(tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: invalid JSON"):
        STTR.from_pretrained(tmp_path)
    other = tiny_model(d_model=64)
    other.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({**model.config.to_dict(), "model_type": "sttr"})
    )
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        STTR.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        STTR.from_pretrained(tmp_path)


def test_backbone_weights_from_local_file(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(5)
    reference = torchvision.models.mobilenet_v2().state_dict()
    save_file({k: v.contiguous() for k, v in reference.items()}, tmp_path / "mbv2.safetensors")
    net = STTR.from_preset("sttr-small", backbone_weights=tmp_path / "mbv2.safetensors", **TINY)
    state = net.style_tokenizer.backbone.state_dict()
    assert torch.equal(state["features.5.conv.0.0.weight"], reference["features.5.conv.0.0.weight"])
    assert torch.equal(
        state["features.13.conv.1.1.running_var"], reference["features.13.conv.1.1.running_var"]
    )
    content_state = net.content_tokenizer.backbone.state_dict()
    assert torch.equal(
        content_state["features.1.conv.0.0.weight"], reference["features.1.conv.0.0.weight"]
    )
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match=r"wrong\.pth: not a matching torchvision"):
        STTR.from_preset("sttr-small", backbone_weights=tmp_path / "wrong.pth", **TINY)


# --------------------------------------------------------------------------- Stylizer


def test_style_encoded_once_equals_per_call(model, images):
    stylizer = Stylizer(model, device="cpu", size=64)
    content, style = images
    code = stylizer.encode_style(style[0])
    assert isinstance(code, StyleCode)
    once = [stylizer(c, code, output="tensor") for c in content]
    per_call = [stylizer(c, style[0], output="tensor") for c in content]
    for a, b in zip(once, per_call):
        assert torch.equal(a, b)
    batched = stylizer.stylize_tensor(content, code)
    assert batched.shape == content.shape
    assert torch.allclose(batched[1], once[1], atol=1e-5)


def test_stylizer_matches_model_at_native_size(model):
    generator = torch.Generator().manual_seed(5)  # not the global RNG: same inputs in any order
    content = torch.rand(1, 3, 64, 96, generator=generator)
    style = torch.rand(1, 3, 64, 64, generator=generator)
    stylizer = Stylizer(model, device="cpu", size=None)
    with torch.inference_mode():
        expected = model(content, style)
    same = (stylizer.stylize_tensor(content, style[0]) - expected).abs() < 1e-5
    # on random noise a nearest-patch choice can flip between two near-equal patches when
    # the float rounding differs (the stylizer's memory layout): a few patches, no more
    assert float(same.float().mean()) > 0.97


def test_stylizer_any_source_and_lists(model, tmp_path):
    from PIL import Image

    stylizer = Stylizer(model, device="cpu", size=64)
    photo = Image.new("RGB", (90, 50), (200, 30, 30))
    photo.save(tmp_path / "photo.png")
    out = stylizer(tmp_path / "photo.png", photo)
    assert isinstance(out, Image.Image) and out.size == (90, 50)
    outs = stylizer([photo, torch.rand(3, 40, 30), photo], photo, output="tensor")
    assert [tuple(o.shape) for o in outs] == [(3, 50, 90), (3, 40, 30), (3, 50, 90)]
    assert torch.equal(outs[0], outs[2])


def test_stylizer_from_pretrained_and_dtypes(model, tmp_path):
    model.save_pretrained(tmp_path)
    stylizer = Stylizer.from_pretrained(tmp_path, device="cpu", dtype="bfloat16", size=64)
    out = stylizer(torch.rand(3, 40, 56), torch.rand(3, 32, 32), output="tensor")
    assert out.dtype == torch.float32 and out.shape == (3, 40, 56)
    with pytest.raises(ConfigError, match="float16"):
        Stylizer.from_pretrained(tmp_path, device="cpu", dtype=torch.float16)
    with pytest.raises(ConfigError, match="output"):
        stylizer(torch.rand(3, 40, 56), torch.rand(3, 32, 32), output="numpy")


# --------------------------------------------------------------------------- colour transfer


def _photo_and_style(size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    from styledistill.images import to_tensor
    from styledistill.samples import generate_style, sample_contents

    photo = next(iter(sample_contents(size).values()))
    return to_tensor(photo)[None], to_tensor(generate_style("pointillism", size, 0))[None]


def test_histogram_recolour_matches_skimage():
    from styledistill.student.sttr import channel_quantiles, match_channel_quantiles
    from styledistill.train import histogram_matched

    content, style = _photo_and_style()
    ours = match_channel_quantiles(content, None, channel_quantiles(style, None, 128))
    reference = histogram_matched(content, style)
    mse = ((ours - reference) ** 2).mean().item()
    assert mse < 10 ** (-35 / 10), mse  # > 35 dB PSNR to skimage's exact specification
    before = ((content - reference) ** 2).mean().item()
    assert mse < before / 100


def test_histogram_recolour_ignores_padding():
    from styledistill.student.sttr import channel_quantiles, match_channel_quantiles

    content, style = _photo_and_style()
    quantiles = channel_quantiles(style, None, 64)
    padded_style = torch.cat([style, torch.ones(1, 3, 32, style.shape[-1])], dim=2)
    style_mask = torch.zeros(1, *padded_style.shape[-2:], dtype=torch.bool)
    style_mask[:, style.shape[-2] :] = True
    assert torch.allclose(channel_quantiles(padded_style, style_mask, 64), quantiles, atol=1e-6)
    padded = torch.cat([content, torch.zeros(1, 3, 32, content.shape[-1])], dim=2)
    mask = torch.zeros(1, *padded.shape[-2:], dtype=torch.bool)
    mask[:, content.shape[-2] :] = True
    plain = match_channel_quantiles(content, None, quantiles)
    masked = match_channel_quantiles(padded, mask, quantiles)[..., : content.shape[-2], :]
    assert torch.allclose(masked, plain, atol=1e-6)


def test_untrained_small_student_starts_as_histogram_transfer():
    """The residual output: an untrained sttr-small is the colour transfer, not noise."""
    from styledistill.student.sttr import channel_quantiles, match_channel_quantiles

    content, style = _photo_and_style(64)
    model = tiny_model(style_patches=0)  # the texture head starts as its synthesis
    assert model.config.colour_transfer == "histogram"
    with torch.inference_mode():
        out = model(content, style)
        transfer = match_channel_quantiles(
            content, None, channel_quantiles(model.prepare_style(style)[0], None, 32)
        )
    start_error = (out - transfer).abs().mean().item()
    assert start_error < 0.05, start_error
    assert (content - transfer).abs().mean().item() > 4 * start_error
    # the mean/std variant is still available (and does not start as the transfer)
    meanstd = tiny_model(colour_transfer="meanstd", style_patches=0)
    assert meanstd.num_colour_tokens == 1 and model.num_colour_tokens == 4
    assert tiny_model().num_colour_tokens == 5  # + the brightness quantiles of the texture head
    with pytest.raises(ConfigError, match="colour_transfer"):
        tiny_model(colour_transfer="lab")


def test_backbone_norm_choice():
    from torchvision.ops.misc import FrozenBatchNorm2d

    frozen, batch = tiny_model(), tiny_model(backbone_norm="batch")
    assert any(isinstance(m, FrozenBatchNorm2d) for m in frozen.style_tokenizer.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in frozen.style_tokenizer.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in batch.style_tokenizer.modules())
    # BatchNorm affine parameters train with the backbone (its learning rate)
    assert frozen.num_parameters() < batch.num_parameters()
    with pytest.raises(ConfigError, match="backbone_norm"):
        tiny_model(backbone_norm="group")


def test_inference_copy_folds_batchnorm_without_changing_outputs(tmp_path):
    """The Stylizer runs a copy with frozen BatchNorm folded into the convolutions: same
    image to float rounding, the caller's model untouched, and the copy refuses to save."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    model = tiny_model().eval()
    trainable = [p.requires_grad for p in model.parameters()]
    content = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    style = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    folded = model.inference_copy()
    norms = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert norms and not any(isinstance(m, FrozenBatchNorm2d) for m in folded.modules())
    with torch.inference_mode():
        torch.testing.assert_close(folded(content, style), model(content, style), atol=1e-5, rtol=0)
    assert [p.requires_grad for p in model.parameters()] == trainable
    assert not any(p.requires_grad for p in folded.parameters())
    with pytest.raises(ConfigError, match="inference_copy"):
        folded.save_pretrained(tmp_path / "folded")
    assert Stylizer(model, device="cpu").model is not model
