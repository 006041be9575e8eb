"""StyleID (Chung et al., CVPR 2024) on diffusers: the diffusion teacher, exact and batched.

The algorithm, as the official code runs it:

1. Preprocess: centre-crop to the short side (offset rounded as torchvision's
   ``CenterCrop``), LANCZOS to ``size``; latent = VAE posterior *sample* x
   ``scaling_factor`` (0.18215). Every image draws its own posterior noise, seeded: a
   content from its pair's seed (``seed``, 22, unless ``stylize(seeds=...)`` says
   otherwise), a style from a seed derived from ``seed`` and its pixels, so content and
   style never share a draw and no result depends on batching.
2. DDIM inversion (eta = 0, empty prompt, no CFG) of content and style together in one
   batch, written here rather than with ``DDIMInverseScheduler``. The UNet is evaluated at
   every grid timestep ``t = 1, 21, ..., 981`` (SD DDIM grid, 50 steps); the latent
   steps up the grid ``1 -> 21 -> ... -> 981`` and, with the official schedule, one more
   step ``981 -> 999`` that reuses the prediction made at 981 (the official
   ``encode_ddim`` replaces the last grid target 1001 by 999). The clean latent is
   treated as the latent at ``t = 1``, as the official code does. Epsilon- and
   v-prediction models (SD 1.x, SD 2.x) share the same DDIM move.
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
5. One VAE decode per image at the end; the official setting floors to 8-bit levels.

Precision: ``"official"`` keeps the weights in float32, encodes, embeds the prompt and
inverts in float32, then samples and decodes under fp16 autocast (the official
``--precision autocast``); ``"fast"`` runs everything in ``dtype`` (fp16 on CUDA).

A style is inverted once (:meth:`StyleIDTeacher.prepare_style` -> :class:`StyleFeatures`,
K/V of the injected layers + the start latent) and reused for any number of contents;
pairs with different styles share one UNet call (per-sample features). Features carry
fingerprints of the weights, scheduler and prompt embedding they were made with, and a
teacher refuses features that do not match it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError, MissingDependencyError
from ..images import center_crop_resize, load_image, to_pil, to_tensor
from ..plumbing import atomic_path, one_line, weights_error_reason
from ..runtime import COMPUTE_DTYPES, progress_bar, resolve_dtype
from ._styleid_attention import (
    DEFAULT_LAYERS,
    InjectionState,
    default_injection_layers,
    install_injection,
)
from .registry import DEFAULT_STYLEID_MODEL, check_teacher_memory

__all__ = [
    "DEFAULT_LAYERS",
    "DEFAULT_MODEL",
    "PRECISIONS",
    "StyleFeatures",
    "StyleIDTeacher",
    "weights_fingerprint",
]

#: The checkpoint of the paper (the registry's constant, under this module's old name).
DEFAULT_MODEL = DEFAULT_STYLEID_MODEL
#: Version tag written into saved style features; bump when the layout changes.
FEATURES_FORMAT = "styledistill.StyleFeatures/1"
#: ``"official"``: float32 weights, encode, prompt embedding and inversion, fp16-autocast
#: sampling and decoding, 8-bit floor of the output (the official code); ``"fast"``:
#: everything in ``dtype``.
PRECISIONS = ("official", "fast")
#: Prediction types the DDIM moves understand (SD 1.x: epsilon, SD 2.x 768: v).
PREDICTION_TYPES = ("epsilon", "v_prediction")
#: What single files and folders may hold, for error messages.
SUPPORTED_FAMILIES = "Stable Diffusion 1.x and 2.x (2.0/2.1 at 512 or 768, epsilon or v-prediction)"
#: Suffixes read as single-file (original layout) checkpoints.
SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth", ".bin")
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
#: The UNet of SD 2.x (stabilityai/stable-diffusion-2-1's config.json: linear projections,
#: heads of 64 channels; 2.1-base differs only in sample_size 64 and upcast_attention).
SD2_UNET_CONFIG: dict[str, Any] = {
    **SD1_UNET_CONFIG,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "sample_size": 96,
    "upcast_attention": True,
    "use_linear_projection": True,
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
        """A copy on ``device`` (K/V cast to ``dtype`` if given; the latent keeps its dtype)."""
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
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
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
    noise_seed: int


class StyleIDTeacher:
    """StyleID teacher on Stable Diffusion 1.x and 2.x (epsilon or v-prediction).

    Build it with :meth:`from_pretrained` (hub id, local diffusers folder or single
    ``.ckpt``/``.safetensors`` file) or from components (tests use tiny random ones).
    Settings default to the paper's and the official code's precision; see the module
    docstring for the algorithm, the two schedules and the two precisions.
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
        layers: Sequence[str] | None = None,
        official_schedule: bool = True,
        size: int | None = None,
        seed: int = 22,
        batch_size: int = 8,
        precision: str = "official",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        progress: bool = True,
        style_cache_dir: str | os.PathLike | None = None,
        model_id: str | None = None,
        revision: str | None = None,
        channels_last: bool = False,
        max_pixels: int | None = None,
    ) -> None:
        self.device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        if self.device.type == "cuda" and self.device.index is None:
            # Tensors report "cuda:N"; compare like with like when checking features.
            self.device = torch.device("cuda", torch.cuda.current_device())
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
        self.precision = precision
        #: The half-precision dtype: "fast" runs in it, "official" samples under autocast to it.
        self.dtype = _teacher_dtype(dtype, self.device)
        self.weights_dtype = _weights_dtype(self.precision, self.dtype)
        self.latent_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
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

        config = getattr(scheduler, "config", None)
        if config is None or not hasattr(scheduler, "alphas_cumprod"):
            raise ConfigError("scheduler: expected a diffusers DDIM-compatible scheduler")
        self.prediction_type = config.get("prediction_type", "epsilon")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ConfigError(
                f"scheduler: prediction_type {self.prediction_type!r} is not supported; "
                f"StyleID here needs one of {', '.join(PREDICTION_TYPES)}"
            )
        _check_supported_unet(unet, vae)
        self.scheduler = scheduler
        self.unet = _place(unet, self.device, self.weights_dtype)
        self.vae = _place(vae, self.device, self.weights_dtype)
        self.channels_last = bool(channels_last)
        if self.channels_last:  # often faster convolutions on recent GPUs (same maths)
            self.unet.to(memory_format=torch.channels_last)
        self.scaling_factor = float(self.vae.config.scaling_factor)
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        multiple = self.vae_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)
        if size is None:  # the model's native resolution: 512 for SD 1.x/2.x-base, 768 for 2.x
            sample_size = self.unet.config.get("sample_size")
            if not isinstance(sample_size, int):
                raise ConfigError(f"size: the UNet's sample_size is {sample_size!r}; give size")
            size = sample_size * self.vae_scale
        self.size = _check_int("size", size, multiple)
        if self.size % multiple:
            raise ConfigError(f"size {size}: must be a multiple of {multiple} for this model")
        check_teacher_memory(
            "styleid", self.size, int(batch_size), max_pixels=max_pixels, device=self.device
        )

        if layers is None:
            try:
                layers = default_injection_layers(self.unet)
            except ConfigError:
                if self.inject:
                    raise
                layers = ()
        elif isinstance(layers, str):
            layers = [name.strip() for name in layers.split(",") if name.strip()]
        self.layers = tuple(dict.fromkeys(layers))
        if self.inject and not self.layers:
            raise ConfigError("layers: give at least one injection layer (or inject=False)")

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
        self.prompt_embeds = prompt_embeds.to(self.device, self.weights_dtype)

        self._build_schedule()
        self.fingerprints = {
            "weights": weights_fingerprint(self.unet, self.vae.encoder, self.vae.quant_conv),
            "scheduler": self._scheduler_fingerprint(),
            "prompt": _tensors_fingerprint([self.prompt_embeds]),
        }
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
        config: str | os.PathLike | None = None,
        original_config: str | os.PathLike | None = None,
        **settings: Any,
    ) -> StyleIDTeacher:
        """Load UNet, VAE, text encoder, tokenizer and DDIM scheduler of an SD 1.x/2.x model.

        ``model_id_or_path`` is a hub id (e.g. ``stabilityai/stable-diffusion-2-1-base``),
        a local diffusers folder (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
        ``scheduler/``) or a local single-file checkpoint (``.ckpt``/``.safetensors`` in
        the original layout), built by diffusers' ``from_single_file``. A single file
        needs the diffusers configs of its family: ``config`` (a local diffusers folder,
        or a hub id already in the cache) or ``original_config`` (its local ``.yaml``);
        without either, the family's default configs are taken from the Hugging Face
        cache. Nothing is downloaded for a single file unless ``local_files_only=False``.
        Raises :class:`CheckpointError` with a one-line reason.
        """
        _require_diffusers("the StyleID teacher")
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

        try:
            from transformers import CLIPTextModel, CLIPTokenizer
        except ImportError:
            raise MissingDependencyError("transformers", "teacher", "the StyleID teacher") from None

        source = os.fspath(model_id_or_path)
        resolved_device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        dtype = _teacher_dtype(dtype, resolved_device)
        if isinstance(settings.get("size"), int):  # before gigabytes of weights load
            check_teacher_memory(
                "styleid",
                settings["size"],
                int(settings.get("batch_size") or 8),
                max_pixels=settings.get("max_pixels"),
                device=resolved_device,
            )
        precision = settings.get("precision", "official")
        load_dtype = _weights_dtype(precision, dtype) if precision in PRECISIONS else dtype

        if Path(source).is_file() or source.lower().endswith(SINGLE_FILE_SUFFIXES):
            unet, vae, text_encoder, tokenizer, scheduler = _load_single_file(
                source,
                config=config,
                original_config=original_config,
                local_files_only=True if local_files_only is None else local_files_only,
                torch_dtype=load_dtype,
            )
        else:
            if config is not None or original_config is not None:
                raise ConfigError(
                    f"{source}: config/original_config apply to single-file checkpoints only"
                )
            is_folder = Path(source).is_dir()
            if not is_folder and (source.startswith((".", "/", "~")) or source.count("/") > 1):
                raise CheckpointError(
                    f"{source}: no such folder (expected a diffusers model folder or a "
                    f"single {'/'.join(SINGLE_FILE_SUFFIXES[:2])} file)"
                )
            if is_folder:
                _check_folder_family(Path(source))
            common: dict[str, Any] = {"revision": revision}
            if local_files_only is not None:
                common["local_files_only"] = local_files_only

            def load(kind: Any, subfolder: str, **extra: Any) -> Any:
                try:
                    return kind.from_pretrained(source, subfolder=subfolder, **common, **extra)
                except Exception as exc:  # diffusers/hub raise many types; report one line
                    raise CheckpointError(_load_error(source, subfolder, is_folder, exc)) from None

            unet = load(UNet2DConditionModel, "unet", torch_dtype=load_dtype)
            vae = load(AutoencoderKL, "vae", torch_dtype=load_dtype)
            text_encoder = load(CLIPTextModel, "text_encoder", torch_dtype=load_dtype)
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
            "precision": self.precision,
            "dtype": str(self.dtype).removeprefix("torch."),
            "prediction_type": self.prediction_type,
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

    def _scheduler_fingerprint(self) -> str:
        """What of the scheduler changes the result: noise levels, grid, prediction type."""
        digest = hashlib.sha256(
            self.scheduler.alphas_cumprod.to(torch.float64).cpu().numpy().tobytes()
        )
        digest.update(json.dumps([self.grid, self._alpha[None], self.prediction_type]).encode())
        return digest.hexdigest()[:16]

    def _ddim(self, x: torch.Tensor, prediction: torch.Tensor, t_from: int, t_to: int | None):
        """Deterministic DDIM move (eta = 0) of ``x`` from level ``t_from`` to ``t_to``.

        ``prediction`` is the UNet output at ``t_from``: the noise (epsilon models) or
        ``v = sqrt(a) eps - sqrt(1 - a) x0`` (v-prediction, SD 2.x 768); both give the
        same clean-latent and noise estimates the move needs, inverting or sampling.
        """
        a_from, a_to = self._alpha[t_from], self._alpha[t_to]
        if self.prediction_type == "v_prediction":
            x0 = math.sqrt(a_from) * x - math.sqrt(1.0 - a_from) * prediction
            eps = math.sqrt(a_from) * prediction + math.sqrt(1.0 - a_from) * x
        else:
            eps = prediction
            x0 = (x - math.sqrt(1.0 - a_from) * eps) / math.sqrt(a_from)
        return math.sqrt(a_to) * x0 + math.sqrt(1.0 - a_to) * eps

    def _predict(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """One UNet call on the empty prompt (no CFG); the output in the latent dtype."""
        batch = x.shape[0]
        timestep = torch.full((batch,), t, device=self.device, dtype=torch.long)
        embeds = self.prompt_embeds.expand(batch, -1, -1)
        out = self.unet(x.to(self.weights_dtype), timestep, encoder_hidden_states=embeds).sample
        return out.to(self.latent_dtype)

    def _half_precision(self) -> contextlib.AbstractContextManager:
        """Autocast to ``dtype`` for sampling and decoding under the official precision."""
        if self.weights_dtype == self.dtype:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def _bar(self, total: int, desc: str):
        return progress_bar(total=total, desc=desc, leave=False, enabled=self.progress, unit="step")

    # ------------------------------------------------------------------ stages

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """``[B,3,S,S]`` in [0,1] -> latents: posterior sample x scaling factor (float32).

        The posterior noise of image ``i`` comes from ``torch.Generator().manual_seed(
        seeds[i])`` on the CPU, so it is the same on any device and in any batch.
        """
        means, stds = [], []
        for part in images.split(8):  # the VAE encoder's activations are large at 512 px
            pixels = part.to(self.device, self.weights_dtype) * 2.0 - 1.0
            posterior = self.vae.encode(pixels).latent_dist
            means.append(posterior.mean.to(self.latent_dtype))
            stds.append(posterior.std.to(self.latent_dtype))
        mean, std = torch.cat(means), torch.cat(stds)
        noise = torch.stack(
            [
                torch.randn(mean.shape[1:], generator=torch.Generator().manual_seed(int(s)))
                for s in seeds
            ]
        ).to(self.device, self.latent_dtype)
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
            # K/V are rounded to ``dtype`` by the attention anyway; Q is blended first, so
            # it keeps the inversion's precision (float32 under the official setting).
            self.state.start_capture(
                len(self.feature_timesteps),
                q_rows,
                kv_rows,
                store_dtype=self.dtype,
                q_store_dtype=self.weights_dtype,
            )
        else:
            self.state.reset()
        x = latents.to(self.latent_dtype)
        try:
            with self._bar(len(self.inversion_steps), "StyleID inversion") as bar:
                for index, (t, t_next) in enumerate(self.inversion_steps):
                    self.state.capture_step = self._feature_index.get(t) if capture else None
                    x = self._ddim(x, self._predict(x, t), t, t_next)
                    if callback is not None:
                        callback("invert", index, t, t_next, x)
                    bar.update()
                top = self.grid[-1]
                if capture and not self.official_schedule and top in self._feature_index:
                    # Clean schedule: the latent stops at the top grid step, but its
                    # features at that step are needed, so the UNet runs once more.
                    self.state.capture_step = self._feature_index[top]
                    self._predict(x, top)
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
        x = start.to(self.latent_dtype)
        try:
            with (
                self._bar(len(self.sampling_steps), "StyleID sampling") as bar,
                self._half_precision(),
            ):
                for index, (t, t_prev) in enumerate(self.sampling_steps):
                    self.state.inject_step = index
                    x = self._ddim(x, self._predict(x, t), t, t_prev)
                    if callback is not None:
                        callback("sample", index, t, t_prev, x)
                    bar.update()
        finally:
            self.state.reset()
        return x

    @torch.no_grad()
    def decode(
        self, latents: torch.Tensor, *, chunk: int = 4, quantize: bool | None = None
    ) -> torch.Tensor:
        """Latents -> images ``[B,3,S,S]`` in [0,1] on the CPU (chunked for memory).

        Under the official precision the decoder runs under autocast and the image is
        floored to 8-bit levels in the decoder's output dtype, as the official code
        saves it (``quantize``, default: only then); "fast" returns the float image.
        """
        quantize = self.precision == "official" if quantize is None else quantize
        outputs = []
        for part in latents.split(chunk):
            with self._half_precision():
                pixels = self.vae.decode((part / self.scaling_factor).to(self.weights_dtype))
            image = ((pixels.sample + 1.0) / 2.0).clamp(0.0, 1.0)
            if quantize:
                image = torch.floor(image * 255.0).to(self.latent_dtype) / 255.0
            outputs.append(image.to(self.latent_dtype).cpu())
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

    #: Settings a style's features depend on; all must match to reuse them.
    _FEATURE_KEYS = (
        "size",
        "num_steps",
        "official_schedule",
        "seed",
        "precision",
        "dtype",
        "weights",
        "scheduler",
        "prompt",
    )

    def _features_info(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,  # informative: the fingerprints decide
            "revision": self.revision,
            "size": self.size,
            "num_steps": self.num_steps,
            "official_schedule": self.official_schedule,
            "layers": list(self.layers) if self.inject else [],
            "seed": self.seed,
            "precision": self.precision,
            "dtype": str(self.dtype).removeprefix("torch."),
            **self.fingerprints,
        }

    def _preprocess(self, image: Any, what: str) -> torch.Tensor:
        if isinstance(image, StyleFeatures):
            raise ConfigError(f"{what}: style features cannot be used as a content image")
        tensor = image if isinstance(image, torch.Tensor) else load_image(image)
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if self.precision == "official":
            return _official_crop_resize(tensor, self.size)
        return center_crop_resize(tensor, self.size)

    def style_noise_seed(self, image: torch.Tensor) -> int:
        """Seed of a preprocessed style image's posterior noise: from ``seed`` and its
        pixels, so every style has its own reproducible draw, never a content's."""
        pixels = image.mul(255).round().to(torch.uint8).cpu().numpy().tobytes()
        digest = hashlib.sha256(f"styleid style noise {self.seed} ".encode() + pixels)
        return int.from_bytes(digest.digest()[:8], "little") & (2**63 - 1)

    def _prepare(self, style: Any) -> _Prepared:
        image = self._preprocess(style, "style")
        digest = hashlib.sha256(image.mul(255).round().to(torch.uint8).numpy().tobytes())
        digest.update(json.dumps(self._features_info(), sort_keys=True).encode())
        return _Prepared(image, digest.hexdigest()[:32], self.style_noise_seed(image))

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
        if "weights" not in features.info:
            raise ConfigError(
                "style features were made by an older styledistill (no weights "
                "fingerprint); prepare the style again"
            )
        mine = self._features_info()
        for key in self._FEATURE_KEYS:
            theirs = features.info.get(key)
            if theirs != mine[key]:
                what = {"weights": "model weights", "prompt": "prompt embedding"}.get(key, key)
                raise ConfigError(
                    f"style features were made with other {what} ({key}={theirs!r}, this "
                    f"teacher has {mine[key]!r}); prepare the style again"
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
            latents = self.encode_images(images, [prepared.noise_seed for prepared, _ in group])
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
        the contents. ``seeds[i]`` seeds the content's posterior noise (default ``seed``);
        each style's noise has its own seed (:meth:`style_noise_seed`).
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
        latents = self.encode_images(
            stack, seeds + [prepared.noise_seed for prepared in new_styles]
        )
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
            init = self.adain(init, style_latents.to(self.latent_dtype))
        if self.inject:
            keys = {name: [f.keys[name] for f in features] for name in self.layers}
            values = {name: [f.values[name] for f in features] for name in self.layers}
            out = self.sample(init, q, keys, values, callback=callback)
        else:
            out = self.sample(init, callback=callback)
        return self.decode(out)


# --------------------------------------------------------------------------- helpers


def _teacher_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """fp16 on CUDA, fp32 elsewhere, unless asked; float64 (reference runs) and fp16 on the
    CPU (a GPU run's numbers) are allowed."""
    default = torch.float16 if device.type == "cuda" else torch.float32
    return resolve_dtype(
        dtype, device, default=default, allowed=(*COMPUTE_DTYPES, "float64"), float16_on_cpu=True
    )


def _as_list(items: Sequence[Any] | torch.Tensor | Any) -> list[Any]:
    if isinstance(items, torch.Tensor):
        return list(items) if items.ndim == 4 else [items]
    if isinstance(items, (StyleFeatures, str, os.PathLike)):
        return [items]
    return list(items)


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
    reason = one_line(exc, limit=300)
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


def _weights_dtype(precision: str, dtype: torch.dtype) -> torch.dtype:
    """The official precision keeps the weights in float32 (float64 stays float64)."""
    if precision == "official" and dtype.itemsize < 4:
        return torch.float32
    return dtype


def _check_supported_unet(unet: torch.nn.Module, vae: torch.nn.Module) -> None:
    """Refuse UNets StyleID here cannot drive (SDXL's extra conditioning, inpainting inputs)."""
    config = getattr(unet, "config", {})
    if config.get("addition_embed_type") is not None or config.get("class_embed_type"):
        raise ConfigError(
            f"unet: extra conditioning ({config.get('addition_embed_type') or 'class'} "
            f"embeddings, e.g. SDXL) is not supported; supported: {SUPPORTED_FAMILIES}"
        )
    latent_channels = getattr(vae, "config", {}).get("latent_channels", 4)
    if config.get("in_channels") != latent_channels:
        raise ConfigError(
            f"unet: {config.get('in_channels')} input channels for a {latent_channels}-channel "
            f"latent (an inpainting or upscaling model?); supported: {SUPPORTED_FAMILIES}"
        )


def _tensor_bits(tensor: torch.Tensor) -> torch.Tensor:
    """The raw bits of a floating tensor as integers of the same width (flat)."""
    flat = tensor.detach().reshape(-1)
    if not flat.is_floating_point():
        return flat.long()
    bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[flat.element_size()]
    return flat.contiguous().view(bits).long()


def _tensors_fingerprint(tensors: Sequence[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(f"{tuple(tensor.shape)} {tensor.dtype}".encode())
        digest.update(_tensor_bits(tensor).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def weights_fingerprint(*modules: torch.nn.Module | None) -> str:
    """A short hash of the weights as loaded (names, shapes, dtypes and values).

    Per tensor, the sum and the position-weighted sum of its raw bits, in wrapping int64
    arithmetic: order-independent and exact, so the same weights give the same
    fingerprint on any device, and any changed value changes it. Cheap for an SD UNet.
    """
    digest = hashlib.sha256()
    stats = []
    for index, module in enumerate(modules):
        if module is None:
            continue
        tensors = itertools.chain(module.named_parameters(), module.named_buffers())
        for name, tensor in tensors:
            digest.update(f"{index}.{name} {tuple(tensor.shape)} {tensor.dtype};".encode())
            bits = _tensor_bits(tensor)
            positions = torch.arange(1, bits.numel() + 1, device=bits.device)
            stats.append(torch.stack([bits.sum(), (bits * positions).sum()]))
    if stats:
        digest.update(torch.stack(stats).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _official_crop_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop to the short side with torchvision ``CenterCrop``'s offset (Python
    ``round`` of half the excess, ties to even), then LANCZOS to ``size`` x ``size``."""
    from PIL import Image

    pil = to_pil(image)
    width, height = pil.size
    side = min(width, height)
    left = round((width - side) / 2.0)
    top = round((height - side) / 2.0)
    pil = pil.crop((left, top, left + side, top + side))
    if side != size:
        pil = pil.resize((size, size), Image.Resampling.LANCZOS)
    return to_tensor(pil)


# --------------------------------------------------------------------------- model families

#: diffusers' single-file model types that StyleID here runs, and names for the others.
_SINGLE_FILE_FAMILIES = {"v1": "Stable Diffusion 1.x", "v2": "Stable Diffusion 2.x"}
_UNSUPPORTED_PREFIXES = (
    ("xl", "SDXL"),
    ("playground", "SDXL (Playground)"),
    ("sd3", "SD3"),
    ("sd35", "SD3.5"),
    ("flux", "FLUX"),
    ("inpainting", "inpainting"),
    ("upscale", "upscaler"),
    ("controlnet", "ControlNet"),
)
#: The UNet's first convolution in the original (LDM) layout: present in every SD 1.x/2.x file.
_LDM_UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight"


def _family_name(model_type: str) -> str:
    for prefix, name in _UNSUPPORTED_PREFIXES:
        if model_type.startswith(prefix):
            return name
    return model_type


def _checkpoint_shapes(path: Path) -> dict[str, torch.Tensor]:
    """Tensor names and shapes of a single-file checkpoint, without reading its weights."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return {
                    name: torch.empty(handle.get_slice(name).get_shape(), device="meta")
                    for name in handle.keys()  # noqa: SIM118 (safe_open has no __iter__)
                }
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # corrupt file, pickled objects weights_only refuses, ...
        reason = weights_error_reason(exc)
        raise CheckpointError(f"{path}: cannot read this checkpoint ({reason})") from None
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a state dict checkpoint")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _single_file_family(path: Path) -> str:
    """diffusers' model type (``v1``/``v2``) of a checkpoint, or a one-line refusal."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    shapes = _checkpoint_shapes(path)
    try:
        model_type = infer_diffusers_model_type(shapes)
    except Exception:  # a layout diffusers does not know
        model_type = "unknown"
    if model_type in _SINGLE_FILE_FAMILIES and _LDM_UNET_KEY not in shapes:
        model_type = "unknown"  # diffusers falls back to "v1" for anything it does not know
    if model_type not in _SINGLE_FILE_FAMILIES:
        what = (
            "not a Stable Diffusion checkpoint in the original layout"
            if model_type == "unknown"
            else f"a {_family_name(model_type)} checkpoint"
        )
        raise CheckpointError(f"{path}: {what}; the StyleID teacher supports {SUPPORTED_FAMILIES}")
    return model_type


def _check_folder_family(folder: Path) -> None:
    """Refuse diffusers folders of other pipelines (SDXL, SD3, ...) by name, not by a crash."""
    index = folder / "model_index.json"
    if not index.is_file():
        return
    try:
        pipeline = str(json.loads(index.read_text()).get("_class_name", ""))
    except (OSError, ValueError, AttributeError):
        return
    if pipeline and pipeline not in ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"):
        raise CheckpointError(
            f"{folder}: a {pipeline} folder; the StyleID teacher supports {SUPPORTED_FAMILIES}"
        )


def _config_folder(config: str | os.PathLike, local_files_only: bool, what: str) -> str:
    """A local folder with the diffusers configs: ``config`` itself, or its hub snapshot."""
    config = os.fspath(config)
    if Path(config).is_dir():
        return config
    if config.startswith((".", "/", "~")) or config.count("/") > 1:
        raise CheckpointError(f"{config}: no such folder (config of {what})")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(
            config,
            allow_patterns=["**/*.json", "*.json", "*.txt", "**/*.txt", "**/*.model"],
            local_files_only=local_files_only,
        )
    except Exception as exc:
        reason = one_line(exc, limit=200)
        offline = " and not in the Hugging Face cache" if local_files_only else ""
        raise CheckpointError(
            f"{what}: the diffusers configs of {config} are needed{offline} ({reason}); pass "
            "config=<local diffusers folder of the same family> or original_config=<the "
            "checkpoint's .yaml> (CLI: --teacher-option config=PATH), or "
            "local_files_only=False to download them"
        ) from None


def _load_single_file(
    source: str,
    *,
    config: str | os.PathLike | None,
    original_config: str | os.PathLike | None,
    local_files_only: bool,
    torch_dtype: torch.dtype,
) -> tuple[Any, Any, Any, Any, Any]:
    """UNet, VAE, text encoder, tokenizer and DDIM scheduler from one local checkpoint file."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import DIFFUSERS_DEFAULT_PIPELINE_PATHS

    path = Path(source).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{source}: no such checkpoint file (single files must be local)")
    model_type = _single_file_family(path)
    if original_config is not None:
        original_config = os.fspath(original_config)
        if not Path(original_config).is_file():
            raise CheckpointError(f"{original_config}: no such file (original_config)")
    if config is None and original_config is None:
        config = DIFFUSERS_DEFAULT_PIPELINE_PATHS[model_type]["pretrained_model_name_or_path"]
    if config is not None:
        config = _config_folder(config, local_files_only, f"{path.name}")
    try:
        pipeline = StableDiffusionPipeline.from_single_file(
            str(path),
            config=config,
            original_config=original_config,
            local_files_only=local_files_only,
            torch_dtype=torch_dtype,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except Exception as exc:  # conversion errors of many types; report one line
        reason = one_line(exc, limit=300)
        raise CheckpointError(
            f"{source}: cannot build a {_SINGLE_FILE_FAMILIES[model_type]} model from this "
            f"file ({reason})"
        ) from None
    scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
    return pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.tokenizer, scheduler
