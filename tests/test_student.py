"""STTR student + Stylizer: architecture facts, any-size inputs, checkpoints, reuse of styles."""

from __future__ import annotations

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
        memory = model.encode_style(torch.rand(1, 3, 64, 96))
        content_tokens = model.content_tokenizer(torch.rand(1, 3, 64, 96))
    styles = 4 * 6  # stride 16
    assert memory.tokens.shape == memory.pos.shape == (1, styles, 32)
    assert memory.mask is None  # an unpadded style: nothing to mask
    assert memory.colour.shape == (1, 3, 128)  # the colour prior's quantiles
    # one mean/std per skip stride, over the style backbone's channels there
    assert [tuple(s.shape) for s in memory.skip_stats] == [(1, 2 * 32), (1, 2 * 24)]
    assert content_tokens.shape == (1, 32, 4, 6)


def test_style_memory_round_trips_through_named_tensors(model):
    """The ONNX interface: the memory as a flat tuple of named tensors and back."""
    from styledistill.student import StyleMemory

    style = torch.rand(1, 3, 64, 64)
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[:, :, 48:] = True
    with torch.inference_mode():
        memory = model.encode_style(style, mask)
    names = StyleMemory.names(model.config)
    assert names == (
        "memory",
        "memory_pos",
        "memory_mask",
        "style_colour",
        "style_stats_8",
        "style_stats_4",
    )
    back = StyleMemory.from_tensors(model.config, memory.tensors())
    for got, expected in zip(back.tensors(), memory.tensors()):
        assert torch.equal(got, expected)
    paper = STTR.from_preset(
        "sttr-paper",
        **TINY,
        content_backbone="mobilenet_v2",
        style_backbone="mobilenet_v2",
        content_stride=16,
        style_stride=16,
    )
    assert StyleMemory.names(paper.config) == ("memory", "memory_pos", "memory_mask")


def test_sub_configs_check_their_own_settings(tmp_path):
    """The small preset's parts have sub-configs: each checks its settings, and a bad one
    in config.json is one line naming the file and the part."""
    with pytest.raises(ConfigError, match="skip stride 16 must be a backbone stride below"):
        tiny_model(skips={"strides": [16]})
    with pytest.raises(ConfigError, match="colour_prior needs content_skip"):
        tiny_model(content_skip=False)
    with pytest.raises(ConfigError, match=r"colour_prior\.levels 1 must be"):
        tiny_model(colour_prior={"levels": 1})
    with pytest.raises(ConfigError, match="skips need one backbone"):
        tiny_model(style_backbone="resnet18")
    with pytest.raises(ConfigError, match="decoder_padding must be"):
        tiny_model(decoder_padding="circular")
    folder = tiny_model().save_pretrained(tmp_path / "student")
    config = json.loads((folder / "config.json").read_text())
    config["skips"] = {"strides": [8], "width": 3}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: unknown skips setting"):
        STTR.from_pretrained(folder)


def test_parts_can_be_switched_off():
    """Without skips, colour prior or content skip the model is still whole: the paper's
    decoder end (a 3x3 conv to RGB) or a 1x1 output over the content alone."""
    content, style = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 64)
    for settings in (
        {"skips": None},
        {"colour_prior": None},
        {"colour_prior": None, "content_skip": False},
    ):
        model = tiny_model(**settings)
        with torch.inference_mode():
            out = model(content, style)
        assert out.shape == content.shape and torch.isfinite(out).all(), settings
    bare = tiny_model(colour_prior=None, content_skip=False)
    assert bare.output is None and bare.image_decoder[-1].conv.out_channels == 3
    plain = tiny_model(colour_prior=None)
    with torch.inference_mode():  # untrained, the 1x1 output starts as the content itself
        out = plain(content, style)
    assert float((out - torch.sigmoid(4 * (content - 0.5))).abs().max()) < 0.05


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
    """A masked style token must not change the result, whatever its content."""
    model = tiny_model()
    style = torch.rand(1, 3, 64, 64)
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[:, :, 32:] = True
    other = style.clone()
    other[..., 32:] = torch.rand(1, 3, 64, 32)
    content = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        a = model.decode(content, model.encode_style(style, mask))
        b = model.decode(content, model.encode_style(other, mask))
        c = model.decode(content, model.encode_style(other))
    memory_a = model.encode_style(style, mask).tokens[:, [0]]
    memory_b = model.encode_style(other, mask).tokens[:, [0]]
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
        net.output.conv.weight.normal_(0.0, 0.01)  # then nothing reaches the tokenizers
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
    # a histogram bin edge can fall either side when the float rounding differs (the
    # stylizer's memory layout): a few single values, no more
    assert float(same.float().mean()) > 0.999


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
    from styledistill.student.colour import channel_quantiles, match_channel_quantiles
    from styledistill.train import histogram_matched

    content, style = _photo_and_style()
    ours = match_channel_quantiles(content, None, channel_quantiles(style, None, 128))
    reference = histogram_matched(content, style)
    mse = ((ours - reference) ** 2).mean().item()
    assert mse < 10 ** (-35 / 10), mse  # > 35 dB PSNR to skimage's exact specification
    before = ((content - reference) ** 2).mean().item()
    assert mse < before / 100


def test_histogram_recolour_ignores_padding():
    from styledistill.student.colour import channel_quantiles, match_channel_quantiles

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
    from styledistill.student.colour import channel_quantiles, match_channel_quantiles

    content, style = _photo_and_style(64)
    model = tiny_model()
    with torch.inference_mode():
        out = model(content, style)
        transfer = match_channel_quantiles(
            content, None, channel_quantiles(model.prepare_style(style)[0], None, 128)
        )
    start_error = (out - transfer).abs().mean().item()
    assert start_error < 0.01, start_error
    assert (content - transfer).abs().mean().item() > 4 * start_error


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
