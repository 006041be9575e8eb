"""StyleID's attention hook: capture Q/K/V during inversion, inject them during sampling.

One :class:`StyleInjectionProcessor` replaces diffusers' processor on each injected
self-attention layer (``attn1`` of a transformer block). All of them share one
:class:`InjectionState` that the teacher switches between three modes:

* ``"plain"``: ordinary self-attention (bit-for-bit what ``AttnProcessor2_0`` does);
* ``"capture"``: ordinary self-attention, and the projected Q (content rows) and K, V
  (style rows) of this call are stored for the current step, each in its cache dtype;
* ``"inject"``: ``Q~ = gamma*Q_content + (1-gamma)*Q_current``, ``K = K_style``,
  ``V = V_style``, one ``scaled_dot_product_attention`` with ``scale = tau/sqrt(d)``.

Under fp16 autocast (the official precision) the blend adds a float32 content Q to the
fp16 current Q in float32 and only then rounds to fp16, as the official code's
arithmetic does; K and V are rounded to fp16 by the attention either way, so caching
them in fp16 loses nothing.

Features are stored per image (row) as ``[steps, tokens, channels]`` tensors, so a
style inverted once can be paired with any content in any later batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = [
    "DEFAULT_LAYERS",
    "InjectionState",
    "StyleInjectionProcessor",
    "default_injection_layers",
    "install_injection",
    "self_attention_layers",
]

#: The paper's injection layers ("layers 7-12"): the self-attention of every transformer
#: block in the two highest-resolution decoder stages of an SD 1.x (and 2.x) UNet.
DEFAULT_LAYERS: tuple[str, ...] = tuple(
    f"up_blocks.{block}.attentions.{index}.transformer_blocks.0.attn1"
    for block in (2, 3)
    for index in (0, 1, 2)
)

Rows = list[torch.Tensor]  # one [steps, tokens, channels] tensor per image


@dataclass
class InjectionState:
    """What the hooked layers do on the next UNet call (shared by all of them)."""

    gamma: float = 0.75
    tau: float = 1.5
    mode: str = "plain"
    #: Capture: step index to write (None: this call is not stored), number of steps,
    #: which batch rows give Q (contents) and which give K/V (styles), storage dtypes.
    capture_step: int | None = None
    num_steps: int = 0
    q_rows: Sequence[int] | slice = ()
    kv_rows: Sequence[int] | slice = ()
    store_dtype: torch.dtype | None = None
    q_store_dtype: torch.dtype | None = None
    captured_q: dict[str, Rows] = field(default_factory=dict)
    captured_k: dict[str, Rows] = field(default_factory=dict)
    captured_v: dict[str, Rows] = field(default_factory=dict)
    #: Inject: step index to read and, per layer, one tensor per batch row.
    inject_step: int = 0
    inject_q: dict[str, Rows] = field(default_factory=dict)
    inject_k: dict[str, Rows] = field(default_factory=dict)
    inject_v: dict[str, Rows] = field(default_factory=dict)

    def start_capture(
        self,
        num_steps: int,
        q_rows: Sequence[int],
        kv_rows: Sequence[int],
        store_dtype: torch.dtype,
        q_store_dtype: torch.dtype | None = None,
    ) -> None:
        """Prepare empty per-row stores for an inversion over ``num_steps`` stored steps.

        K/V are kept in ``store_dtype``, Q in ``q_store_dtype`` (default: the same).
        """
        self.mode = "capture"
        self.num_steps = num_steps
        self.q_rows, self.kv_rows = _row_index(q_rows), _row_index(kv_rows)
        self.store_dtype = store_dtype
        self.q_store_dtype = q_store_dtype or store_dtype
        self.capture_step = None
        self.captured_q, self.captured_k, self.captured_v = {}, {}, {}

    def start_injection(self, q: dict[str, Rows], k: dict[str, Rows], v: dict[str, Rows]) -> None:
        self.mode = "inject"
        self.inject_q, self.inject_k, self.inject_v = q, k, v
        self.inject_step = 0

    def reset(self) -> None:
        """Back to plain attention, dropping every reference to cached features."""
        self.mode = "plain"
        self.capture_step = None
        self.captured_q, self.captured_k, self.captured_v = {}, {}, {}
        self.inject_q, self.inject_k, self.inject_v = {}, {}, {}


def _row_index(rows: Sequence[int]) -> Sequence[int] | slice:
    """Contiguous rows as a slice: a view, with no index tensor sent to the GPU each call."""
    rows = list(rows)
    if rows and rows == list(range(rows[0], rows[-1] + 1)):
        return slice(rows[0], rows[-1] + 1)
    return rows


def _has_rows(rows: Sequence[int] | slice) -> bool:
    return rows.stop > rows.start if isinstance(rows, slice) else bool(rows)


def _store(
    store: dict[str, Rows], name: str, rows: torch.Tensor, state: InjectionState, dtype
) -> None:
    """Write ``rows`` ([R, tokens, channels]) into step ``capture_step`` of each row's buffer."""
    buffers = store.get(name)
    if buffers is None:
        shape = (state.num_steps, rows.shape[1], rows.shape[2])
        buffers = [
            torch.empty(shape, dtype=dtype, device=rows.device) for _ in range(rows.shape[0])
        ]
        store[name] = buffers
    for buffer, row in zip(buffers, rows):
        buffer[state.capture_step].copy_(row)


def _gather(rows: Rows, step: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Stack step ``step`` of every row's features into a batch ``[B, tokens, channels]``."""
    stacked = torch.stack([row[step] for row in rows])
    return stacked if dtype is None else stacked.to(dtype)


class StyleInjectionProcessor:
    """Self-attention processor for one injected layer (see the module docstring)."""

    def __init__(self, name: str, state: InjectionState) -> None:
        self.name = name
        self.state = state

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise RuntimeError(
                f"{self.name}: StyleID injection hooks self-attention only "
                "(got encoder_hidden_states or an attention mask)"
            )
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        state = self.state
        heads = attn.heads

        query = attn.to_q(hidden_states)
        compute_dtype = query.dtype  # fp16 under autocast, else the weights' dtype
        if state.mode == "inject":
            step = state.inject_step
            q_content = _gather(state.inject_q[self.name], step)  # as cached (maybe float32)
            key = _gather(state.inject_k[self.name], step, compute_dtype)
            value = _gather(state.inject_v[self.name], step, compute_dtype)
            if q_content.shape != query.shape or key.shape[0] != batch:
                raise RuntimeError(
                    f"{self.name}: cached features {tuple(q_content.shape)} / "
                    f"{tuple(key.shape)} do not fit the current batch {tuple(query.shape)}"
                )
            # Type promotion does the official arithmetic: (1 - gamma) * Q in Q's dtype,
            # the sum in the wider of the two, one rounding to the compute dtype.
            query = (state.gamma * q_content + (1.0 - state.gamma) * query).to(compute_dtype)
            tau = state.tau
        else:
            key = attn.to_k(hidden_states)
            value = attn.to_v(hidden_states)
            tau = 1.0
            if state.mode == "capture" and state.capture_step is not None:
                if _has_rows(state.q_rows):
                    q_rows = query[state.q_rows]
                    _store(state.captured_q, self.name, q_rows, state, state.q_store_dtype)
                if _has_rows(state.kv_rows):
                    kv_dtype = state.store_dtype
                    _store(state.captured_k, self.name, key[state.kv_rows], state, kv_dtype)
                    _store(state.captured_v, self.name, value[state.kv_rows], state, kv_dtype)

        head_dim = query.shape[-1] // heads
        query = query.view(batch, -1, heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, heads, head_dim).transpose(1, 2)
        # One attention call; the temperature only changes the logit scale.
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, dropout_p=0.0, is_causal=False, scale=tau / math.sqrt(head_dim)
        )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, heads * head_dim)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        return hidden_states / attn.rescale_output_factor


def self_attention_layers(unet: torch.nn.Module) -> list[str]:
    """Names of every self-attention module (``...attn1``) in ``unet``."""
    return [
        name[: -len(".processor")]
        for name in unet.attn_processors
        if name.endswith("attn1.processor")
    ]


def default_injection_layers(unet: torch.nn.Module) -> tuple[str, ...]:
    """The paper's layers found by structure: ``attn1`` of the first transformer block of
    every attention in the two highest-resolution decoder stages that have attention.

    For SD 1.x and 2.x UNets (conv or linear projections, any head size) these are the
    six layers ``up_blocks.{2,3}.attentions.{0,1,2}.transformer_blocks.0.attn1``.
    """
    up_blocks = getattr(unet, "up_blocks", None)
    stages = [
        index
        for index, block in enumerate(up_blocks or ())
        if getattr(block, "attentions", None) is not None and len(block.attentions)
    ]
    if len(stages) < 2:
        raise ConfigError(
            "layers: this UNet has fewer than two decoder stages with attention, so the "
            "paper's injection layers do not exist; give layers=[...] explicitly"
        )
    names = []
    for stage in stages[-2:]:
        for index, attention in enumerate(unet.up_blocks[stage].attentions):
            if not getattr(attention, "transformer_blocks", None):
                raise ConfigError(
                    f"layers: up_blocks.{stage}.attentions.{index} has no transformer "
                    "blocks; give layers=[...] explicitly"
                )
            names.append(f"up_blocks.{stage}.attentions.{index}.transformer_blocks.0.attn1")
    return tuple(names)


def install_injection(
    unet: torch.nn.Module, layers: Iterable[str], state: InjectionState
) -> dict[str, StyleInjectionProcessor]:
    """Hook exactly ``layers`` of ``unet``; every other processor is left as it was.

    Raises :class:`ConfigError` for a name that is not a plain self-attention layer of
    this UNet (it lists the ones that are).
    """
    layers = list(dict.fromkeys(layers))
    available = self_attention_layers(unet)
    modules = dict(unet.named_modules())
    for name in layers:
        if name not in available:
            raise ConfigError(
                f"injection layer {name!r} is not a self-attention layer of this UNet; "
                f"choose from: {', '.join(available)}"
            )
        module = modules[name]
        unusual = [
            attribute
            for attribute in ("spatial_norm", "group_norm", "norm_q", "norm_k")
            if getattr(module, attribute, None) is not None
        ]
        if getattr(module, "is_cross_attention", False) or getattr(
            module, "residual_connection", False
        ):
            unusual.append("cross-attention/residual")
        if unusual:
            raise ConfigError(f"injection layer {name!r} has unsupported parts: {unusual}")
    hooked = {name: StyleInjectionProcessor(name, state) for name in layers}
    processors = dict(unet.attn_processors)
    for name, processor in hooked.items():
        processors[f"{name}.processor"] = processor
    unet.set_attn_processor(processors)
    return hooked
