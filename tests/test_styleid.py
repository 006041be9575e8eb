"""StyleID teacher on tiny random diffusers components (CPU, float32 unless said).

Each test checks a number: the attention hook against a float64 formula and against
diffusers' own processor, the switches, batching, the feature cache and its refusals,
the hooked layer names on SD 1.x- and SD 2.x-sized UNets, every DDIM latent (epsilon and
v-prediction) against a float64 reference loop, the two precisions, the per-image noise,
the official crop and quantisation, and single-file loading (wiring and refusals).
"""

from __future__ import annotations

import copy
import itertools
import math
from functools import partial

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from conftest import assert_same_image
from styledistill.errors import CheckpointError, ConfigError
from styledistill.teachers import StyleFeatures, StyleIDTeacher, Teacher
from styledistill.teachers._styleid_attention import (
    DEFAULT_LAYERS,
    InjectionState,
    StyleInjectionProcessor,
    install_injection,
)
from styledistill.teachers.styleid import SD1_UNET_CONFIG, SD2_UNET_CONFIG, weights_fingerprint

SIX_LAYERS = [
    f"up_blocks.{b}.attentions.{i}.transformer_blocks.0.attn1" for b in (2, 3) for i in (0, 1, 2)
]
SIZE = 32  # pixels; the tiny VAE downsamples by 2 -> 16x16 latents


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def components(tiny_sd) -> dict:
    return tiny_sd(sample_size=SIZE // 2)


@pytest.fixture(scope="module")
def v_components(tiny_sd) -> dict:
    return tiny_sd(seed=1, prediction_type="v_prediction", sample_size=SIZE // 2)


def make_teacher(components: dict, **settings) -> StyleIDTeacher:
    settings.setdefault("num_steps", 3)
    settings.setdefault("size", SIZE)
    settings.setdefault("progress", False)
    settings.setdefault("dtype", torch.float32)
    return StyleIDTeacher(**components, device="cpu", **settings)


def images(n: int, seed: int, height: int = SIZE, width: int = SIZE) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    # Smooth random images (a few blobs) so the VAE sees structure, not white noise.
    low = torch.rand(n, 3, 4, 4, generator=generator)
    up = torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear")
    return list(up.clamp(0, 1).mul(255).round().div(255))  # 8-bit, as loaded files are


#: Two runs of the teacher that must agree (conftest.assert_same_image): float32 rounding may
#: move a pixel across one 8-bit floor step (1/255), on at most a quarter of the values.
same_teacher_output = partial(
    assert_same_image, tolerance=1e-3, worst=1 / 255 + 1e-6, outliers=0.25
)


# --------------------------------------------------------------------------- processor


def _tiny_attention(seed: int = 1) -> Attention:
    torch.manual_seed(seed)
    return Attention(query_dim=16, heads=2, dim_head=8).eval()


def test_processor_matches_float64_formula():
    attn = _tiny_attention()
    state = InjectionState(gamma=0.75, tau=1.5)
    processor = StyleInjectionProcessor("layer", state)
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 10, 16, generator=g)
    q_content = torch.randn(2, 10, 16, generator=g)
    k_style = torch.randn(2, 12, 16, generator=g)
    v_style = torch.randn(2, 12, 16, generator=g)
    # Per-row features for 3 steps; the processor must read step 1.
    rows = lambda t: [torch.stack([torch.zeros_like(r), r, torch.ones_like(r)]) for r in t]  # noqa: E731
    state.start_injection(
        {"layer": rows(q_content)}, {"layer": rows(k_style)}, {"layer": rows(v_style)}
    )
    state.inject_step = 1
    with torch.no_grad():
        out = processor(attn, hidden)

    a = copy.deepcopy(attn).double()
    h, qc, ks, vs = (t.double() for t in (hidden, q_content, k_style, v_style))
    q = 0.75 * qc + 0.25 * a.to_q(h)
    heads, d = 2, 8
    split = lambda t: t.view(2, -1, heads, d).transpose(1, 2)  # noqa: E731
    logits = 1.5 * split(q) @ split(ks).transpose(-1, -2) / math.sqrt(d)
    ref = (logits.softmax(-1) @ split(vs)).transpose(1, 2).reshape(2, -1, heads * d)
    ref = a.to_out[0](ref)
    err = (out.double() - ref).abs().max().item()
    assert err < 1e-5, err


def test_processor_with_own_kv_equals_diffusers_default():
    attn = _tiny_attention()
    hidden = torch.randn(3, 9, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        default = AttnProcessor2_0()(attn, hidden)
        own_k, own_v = attn.to_k(hidden), attn.to_v(hidden)
        state = InjectionState(gamma=0.0, tau=1.0)
        processor = StyleInjectionProcessor("layer", state)
        noise_q = torch.randn(3, 9, 16)  # gamma = 0: content Q must have no effect
        state.start_injection(
            {"layer": list(noise_q[:, None])},
            {"layer": list(own_k[:, None])},
            {"layer": list(own_v[:, None])},
        )
        injected = processor(attn, hidden)
        state.reset()
        plain = processor(attn, hidden)
    assert (injected - default).abs().max().item() < 1e-6
    assert (plain - default).abs().max().item() == 0.0


def test_sd1_unet_on_meta_device_hooks_exactly_the_six_layers():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD1_UNET_CONFIG)
    assert next(unet.parameters()).is_meta
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964  # SD 1.x UNet size
    state = InjectionState()
    hooked = install_injection(unet, DEFAULT_LAYERS, state)
    processors = unet.attn_processors
    ours = sorted(n for n, p in processors.items() if isinstance(p, StyleInjectionProcessor))
    assert ours == sorted(f"{n}.processor" for n in SIX_LAYERS)
    assert sorted(hooked) == sorted(SIX_LAYERS)
    assert len(processors) == 32  # 16 self- + 16 cross-attention layers, the rest untouched
    with pytest.raises(ConfigError, match="not a self-attention layer"):
        install_injection(unet, ["up_blocks.2.attentions.0.transformer_blocks.0.attn2"], state)


# --------------------------------------------------------------------------- schedule


def test_timestep_lists_for_fifty_steps(components):
    official = make_teacher(components, num_steps=50)
    grid = list(range(1, 1000, 20))
    assert list(official.grid) == grid
    assert list(official.inversion_steps) == list(zip(grid, [*grid[1:], 999]))
    assert official.start_timestep == 999
    expected = [(t, t - 20 if t > 1 else None) for t in range(961, 0, -20)]
    assert list(official.sampling_steps) == expected and len(expected) == 49
    clean = make_teacher(components, num_steps=50, official_schedule=False)
    assert list(clean.inversion_steps) == list(itertools.pairwise(grid))
    assert clean.start_timestep == 981
    assert list(clean.sampling_steps) == [(981, 961), *expected]
    assert official.config()["sampling_timesteps"][0] == 961


class Float64Reference:
    """StyleID written plainly in float64: own attention hook, own DDIM loops."""

    def __init__(self, components: dict, layers, gamma: float, tau: float):
        self.prediction_type = components["scheduler"].config.prediction_type
        self.unet = copy.deepcopy(components["unet"]).double()
        self.embeds = components["prompt_embeds"].double()
        self.alphas = components["scheduler"].alphas_cumprod.double()
        self.layers, self.gamma, self.tau = list(layers), gamma, tau
        self.mode, self.t, self.features = "plain", None, {}
        processors = dict(self.unet.attn_processors)
        for name in self.layers:
            processors[f"{name}.processor"] = self._processor(name)
        self.unet.set_attn_processor(processors)

    def _processor(self, name):
        def call(attn, hidden, encoder_hidden_states=None, attention_mask=None, **_):
            batch, heads = hidden.shape[0], attn.heads
            q, k, v = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)
            scale = 1.0
            if self.mode == "capture":
                self.features[(name, self.t)] = (q, k, v)
            elif self.mode == "inject":
                q_c, k_s, v_s = self.injected[(name, self.t)]
                q = self.gamma * q_c + (1 - self.gamma) * q
                k, v, scale = k_s, v_s, self.tau
            d = q.shape[-1] // heads
            split = lambda t: t.view(batch, -1, heads, d).transpose(1, 2)  # noqa: E731
            logits = scale * split(q) @ split(k).transpose(-1, -2) / math.sqrt(d)
            out = (logits.softmax(-1) @ split(v)).transpose(1, 2).reshape(batch, -1, heads * d)
            return attn.to_out[0](out)

        return call

    def eps(self, x, t):
        self.t = t
        embeds = self.embeds.expand(x.shape[0], -1, -1)
        return self.unet(x, torch.full((x.shape[0],), t), encoder_hidden_states=embeds).sample

    def ddim(self, x, out, a_from, a_to):
        if self.prediction_type == "v_prediction":  # v = sqrt(a) eps - sqrt(1 - a) x0
            x0 = a_from.sqrt() * x - (1 - a_from).sqrt() * out
            eps = a_from.sqrt() * out + (1 - a_from).sqrt() * x
        else:
            eps = out
            x0 = (x - (1 - a_from).sqrt() * eps) / a_from.sqrt()
        return a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps


@pytest.mark.parametrize(
    ("official", "family"),
    [(True, "epsilon"), (False, "epsilon"), (True, "v_prediction")],
    ids=["official", "clean", "v-prediction"],
)
def test_every_latent_matches_float64_reference(request, official, family):
    components = request.getfixturevalue("components" if family == "epsilon" else "v_components")
    n = 4
    teacher = make_teacher(components, num_steps=n, official_schedule=official)
    assert teacher.prediction_type == family
    grid = [1, 251, 501, 751]  # SD 1.x DDIM grid for 4 steps (leading spacing, offset 1)
    contents, styles = images(2, seed=10), images(2, seed=11)
    seeds = [5, 6]
    trace = []
    out = teacher.stylize(
        contents, styles, seeds=seeds, callback=lambda *a: trace.append((a[0], a[2], a[3], a[4]))
    )

    # Latent = posterior sample (noise from each image's own seed) x 0.18215; a style's
    # seed comes from the teacher's seed and its pixels.
    vae = components["vae"]
    stack = torch.stack(contents + styles) * 2 - 1
    with torch.no_grad():
        posterior = vae.encode(stack).latent_dist
    style_seeds = [teacher.style_noise_seed(style) for style in styles]
    assert len({*seeds, *style_seeds}) == 4
    noise = torch.stack(
        [
            torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(s))
            for s in [*seeds, *style_seeds]
        ]
    )
    x = ((posterior.mean + posterior.std * noise) * 0.18215).double()

    ref = Float64Reference(components, SIX_LAYERS, gamma=0.75, tau=1.5)
    a = lambda t: ref.alphas[t] if t is not None else ref.alphas[0]  # noqa: E731 (alpha_0: SD1.x)
    inv_targets = [*grid[1:], 999] if official else grid[1:]
    expected_trace = []
    ref.mode = "capture"
    with torch.no_grad():
        for t, t_next in zip(grid, inv_targets):
            x = ref.ddim(x, ref.eps(x, t), a(t), a(t_next))
            expected_trace.append(("invert", t, t_next, x))
        if not official:
            ref.eps(x, grid[-1])  # features at 981-equivalent for the clean schedule
        start = x
        z_c, z_s = start[:2], start[2:]
        mu_c, sd_c = z_c.mean((2, 3), keepdim=True), z_c.std((2, 3), keepdim=True, correction=1)
        mu_s, sd_s = z_s.mean((2, 3), keepdim=True), z_s.std((2, 3), keepdim=True, correction=1)
        x = sd_s * (z_c - mu_c) / sd_c + mu_s
        ref.injected = {key: (q[:2], k[2:], v[2:]) for key, (q, k, v) in ref.features.items()}
        ref.mode = "inject"
        sampling = grid[-2::-1] if official else grid[::-1]
        for i, t in enumerate(sampling):
            t_prev = sampling[i + 1] if i + 1 < len(sampling) else None
            x = ref.ddim(x, ref.eps(x, t), a(t), a(t_prev))
            expected_trace.append(("sample", t, t_prev, x))
        pixels = vae.double().decode(x / 0.18215).sample
        vae.float()
        expected_out = ((pixels + 1) / 2).clamp(0, 1)

    assert [e[:3] for e in trace] == [e[:3] for e in expected_trace]
    assert len(trace) == (4 + 3 if official else 3 + 4)
    errors = [
        ((got.double() - want).abs().max() / want.abs().max()).item()
        for (_, _, _, got), (_, _, _, want) in zip(trace, expected_trace)
    ]
    assert max(errors) < 2e-5, errors  # float32 rounding is ~1e-6
    # The official output is floored to 8-bit levels, as the official code saves it.
    assert torch.equal(out * 255, (out * 255).round())
    floored = torch.floor(expected_out * 255) / 255
    assert (out.double() - floored).abs().max().item() <= 1 / 255 + 1e-6


# --------------------------------------------------------------------------- behaviour


def test_protocol_config_and_model_info(components):
    teacher = make_teacher(components, model_id="local/sd", revision="abc")
    assert isinstance(teacher, Teacher)
    assert teacher.name == "styleid" and teacher.size == SIZE
    config = teacher.config()
    assert config["gamma"] == 0.75 and config["tau"] == 1.5 and config["layers"] == SIX_LAYERS
    assert config["adain_init"] and config["inject"] and config["official_schedule"]
    assert teacher.model_info() == {"model_id": "local/sd", "revision": "abc"}
    assert make_teacher(components).model_info() == {}


def test_switches_change_the_output(components):
    contents, styles = images(1, seed=20), images(1, seed=21)
    full = make_teacher(components).stylize(contents, styles)
    no_inject = make_teacher(components, inject=False).stylize(contents, styles)
    no_adain = make_teacher(components, adain_init=False).stylize(contents, styles)
    again = make_teacher(components).stylize(contents, styles)
    assert full.shape == (1, 3, SIZE, SIZE) and full.dtype == torch.float32
    assert full.min().item() >= 0.0 and full.max().item() <= 1.0
    assert (full - again).abs().max().item() < 1e-6  # the hooks follow the teacher in use
    assert (full - no_inject).abs().mean().item() > 1e-3
    assert (full - no_adain).abs().mean().item() > 1e-3


def test_batched_pairs_equal_one_by_one(components):
    teacher = make_teacher(components)
    contents = images(3, seed=30, height=40, width=48)  # non-square: centre crop
    style_a, style_b = images(2, seed=31)
    styles = [style_a, style_b, style_a]
    seeds = [1, 2, 3]
    batched = teacher.stylize(contents, styles, seeds=seeds, batch_size=3)
    single = torch.cat(
        [teacher.stylize([c], [s], seeds=[seed]) for c, s, seed in zip(contents, styles, seeds)]
    )
    same_teacher_output(batched, single)
    # The seed really is per pair: another seed changes that pair only.
    other = teacher.stylize(contents[:1], [style_a], seeds=[99])
    assert (other - batched[:1]).abs().mean().item() > 1e-4


def test_cached_features_equal_fresh_encoding(components, tmp_path, monkeypatch):
    teacher = make_teacher(components)
    contents, (style,) = images(2, seed=40), images(1, seed=41)
    fresh = teacher.stylize(contents, [style, style], batch_size=2)

    features = teacher.prepare_style(style)
    assert isinstance(features, StyleFeatures)
    assert features.timesteps == teacher.feature_timesteps == (334, 1)
    assert sorted(features.keys) == sorted(SIX_LAYERS)
    assert features.keys[SIX_LAYERS[-1]].shape == (2, 256, 8)  # steps, tokens, channels
    path = features.save(tmp_path / "style.safetensors")
    loaded = StyleFeatures.load(path)
    for name in SIX_LAYERS:
        assert torch.equal(loaded.keys[name], features.keys[name])
        assert torch.equal(loaded.values[name], features.values[name])
    assert torch.equal(loaded.latent, features.latent)
    cached = teacher.stylize(contents, [loaded], batch_size=1)
    same_teacher_output(cached, fresh)

    # On-disk cache: the first call writes, the second reads the same file.
    first = teacher.prepare_style(style, cache_dir=tmp_path / "cache")
    files = list((tmp_path / "cache").glob("styleid-*.safetensors"))
    assert len(files) == 1
    second = teacher.encode_style(style, cache_dir=tmp_path / "cache")
    assert torch.equal(first.keys[SIX_LAYERS[0]], second.keys[SIX_LAYERS[0]])

    # The teacher-wide cache: stylize writes the style once, then reads it back.
    teacher.style_cache_dir = tmp_path / "teacher-cache"
    loads = []
    original_load = StyleFeatures.load
    monkeypatch.setattr(
        StyleFeatures,
        "load",
        classmethod(lambda cls, *a, **k: loads.append(a) or original_load(*a, **k)),
    )
    written = teacher.stylize(contents, [style, style], batch_size=2)
    assert len(list(teacher.style_cache_dir.glob("*.safetensors"))) == 1 and not loads
    reread = teacher.stylize(contents, [style, style], batch_size=2)
    assert len(loads) == 1
    same_teacher_output(written, fresh)
    same_teacher_output(reread, fresh)
    teacher.style_cache_dir = None

    # Features of another schedule are refused, not silently mixed.
    clean = make_teacher(components, official_schedule=False)
    with pytest.raises(ConfigError, match="another schedule"):
        clean.stylize(contents[:1], [features])


def test_bad_inputs_give_one_line_errors(components, tmp_path):
    with pytest.raises(ConfigError, match="gamma"):
        make_teacher(components, gamma=1.5)
    with pytest.raises(ConfigError, match="multiple of 16"):
        make_teacher(components, size=40)
    with pytest.raises(ConfigError, match="not a self-attention layer"):
        make_teacher(components, layers=["down_blocks.9.attn1"])
    teacher = make_teacher(components)
    with pytest.raises(ConfigError, match="2 contents but 3 styles"):
        teacher.stylize(images(2, 1), images(3, 2))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors"):
        StyleFeatures.load(bad)
    with pytest.raises(CheckpointError, match="no such folder"):
        StyleIDTeacher.from_pretrained(str(tmp_path / "missing"))
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache"):
        StyleIDTeacher.from_pretrained("nobody/no-such-model", local_files_only=True)


def test_from_pretrained_loads_a_local_diffusers_folder(save_sd_folder, components, tmp_path):
    folder = save_sd_folder(components, tmp_path / "sd-tiny")

    teacher = StyleIDTeacher.from_pretrained(
        folder, device="cpu", num_steps=3, size=SIZE, progress=False
    )
    assert teacher.model_info()["model_id"] == str(folder)
    assert teacher.prompt_embeds.shape == (1, 7, 16)
    from styledistill.images import save_image

    style_file = save_image(images(1, 51, height=48, width=40)[0], tmp_path / "style.png")
    out = teacher.stylize(images(1, 50), [style_file])  # a path, loaded + centre-cropped
    assert out.shape == (1, 3, SIZE, SIZE) and torch.isfinite(out).all()


# --------------------------------------------------------------------------- SD 2.x


def test_sd2_unet_on_meta_device_has_the_six_layers_by_structure():
    from styledistill.teachers._styleid_attention import default_injection_layers

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD2_UNET_CONFIG)
    assert sorted(default_injection_layers(unet)) == sorted(SIX_LAYERS)
    modules = dict(unet.named_modules())
    for name in SIX_LAYERS:
        attn = modules[name]
        assert attn.to_q.out_features // attn.heads == 64  # SD 2.x: heads of 64 channels
        block = modules[name.rsplit(".transformer_blocks", 1)[0]]
        assert isinstance(block.proj_in, torch.nn.Linear)  # linear projections
    hooked = install_injection(unet, default_injection_layers(unet), InjectionState())
    assert sorted(hooked) == sorted(SIX_LAYERS)


def test_v_prediction_and_native_size(v_components):
    teacher = StyleIDTeacher(**v_components, device="cpu", dtype=torch.float32, num_steps=2)
    assert teacher.size == SIZE  # sample_size x VAE factor: 512 for SD 1.x, 768 for SD 2.1
    assert teacher.config()["prediction_type"] == "v_prediction"
    assert sorted(teacher.layers) == sorted(SIX_LAYERS)
    bad = copy.deepcopy(v_components["scheduler"])
    bad.register_to_config(prediction_type="sample")
    with pytest.raises(ConfigError, match="prediction_type 'sample' is not supported"):
        StyleIDTeacher(**{**v_components, "scheduler": bad}, device="cpu", dtype=torch.float32)


def test_teach_cli_accepts_an_sd2_folder(save_sd_folder, v_components, tmp_path, capsys):
    from styledistill.cli import main
    from styledistill.dataset import read_manifest
    from styledistill.images import save_image

    folder = save_sd_folder(v_components, tmp_path / "sd2-tiny")
    for kind, seed in (("c", 60), ("s", 61)):
        save_image(images(1, seed, height=40, width=36)[0], tmp_path / kind / "0.png")
    args = [
        "teach", "--teacher", "styleid", "--model", str(folder), "--device", "cpu",
        "--steps", "2", "--contents", str(tmp_path / "c"), "--styles", str(tmp_path / "s"),
        "--out", str(tmp_path / "data"), "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    (record,) = read_manifest(tmp_path / "data")
    assert record["teacher_config"]["prediction_type"] == "v_prediction"
    assert record["teacher_config"]["precision"] == "official"
    assert record["teacher_config"]["size"] == SIZE and record["teacher_config"]["layers"] == [
        *SIX_LAYERS
    ]


# --------------------------------------------------------------------------- precision


def test_official_precision_inverts_in_float32_and_samples_under_autocast(components):
    """fp32 weights, embedding, encode and inversion (Q cached fp32, K/V fp16); fp16 sampling."""
    # Teachers cast the modules they are given in place: one copy each.
    official = make_teacher(copy.deepcopy(components), dtype=torch.float16, num_steps=2)
    fast = make_teacher(
        copy.deepcopy(components), dtype=torch.float16, num_steps=2, precision="fast"
    )
    assert official.unet.dtype == official.vae.dtype == torch.float32
    assert official.prompt_embeds.dtype == torch.float32
    assert fast.unet.dtype == fast.prompt_embeds.dtype == torch.float16
    assert official.config()["precision"] == "official" and official.config()["dtype"] == "float16"

    seen = []
    attn = dict(official.unet.named_modules())[SIX_LAYERS[0]]
    handle = attn.to_q.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        contents, styles = images(1, seed=70), images(1, seed=71)
        latents = official.encode_images(torch.stack(contents + styles), [1, 2])
        assert latents.dtype == torch.float32
        start, q, k, v = official.invert(latents, q_rows=[0], kv_rows=[1])
        inverted = len(seen)
        assert set(seen) == {torch.float32}
        assert q[SIX_LAYERS[0]][0].dtype == torch.float32
        assert k[SIX_LAYERS[0]][0].dtype == v[SIX_LAYERS[0]][0].dtype == torch.float16
        out = official.sample(official.adain(start[:1], start[1:]), q, k, v)
        assert set(seen[inverted:]) == {torch.float16} and out.dtype == torch.float32
    finally:
        handle.remove()
    pixels = official.decode(out)
    assert torch.isfinite(pixels).all() and torch.equal(pixels * 255, (pixels * 255).round())
    assert fast.stylize(contents, styles).dtype == torch.float32


# --------------------------------------------------------------------------- noise, crop


def test_content_and_style_never_share_a_posterior_draw(components, monkeypatch):
    teacher = make_teacher(components, num_steps=2)
    (image,) = images(1, seed=80)
    other = images(1, seed=81)[0]
    drawn = []
    encode = teacher.encode_images
    monkeypatch.setattr(
        teacher, "encode_images", lambda x, s: drawn.append(list(s)) or encode(x, s)
    )
    teacher.stylize([image], [image])  # the same picture as content and style, no seeds
    teacher.stylize([image, image], [image, other], seeds=[5, 6], batch_size=2)
    (content, style), (c1, c2, s1, s2) = drawn
    assert content == 22 and style == teacher.style_noise_seed(image) != 22
    assert [c1, c2] == [5, 6] and s1 == style and s2 not in (style, 5, 6)
    # Reproducible across teachers; another teacher seed gives other style draws.
    assert make_teacher(components, num_steps=2).style_noise_seed(image) == style
    assert make_teacher(components, num_steps=2, seed=23).style_noise_seed(image) != style


def test_official_crop_rounds_the_offset_like_center_crop(components):
    """(long - short) = 7: CenterCrop's offset is round(3.5) = 4, a floor would give 3."""
    ramp = torch.arange(39, dtype=torch.float32).div(255).expand(3, SIZE, 39).contiguous()
    official = make_teacher(components, num_steps=2)._preprocess(ramp, "content")
    fast = make_teacher(components, num_steps=2, precision="fast")._preprocess(ramp, "content")
    assert torch.equal(official, ramp[:, :, 4 : 4 + SIZE])
    assert torch.equal(fast, ramp[:, :, 3 : 3 + SIZE])


# --------------------------------------------------------------------------- feature cache


def test_cache_key_covers_weights_scheduler_prompt_seed_and_precision(components, tmp_path):
    teacher = make_teacher(components, num_steps=2)
    (style,) = images(1, seed=90)
    features = teacher.prepare_style(style, cache_dir=tmp_path)
    assert {"weights", "scheduler", "prompt"} <= set(features.info)

    # Component-built teachers with other weights do not share features or cache files.
    changed = copy.deepcopy(components)
    with torch.no_grad():
        changed["unet"].conv_in.weight[0, 0, 0, 0] += 1e-3
    assert weights_fingerprint(changed["unet"]) != weights_fingerprint(components["unet"])
    scheduler = DDIMScheduler.from_config(components["scheduler"].config, beta_end=0.013)
    cases = {
        "model weights": make_teacher(changed, num_steps=2),
        "scheduler": make_teacher({**components, "scheduler": scheduler}, num_steps=2),
        "prompt embedding": make_teacher(
            {**components, "prompt_embeds": components["prompt_embeds"] + 1e-3}, num_steps=2
        ),
        "seed": make_teacher(components, num_steps=2, seed=5),
        "precision": make_teacher(components, num_steps=2, precision="fast"),
    }
    for what, other in cases.items():
        with pytest.raises(ConfigError, match=f"made with other {what} ") as error:
            other.stylize(images(1, seed=91), [features])
        assert "\n" not in str(error.value)
        assert other._prepare(style).digest != teacher._prepare(style).digest  # other cache file
    other = cases["scheduler"]
    other.prepare_style(style, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("styleid-*.safetensors"))) == 2  # no stale file was read

    stale = StyleFeatures(features.keys, features.values, features.latent, features.timesteps, {})
    with pytest.raises(ConfigError, match="older styledistill"):
        teacher.check_features(stale)
    half = make_teacher(
        copy.deepcopy(components), num_steps=2, dtype=torch.float16, precision="fast"
    )
    with pytest.raises(ConfigError, match=r"precision|dtype"):
        half.check_features(features)


# --------------------------------------------------------------------------- single files


def _write_safetensors(path, tensors: dict) -> str:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return str(path)


SD1_FILE_KEYS = {
    "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3),
    "model.diffusion_model.output_blocks.11.0.skip_connection.weight": torch.zeros(8, 16, 1, 1),
}


def test_single_file_refuses_other_architectures_by_name(tmp_path):
    sdxl = _write_safetensors(
        tmp_path / "sdxl.safetensors",
        {"conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": torch.zeros(4)},
    )
    sd3 = _write_safetensors(
        tmp_path / "sd3.safetensors",
        {
            "model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias": (
                torch.zeros(9216)
            ),
            "model.diffusion_model.pos_embed": torch.zeros(1, 36864, 1),
        },
    )
    junk = _write_safetensors(tmp_path / "junk.safetensors", {"weight": torch.zeros(2)})
    for path, what in ((sdxl, "a SDXL checkpoint"), (sd3, "a SD3 checkpoint"), (junk, "not a")):
        with pytest.raises(CheckpointError, match=what) as error:
            StyleIDTeacher.from_pretrained(path, device="cpu")
        assert "supports Stable Diffusion 1.x and 2.x" in str(error.value)
        assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        StyleIDTeacher.from_pretrained(str(tmp_path / "missing.ckpt"), device="cpu")
    folder = tmp_path / "sdxl-folder"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    with pytest.raises(CheckpointError, match="StableDiffusionXLPipeline folder"):
        StyleIDTeacher.from_pretrained(folder, device="cpu")


def test_single_file_offline_needs_local_configs(tmp_path, monkeypatch):
    """No config, no original_config, nothing cached: one line, and nothing downloaded."""
    import huggingface_hub
    from diffusers import StableDiffusionPipeline

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(
        StableDiffusionPipeline,
        "from_single_file",
        classmethod(lambda *a, **k: pytest.fail("from_single_file must not run")),
    )
    path = _write_safetensors(tmp_path / "sd15.safetensors", SD1_FILE_KEYS)
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache") as error:
        StyleIDTeacher.from_pretrained(path, device="cpu")
    assert "config=" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match="no such file"):
        StyleIDTeacher.from_pretrained(path, device="cpu", original_config=tmp_path / "x.yaml")


def test_single_file_goes_through_from_single_file_and_the_cli(
    save_sd_folder, components, tmp_path, monkeypatch
):
    """diffusers ships no converter back to the original layout, so a tiny real checkpoint
    cannot be made here: ``from_single_file`` is replaced by a fake that returns tiny
    components, and the test checks what it is asked and that the teacher and the CLI
    use what it returns."""
    from types import SimpleNamespace

    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel, CLIPTokenizer

    from styledistill.cli import main
    from styledistill.dataset import read_manifest
    from styledistill.images import save_image

    folder = save_sd_folder(components, tmp_path / "config")
    calls = []

    def fake_from_single_file(cls, path, **kwargs):
        calls.append((path, kwargs))
        return SimpleNamespace(
            unet=copy.deepcopy(components["unet"]),
            vae=copy.deepcopy(components["vae"]),
            text_encoder=CLIPTextModel.from_pretrained(folder / "text_encoder"),
            tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
            scheduler=components["scheduler"],
        )

    monkeypatch.setattr(
        StableDiffusionPipeline, "from_single_file", classmethod(fake_from_single_file)
    )
    path = _write_safetensors(tmp_path / "sd15.safetensors", SD1_FILE_KEYS)
    teacher = StyleIDTeacher.from_pretrained(path, device="cpu", config=folder, num_steps=2)
    ((called, kwargs),) = calls
    assert called == path and kwargs["config"] == str(folder) and kwargs["original_config"] is None
    assert kwargs["local_files_only"] is True and kwargs["torch_dtype"] == torch.float32
    assert teacher.model_info()["model_id"] == path and teacher.size == SIZE
    assert type(teacher.scheduler).__name__ == "DDIMScheduler"

    for kind, seed in (("c", 100), ("s", 101)):
        save_image(images(1, seed)[0], tmp_path / kind / "0.png")
    args = [
        "teach", "--teacher", "styleid", "--model", path, "--teacher-option",
        f"config={folder}", "--device", "cpu", "--steps", "2", "--contents",
        str(tmp_path / "c"), "--styles", str(tmp_path / "s"), "--out", str(tmp_path / "data"),
        "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0
    assert calls[-1][1]["config"] == str(folder) and calls[-1][1]["local_files_only"] is True
    (record,) = read_manifest(tmp_path / "data")
    assert record["model"]["model_id"] == path
