"""StyleID (Chung et al., CVPR 2024) on diffusers: the diffusion teacher, exact and batched.

The algorithm (design §3):

1. Preprocess: centre-crop to the short side, LANCZOS to ``size``; latent = VAE
   posterior *sample* x ``scaling_factor`` (0.18215), the noise drawn per image from its
   own seed (22 unless a pair's seed says otherwise), so no result depends on batching.
2. DDIM inversion (eta = 0, empty prompt, no CFG) of content and style together in one
   batch, written here rather than with ``DDIMInverseScheduler``. The UNet is evaluated at
   every grid timestep ``t = 1, 21, ..., 981`` (SD 1.x DDIM grid, 50 steps); the latent
   steps up the grid ``1 -> 21 -> ... -> 981`` and, with the official schedule, one more
   step ``981 -> 999`` that reuses the noise prediction made at 981 (the official
   ``encode_ddim`` replaces the last grid target 1001 by 999). The clean latent is
   treated as the latent at ``t = 1``, as the official code does.
   While inverting, the injected layers store Q (content rows) and K, V (style rows)
   after ``norm1`` and projection, one entry per sampling step that will read them.
3. Start latent: AdaIN of the inverted content latent to the inverted style latent per
   channel (unbiased std).
4. DDIM sampling with injection: ``Q~ = gamma Q_c + (1 - gamma) Q``, ``K = K_s``,
   ``V = V_s``, ``softmax(tau Q~ K^T / sqrt(d)) V`` in one SDPA call.
   *Official schedule* (default): start from the t = 999 latent, skip t = 981 and run
   the 49 steps ``961 -> 941 -> ... -> 1 -> 0``. *Clean schedule*: invert only up to
   t = 981 (49 DDIM steps, plus one UNet call at 981 whose features are kept) and
   sample all 50 steps ``981 -> ... -> 1 -> 0``.
5. One VAE decode per image at the end.

A style is inverted once (:meth:`StyleIDTeacher.prepare_style` -> :class:`StyleFeatures`,
K/V of the injected layers + the start latent, fp16 on GPU) and reused for any number
of contents; pairs with different styles share one UNet call (per-sample features).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError, MissingDependencyError
from ..images import center_crop_resize, load_image
from ._styleid_attention import (
    DEFAULT_LAYERS,
    InjectionState,
    install_injection,
)

__all__ = ["DEFAULT_LAYERS", "DEFAULT_MODEL", "StyleFeatures", "StyleIDTeacher"]

#: The checkpoint of the paper.
DEFAULT_MODEL = "CompVis/stable-diffusion-v1-4"
#: Version tag written into saved style features; bump when the layout changes.
FEATURES_FORMAT = "styledistill.StyleFeatures/1"
#: The UNet and VAE shapes of SD 1.x (CompVis/stable-diffusion-v1-4's config.json files),
#: for random-weight builds: benchmarks (time does not depend on weight values) and
#: meta-device tests of which layers get hooked.
SD1_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
}
SD1_VAE_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

#: ``callback(phase, index, t_from, t_to, latent)`` after each DDIM step (phase
#: ``"invert"`` or ``"sample"``); used by tests and for debugging.
StepCallback = Callable[[str, int, int, int | None, torch.Tensor], None]


def _require_diffusers(feature: str):
    try:
        import diffusers
    except ImportError:
        raise MissingDependencyError("diffusers", "teacher", feature) from None
    return diffusers


# --------------------------------------------------------------------------- features


@dataclass
class StyleFeatures:
    """One inverted style: what sampling needs from it, and nothing more.

    ``keys``/``values`` map each injected layer to ``[steps, tokens, channels]`` (one
    row per sampling step, in sampling order ``timesteps``); ``latent`` is the inverted
    style latent ``[4, h, w]`` at the start of sampling (used for AdaIN); ``info`` holds
    the settings it was made with, so a mismatch is caught instead of silently mixed.
    """

    keys: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]
    latent: torch.Tensor
    timesteps: tuple[int, ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Memory held by the features (bytes)."""
        tensors = [*self.keys.values(), *self.values.values(), self.latent]
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def device(self) -> torch.device:
        return self.latent.device

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> StyleFeatures:
        """A copy on ``device`` (K/V cast to ``dtype`` if given; the latent stays float32)."""
        return StyleFeatures(
            keys={n: t.to(device, dtype) for n, t in self.keys.items()},
            values={n: t.to(device, dtype) for n, t in self.values.items()},
            latent=self.latent.to(device),
            timesteps=tuple(self.timesteps),
            info=dict(self.info),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write a safetensors file (atomic: temp file + rename)."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {"latent": self.latent.contiguous().cpu()}
        for name, tensor in self.keys.items():
            tensors[f"k.{name}"] = tensor.contiguous().cpu()
        for name, tensor in self.values.items():
            tensors[f"v.{name}"] = tensor.contiguous().cpu()
        metadata = {
            "format": FEATURES_FORMAT,
            "timesteps": json.dumps(list(self.timesteps)),
            "info": json.dumps(self.info, sort_keys=True),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            save_file(tensors, str(tmp), metadata=metadata)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> StyleFeatures:
        """Read a file written by :meth:`save`. Raises :class:`CheckpointError`."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such style-features file")
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as handle:
                metadata = handle.metadata() or {}
                if metadata.get("format") != FEATURES_FORMAT:
                    raise CheckpointError(
                        f"{path}: not a styledistill style-features file "
                        f"(format {metadata.get('format')!r}, expected {FEATURES_FORMAT!r})"
                    )
                keys, values, latent = {}, {}, None
                for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    tensor = handle.get_tensor(name)
                    if name == "latent":
                        latent = tensor
                    elif name.startswith("k."):
                        keys[name[2:]] = tensor
                    elif name.startswith("v."):
                        values[name[2:]] = tensor
                timesteps = tuple(json.loads(metadata["timesteps"]))
                info = json.loads(metadata.get("info", "{}"))
        except CheckpointError:
            raise
        except Exception as exc:  # corrupt header, truncated file, bad JSON
            raise CheckpointError(f"{path}: cannot read style features ({exc})") from None
        if latent is None or set(keys) != set(values):
            raise CheckpointError(f"{path}: incomplete style features (latent or K/V missing)")
        return cls(keys, values, latent, timesteps, info)


# --------------------------------------------------------------------------- teacher


@dataclass
class _Prepared:
    """A preprocessed style image waiting for inversion."""

    image: torch.Tensor
    digest: str


class StyleIDTeacher:
    """StyleID teacher on any Stable Diffusion 1.x diffusers checkpoint.

    Build it with :meth:`from_pretrained` (hub id or local folder) or from components
    (tests use tiny random ones). Settings default to the paper's; see the module
    docstring for the algorithm and the two schedules.
    """

    name = "styleid"

    def __init__(
        self,
        unet: torch.nn.Module,
        vae: torch.nn.Module,
        scheduler: Any,
        prompt_embeds: torch.Tensor | None = None,
        text_encoder: torch.nn.Module | None = None,
        tokenizer: Any = None,
        *,
        num_steps: int = 50,
        gamma: float = 0.75,
        tau: float = 1.5,
        adain_init: bool = True,
        inject: bool = True,
        layers: Sequence[str] = DEFAULT_LAYERS,
        official_schedule: bool = True,
        size: int = 512,
        seed: int = 22,
        batch_size: int = 8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        progress: bool = True,
        style_cache_dir: str | os.PathLike | None = None,
        model_id: str | None = None,
        revision: str | None = None,
        channels_last: bool = False,
    ) -> None:
        self.device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        if self.device.type == "cuda" and self.device.index is None:
            # Tensors report "cuda:N"; compare like with like when checking features.
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = _resolve_dtype(dtype, self.device)
        self.num_steps = _check_int("num_steps", num_steps, 2 if official_schedule else 1)
        self.gamma = _check_float("gamma", gamma, 0.0, 1.0)
        self.tau = _check_float("tau", tau, 1e-6, math.inf)
        self.adain_init = bool(adain_init)
        self.inject = bool(inject)
        self.official_schedule = bool(official_schedule)
        self.seed = int(seed)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.progress = bool(progress)
        self.style_cache_dir = None if style_cache_dir is None else Path(style_cache_dir)
        self.model_id = model_id
        self.revision = revision
        if isinstance(layers, str):
            layers = [name.strip() for name in layers.split(",") if name.strip()]
        self.layers = tuple(dict.fromkeys(layers))
        if self.inject and not self.layers:
            raise ConfigError("layers: give at least one injection layer (or inject=False)")

        config = getattr(scheduler, "config", None)
        if config is None or not hasattr(scheduler, "alphas_cumprod"):
            raise ConfigError("scheduler: expected a diffusers DDIM-compatible scheduler")
        if config.get("prediction_type", "epsilon") != "epsilon":
            raise ConfigError(
                f"scheduler: prediction_type {config.get('prediction_type')!r} is not supported "
                "yet (StyleID here needs an epsilon-prediction SD 1.x model)"
            )
        self.scheduler = scheduler
        self.unet = _place(unet, self.device, self.dtype)
        self.vae = _place(vae, self.device, self.dtype)
        self.channels_last = bool(channels_last)
        if self.channels_last:  # often faster convolutions on recent GPUs (same maths)
            self.unet.to(memory_format=torch.channels_last)
        self.scaling_factor = float(self.vae.config.scaling_factor)
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        multiple = self.vae_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)
        self.size = _check_int("size", size, multiple)
        if self.size % multiple:
            raise ConfigError(f"size {size}: must be a multiple of {multiple} for this model")

        if prompt_embeds is None:
            if text_encoder is None or tokenizer is None:
                raise ConfigError(
                    "give prompt_embeds (the empty-prompt embedding) or both text_encoder "
                    "and tokenizer"
                )
            prompt_embeds = _empty_prompt_embedding(text_encoder, tokenizer)
        if prompt_embeds.ndim == 2:
            prompt_embeds = prompt_embeds.unsqueeze(0)
        if prompt_embeds.ndim != 3 or prompt_embeds.shape[0] != 1:
            raise ConfigError(
                f"prompt_embeds: expected [1, tokens, dim], got {tuple(prompt_embeds.shape)}"
            )
        # The text encoder is needed once; the embedding is all the teacher keeps.
        self.prompt_embeds = prompt_embeds.to(self.device, self.dtype)

        self._build_schedule()
        self.state = InjectionState(gamma=self.gamma, tau=self.tau)
        self._hooks: dict[str, Any] = {}
        self._ensure_hooks()

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_path: str | os.PathLike = DEFAULT_MODEL,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
        **settings: Any,
    ) -> StyleIDTeacher:
        """Load UNet, VAE, text encoder, tokenizer and DDIM scheduler of an SD 1.x model.

        ``model_id_or_path`` is a hub id (e.g. ``runwayml/stable-diffusion-v1-5``) or a
        local diffusers folder (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
        ``scheduler/``). Raises :class:`CheckpointError` with a one-line reason.
        """
        _require_diffusers("the StyleID teacher")
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

        try:
            from transformers import CLIPTextModel, CLIPTokenizer
        except ImportError:
            raise MissingDependencyError("transformers", "teacher", "the StyleID teacher") from None

        source = os.fspath(model_id_or_path)
        is_folder = Path(source).is_dir()
        if not is_folder and (source.startswith((".", "/", "~")) or source.count("/") > 1):
            raise CheckpointError(f"{source}: no such folder (expected a diffusers model folder)")
        resolved_device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        dtype = _resolve_dtype(dtype, resolved_device)
        common: dict[str, Any] = {"revision": revision}
        if local_files_only is not None:
            common["local_files_only"] = local_files_only

        def load(kind: Any, subfolder: str, **extra: Any) -> Any:
            try:
                return kind.from_pretrained(source, subfolder=subfolder, **common, **extra)
            except Exception as exc:  # diffusers/hub raise many types; report one line
                raise CheckpointError(_load_error(source, subfolder, is_folder, exc)) from None

        unet = load(UNet2DConditionModel, "unet", torch_dtype=dtype)
        vae = load(AutoencoderKL, "vae", torch_dtype=dtype)
        text_encoder = load(CLIPTextModel, "text_encoder", torch_dtype=dtype)
        tokenizer = load(CLIPTokenizer, "tokenizer")
        scheduler = load(DDIMScheduler, "scheduler")
        text_encoder = text_encoder.to(resolved_device)
        prompt_embeds = _empty_prompt_embedding(text_encoder, tokenizer)
        del text_encoder  # not needed after the empty-prompt embedding
        if resolved_device.type == "cuda":
            torch.cuda.empty_cache()
        return cls(
            unet,
            vae,
            scheduler,
            prompt_embeds=prompt_embeds,
            device=resolved_device,
            dtype=dtype,
            model_id=source,
            revision=revision,
            **settings,
        )

    # ------------------------------------------------------------------ protocol

    def config(self) -> dict[str, Any]:
        """Every setting that changes the output (JSON-serializable, for manifests)."""
        return {
            "num_steps": self.num_steps,
            "gamma": self.gamma,
            "tau": self.tau,
            "adain_init": self.adain_init,
            "inject": self.inject,
            "layers": list(self.layers),
            "official_schedule": self.official_schedule,
            "size": self.size,
            "seed": self.seed,
            "dtype": str(self.dtype).removeprefix("torch."),
            "sampling_timesteps": [t for t, _ in self.sampling_steps],
        }

    def model_info(self) -> dict[str, Any]:
        """The weights used (empty when built from unnamed components)."""
        if self.model_id is None:
            return {}
        return {"model_id": self.model_id, "revision": self.revision}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "layers")
        return f"StyleIDTeacher({self.model_id or 'components'}, {settings}, device={self.device})"

    # ------------------------------------------------------------------ schedule

    def _build_schedule(self) -> None:
        """Grid, inversion steps and sampling steps (see the module docstring)."""
        self.scheduler.set_timesteps(self.num_steps)
        grid = sorted({int(t) for t in self.scheduler.timesteps})
        if len(grid) != self.num_steps:
            raise ConfigError(f"num_steps {self.num_steps}: scheduler gave {len(grid)} timesteps")
        last = int(self.scheduler.config.num_train_timesteps) - 1
        self.grid = tuple(grid)
        alphas = self.scheduler.alphas_cumprod.to(torch.float64)
        self._alpha = {t: float(alphas[t]) for t in range(len(alphas))}
        self._alpha[None] = float(self.scheduler.final_alpha_cumprod)
        # Inversion: (UNet timestep, latent target) per DDIM step.
        targets = [*grid[1:], last] if self.official_schedule else grid[1:]
        self.inversion_steps: tuple[tuple[int, int], ...] = tuple(zip(grid, targets))
        # Sampling: (UNet timestep, target; None = the final clean latent).
        top = len(grid) - 2 if self.official_schedule else len(grid) - 1
        self.sampling_steps: tuple[tuple[int, int | None], ...] = tuple(
            (grid[i], grid[i - 1] if i > 0 else None) for i in range(top, -1, -1)
        )
        self.feature_timesteps = tuple(t for t, _ in self.sampling_steps)
        self._feature_index = {t: i for i, t in enumerate(self.feature_timesteps)}
        self.start_timestep = last if self.official_schedule else grid[-1]

    def _ensure_hooks(self) -> None:
        """(Re)install this teacher's processors if another teacher took over the UNet."""
        if not self.inject:
            return
        current = self.unet.attn_processors
        if not self._hooks or any(
            current.get(f"{name}.processor") is not hook for name, hook in self._hooks.items()
        ):
            self._hooks = install_injection(self.unet, self.layers, self.state)

    def _ddim(self, x: torch.Tensor, eps: torch.Tensor, t_from: int, t_to: int | None):
        """Deterministic DDIM move (eta = 0) of ``x`` from level ``t_from`` to ``t_to``."""
        a_from, a_to = self._alpha[t_from], self._alpha[t_to]
        x0 = (x - math.sqrt(1.0 - a_from) * eps) / math.sqrt(a_from)
        return math.sqrt(a_to) * x0 + math.sqrt(1.0 - a_to) * eps

    def _eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        batch = x.shape[0]
        timestep = torch.full((batch,), t, device=self.device, dtype=torch.long)
        embeds = self.prompt_embeds.expand(batch, -1, -1)
        out = self.unet(x.to(self.dtype), timestep, encoder_hidden_states=embeds).sample
        return out.float()

    def _bar(self, total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False, disable=not self.progress, unit="step")

    # ------------------------------------------------------------------ stages

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """``[B,3,S,S]`` in [0,1] -> latents: posterior sample x scaling factor (float32).

        The posterior noise of image ``i`` comes from ``torch.Generator().manual_seed(
        seeds[i])`` on the CPU, so it is the same on any device and in any batch.
        """
        means, stds = [], []
        for part in images.split(8):  # the VAE encoder's activations are large at 512 px
            pixels = part.to(self.device, self.dtype) * 2.0 - 1.0
            posterior = self.vae.encode(pixels).latent_dist
            means.append(posterior.mean.float())
            stds.append(posterior.std.float())
        mean, std = torch.cat(means), torch.cat(stds)
        noise = torch.stack(
            [
                torch.randn(mean.shape[1:], generator=torch.Generator().manual_seed(int(s)))
                for s in seeds
            ]
        ).to(self.device)
        return (mean + std * noise) * self.scaling_factor

    @torch.no_grad()
    def invert(
        self,
        latents: torch.Tensor,
        *,
        q_rows: Sequence[int] = (),
        kv_rows: Sequence[int] = (),
        callback: StepCallback | None = None,
    ) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]], dict, dict]:
        """DDIM-invert ``latents``; return the start latents and the captured features.

        Q is kept for ``q_rows`` (contents), K and V for ``kv_rows`` (styles), each as one
        ``[steps, tokens, channels]`` tensor per row, for the steps sampling will use.
        """
        capture = self.inject and bool(q_rows or kv_rows)
        self._ensure_hooks()
        if capture:
            self.state.start_capture(
                len(self.feature_timesteps), q_rows, kv_rows, store_dtype=self.dtype
            )
        else:
            self.state.reset()
        x = latents.float()
        try:
            with self._bar(len(self.inversion_steps), "StyleID inversion") as bar:
                for index, (t, t_next) in enumerate(self.inversion_steps):
                    self.state.capture_step = self._feature_index.get(t) if capture else None
                    x = self._ddim(x, self._eps(x, t), t, t_next)
                    if callback is not None:
                        callback("invert", index, t, t_next, x)
                    bar.update()
                top = self.grid[-1]
                if capture and not self.official_schedule and top in self._feature_index:
                    # Clean schedule: the latent stops at the top grid step, but its
                    # features at that step are needed, so the UNet runs once more.
                    self.state.capture_step = self._feature_index[top]
                    self._eps(x, top)
            q, k, v = self.state.captured_q, self.state.captured_k, self.state.captured_v
        finally:
            self.state.reset()
        return x, q, k, v

    @torch.no_grad()
    def sample(
        self,
        start: torch.Tensor,
        q: dict[str, list[torch.Tensor]] | None = None,
        k: dict[str, list[torch.Tensor]] | None = None,
        v: dict[str, list[torch.Tensor]] | None = None,
        *,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """DDIM sampling from ``start`` with the per-row features injected (if ``inject``)."""
        if self.inject:
            if not (q and k and v):
                raise ConfigError("sample: injection is on but no features were given")
            self._ensure_hooks()
            self.state.start_injection(q, k, v)
        else:
            self.state.reset()
        x = start.float()
        try:
            with self._bar(len(self.sampling_steps), "StyleID sampling") as bar:
                for index, (t, t_prev) in enumerate(self.sampling_steps):
                    self.state.inject_step = index
                    x = self._ddim(x, self._eps(x, t), t, t_prev)
                    if callback is not None:
                        callback("sample", index, t, t_prev, x)
                    bar.update()
        finally:
            self.state.reset()
        return x

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, *, chunk: int = 4) -> torch.Tensor:
        """Latents -> images ``[B,3,S,S]`` float32 in [0,1] on the CPU (chunked for memory)."""
        outputs = []
        for part in latents.split(chunk):
            pixels = self.vae.decode((part / self.scaling_factor).to(self.dtype)).sample
            outputs.append(((pixels.float() + 1.0) / 2.0).clamp(0.0, 1.0).cpu())
        return torch.cat(outputs)

    @staticmethod
    def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Per-sample, per-channel AdaIN of latents (unbiased std, as the official code)."""
        mu_c = content.mean(dim=(2, 3), keepdim=True)
        sd_c = content.std(dim=(2, 3), keepdim=True)
        mu_s = style.mean(dim=(2, 3), keepdim=True)
        sd_s = style.std(dim=(2, 3), keepdim=True)
        return sd_s * (content - mu_c) / sd_c + mu_s

    # ------------------------------------------------------------------ styles

    def _features_info(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "revision": self.revision,
            "size": self.size,
            "num_steps": self.num_steps,
            "official_schedule": self.official_schedule,
            "layers": list(self.layers) if self.inject else [],
            "seed": self.seed,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def _preprocess(self, image: Any, what: str) -> torch.Tensor:
        if isinstance(image, StyleFeatures):
            raise ConfigError(f"{what}: style features cannot be used as a content image")
        tensor = image if isinstance(image, torch.Tensor) else load_image(image)
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        return center_crop_resize(tensor, self.size)

    def _prepare(self, style: Any) -> _Prepared:
        image = self._preprocess(style, "style")
        digest = hashlib.sha256(image.mul(255).round().to(torch.uint8).numpy().tobytes())
        digest.update(json.dumps(self._features_info(), sort_keys=True).encode())
        return _Prepared(image, digest.hexdigest()[:32])

    def _cache_path(self, digest: str, cache_dir: Path | None) -> Path | None:
        return None if cache_dir is None else cache_dir / f"styleid-{digest}.safetensors"

    def check_features(self, features: StyleFeatures) -> StyleFeatures:
        """Raise :class:`ConfigError` unless ``features`` fit this teacher; return them on device."""
        if tuple(features.timesteps) != self.feature_timesteps:
            raise ConfigError(
                "style features were made with another schedule "
                f"(steps {features.info.get('num_steps')}, official_schedule "
                f"{features.info.get('official_schedule')}); prepare the style again"
            )
        mine = self._features_info()
        for key in ("size", "model_id", "revision"):
            theirs = features.info.get(key)
            if theirs is not None and mine[key] is not None and theirs != mine[key]:
                raise ConfigError(
                    f"style features were made with {key}={theirs!r}, this teacher has "
                    f"{key}={mine[key]!r}; prepare the style again"
                )
        if self.inject:
            missing = [name for name in self.layers if name not in features.keys]
            if missing:
                raise ConfigError(f"style features lack K/V for layers {missing}")
        latent_side = self.size // self.vae_scale
        if features.latent.shape[-1] != latent_side:
            raise ConfigError(
                f"style features have a {features.latent.shape[-1]}-wide latent, "
                f"this teacher needs {latent_side} (size {self.size})"
            )
        if features.device != self.device:
            features = features.to(self.device, self.dtype)
        return features

    def prepare_style(
        self, style: Any, *, cache_dir: str | os.PathLike | None = None
    ) -> StyleFeatures:
        """Invert one style once; the result is reused for any number of contents.

        With ``cache_dir`` (or the teacher's ``style_cache_dir``) the features are also
        stored as ``styleid-<hash>.safetensors`` and loaded from there next time.
        """
        return self.prepare_styles([style], cache_dir=cache_dir)[0]

    def encode_style(
        self, style: Any, *, cache_dir: str | os.PathLike | None = None
    ) -> StyleFeatures:
        """Same as :meth:`prepare_style` (the name issue 3 uses)."""
        return self.prepare_style(style, cache_dir=cache_dir)

    def prepare_styles(
        self, styles: Sequence[Any], *, cache_dir: str | os.PathLike | None = None
    ) -> list[StyleFeatures]:
        """Batched :meth:`prepare_style` (identical images are inverted once)."""
        folder = Path(cache_dir) if cache_dir is not None else self.style_cache_dir
        results: list[StyleFeatures | None] = []
        pending: dict[str, tuple[_Prepared, list[int]]] = {}
        for index, style in enumerate(styles):
            if isinstance(style, StyleFeatures):
                results.append(self.check_features(style))
                continue
            prepared = style if isinstance(style, _Prepared) else self._prepare(style)
            results.append(None)
            if prepared.digest in pending:
                pending[prepared.digest][1].append(index)
            else:
                pending[prepared.digest] = (prepared, [index])
        todo = []
        for digest, (prepared, indices) in pending.items():
            path = self._cache_path(digest, folder)
            if path is not None and path.is_file():
                features = self.check_features(StyleFeatures.load(path, self.device))
                for index in indices:
                    results[index] = features
            else:
                todo.append((prepared, indices))
        for start in range(0, len(todo), self.batch_size):
            group = todo[start : start + self.batch_size]
            images = torch.stack([prepared.image for prepared, _ in group])
            latents = self.encode_images(images, [self.seed] * len(group))
            rows = list(range(len(group)))
            start_latents, _, k, v = self.invert(latents, kv_rows=rows)
            made = self._style_features(start_latents, k, v, rows)
            for (prepared, indices), features in zip(group, made):
                path = self._cache_path(prepared.digest, folder)
                if path is not None:
                    features.save(path)
                for index in indices:
                    results[index] = features
        return results  # type: ignore[return-value]

    def _style_features(
        self, start: torch.Tensor, k: dict, v: dict, rows: Sequence[int]
    ) -> list[StyleFeatures]:
        info = self._features_info()
        out = []
        for j, row in enumerate(rows):
            out.append(
                StyleFeatures(
                    keys={name: buffers[j] for name, buffers in k.items()},
                    values={name: buffers[j] for name, buffers in v.items()},
                    latent=start[row].clone(),
                    timesteps=self.feature_timesteps,
                    info=dict(info),
                )
            )
        return out

    # ------------------------------------------------------------------ stylize

    def stylize(
        self,
        contents: Sequence[Any] | torch.Tensor,
        styles: Sequence[Any] | torch.Tensor,
        *,
        batch_size: int | None = None,
        seeds: Sequence[int] | None = None,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """Stylize pairs ``(contents[i], styles[i])`` -> ``[B,3,size,size]`` float32 CPU.

        ``styles`` items are images or :class:`StyleFeatures`; one style is broadcast to
        all contents. Pairs go through the UNet ``batch_size`` at a time, different styles
        in the same call; style images not yet prepared are inverted in the same batch as
        the contents. ``seeds[i]`` seeds the content's posterior noise (default ``seed``).
        """
        contents = _as_list(contents)
        styles = _as_list(styles)
        if len(styles) == 1 and len(contents) > 1:
            styles = styles * len(contents)
        if len(styles) != len(contents):
            raise ConfigError(f"stylize: {len(contents)} contents but {len(styles)} styles")
        if seeds is None:
            seeds = [self.seed] * len(contents)
        seeds = [int(s) for s in seeds]
        if len(seeds) != len(contents):
            raise ConfigError(f"stylize: {len(contents)} pairs but {len(seeds)} seeds")
        batch = _check_int("batch_size", batch_size or self.batch_size, 1)
        if not contents:
            return torch.empty(0, 3, self.size, self.size)

        # Styles as images: preprocess once; a style used by more than one batch is
        # inverted once up front, the others together with their batch's contents.
        resolved: list[StyleFeatures | _Prepared] = []
        batches_of: dict[str, set[int]] = {}
        for index, style in enumerate(styles):
            if isinstance(style, (StyleFeatures, _Prepared)):
                resolved.append(style)
                continue
            prepared = self._prepare(style)
            resolved.append(prepared)
            batches_of.setdefault(prepared.digest, set()).add(index // batch)
        shared = {d for d, used in batches_of.items() if len(used) > 1}
        if shared:
            firsts = {}
            for item in resolved:
                if isinstance(item, _Prepared) and item.digest in shared:
                    firsts.setdefault(item.digest, item)
            made = dict(zip(firsts, self.prepare_styles(list(firsts.values()))))
            resolved = [
                made[item.digest] if isinstance(item, _Prepared) and item.digest in made else item
                for item in resolved
            ]

        outputs = []
        for start in range(0, len(contents), batch):
            stop = start + batch
            outputs.append(
                self._stylize_batch(
                    contents[start:stop], resolved[start:stop], seeds[start:stop], callback
                )
            )
        return torch.cat(outputs)

    @torch.no_grad()
    def _stylize_batch(
        self,
        contents: list[Any],
        styles: list[StyleFeatures | _Prepared],
        seeds: list[int],
        callback: StepCallback | None,
    ) -> torch.Tensor:
        images = [self._preprocess(c, f"content {i}") for i, c in enumerate(contents)]
        features: list[StyleFeatures | None] = []
        pending: dict[str, tuple[_Prepared, list[int]]] = {}
        from_disk: dict[str, StyleFeatures] = {}
        on_device: dict[int, StyleFeatures] = {}  # one device copy per features object
        for index, style in enumerate(styles):
            if isinstance(style, StyleFeatures):
                if id(style) not in on_device:
                    on_device[id(style)] = self.check_features(style)
                features.append(on_device[id(style)])
                continue
            path = self._cache_path(style.digest, self.style_cache_dir)
            if style.digest not in from_disk and path is not None and path.is_file():
                loaded = StyleFeatures.load(path, self.device)
                from_disk[style.digest] = self.check_features(loaded)
            if style.digest in from_disk:
                features.append(from_disk[style.digest])
                continue
            features.append(None)
            pending.setdefault(style.digest, (style, []))[1].append(index)

        # One inversion for the contents and the styles not yet inverted.
        n_contents = len(images)
        new_styles = [prepared for prepared, _ in pending.values()]
        stack = torch.stack(images + [prepared.image for prepared in new_styles])
        latents = self.encode_images(stack, seeds + [self.seed] * len(new_styles))
        content_rows = list(range(n_contents))
        style_rows = list(range(n_contents, n_contents + len(new_styles)))
        start, q, k, v = self.invert(
            latents, q_rows=content_rows, kv_rows=style_rows, callback=callback
        )
        made = self._style_features(start, k, v, style_rows)
        for (prepared, indices), item in zip(pending.values(), made):
            path = self._cache_path(prepared.digest, self.style_cache_dir)
            if path is not None:
                item.save(path)
            for index in indices:
                features[index] = item

        style_latents = torch.stack([f.latent for f in features])  # type: ignore[union-attr]
        init = start[:n_contents]
        if self.adain_init:
            init = self.adain(init, style_latents.float())
        if self.inject:
            keys = {name: [f.keys[name] for f in features] for name in self.layers}
            values = {name: [f.values[name] for f in features] for name in self.layers}
            out = self.sample(init, q, keys, values, callback=callback)
        else:
            out = self.sample(init, callback=callback)
        return self.decode(out)


# --------------------------------------------------------------------------- helpers


def _as_list(items: Sequence[Any] | torch.Tensor | Any) -> list[Any]:
    if isinstance(items, torch.Tensor):
        return list(items) if items.ndim == 4 else [items]
    if isinstance(items, (StyleFeatures, str, os.PathLike)):
        return [items]
    return list(items)


def _resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """fp16 on CUDA, fp32 elsewhere, unless asked; accepts "fp16", "bfloat16", ..."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "fp16": torch.float16,
        "float16": torch.float16,
        "half": torch.float16,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp32": torch.float32,
        "float32": torch.float32,
        "float": torch.float32,
    }
    key = str(dtype).removeprefix("torch.").lower()
    if key not in names:
        raise ConfigError(f"dtype {dtype!r}: choose from fp16, bf16, fp32")
    return names[key]


def _place(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move a frozen model; cast only when needed (diffusers warns on every cast)."""
    model = model.to(device)
    if next(model.parameters()).dtype != dtype:
        model = model.to(dtype=dtype)
    return model.eval().requires_grad_(False)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _check_float(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if not (low <= number <= high):
        raise ConfigError(f"{name}: {number} is outside [{low}, {high}]")
    return number


@torch.no_grad()
def _empty_prompt_embedding(text_encoder: torch.nn.Module, tokenizer: Any) -> torch.Tensor:
    """CLIP embedding of the empty prompt padded to the tokenizer's length (as SD does)."""
    tokens = tokenizer(
        "",
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    device = next(text_encoder.parameters()).device
    return text_encoder(tokens.input_ids.to(device))[0]


def _load_error(source: str, subfolder: str, is_folder: bool, exc: Exception) -> str:
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    if is_folder:
        return f"{source}: cannot load the {subfolder} of this diffusers folder ({reason})"
    if not _in_hub_cache(source, f"{subfolder}/config.json") and subfolder != "tokenizer":
        return (
            f"{source}: not a local folder, not in the Hugging Face cache, and it could not be "
            f"downloaded (offline? wrong id? gated model needs a token?): {reason}"
        )
    return f"{source}: cannot load {subfolder} from the hub ({reason})"


def _in_hub_cache(repo_id: str, filename: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # invalid repo id
        return False
