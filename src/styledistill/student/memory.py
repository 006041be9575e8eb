"""The style memory: an encoded style, the interface between STTR's two halves.

``STTR.encode_style`` makes one and ``STTR.decode`` reads it; exported, its named tensors
(:meth:`StyleMemory.names`) are the outputs of the ONNX style graph and inputs of the
content graph, so a style is encoded once for many contents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .sttr import STTRConfig

__all__ = ["StyleMemory"]


@dataclass
class StyleMemory:
    """An encoded style: everything ``decode`` needs from it, as named tensors.

    ``tokens``/``pos`` ``[B,L,d]`` are the encoder's output and positions, ``mask``
    ``[B,L]`` (True on padding; None when the style is unpadded); ``colour`` ``[B,3,K]``
    the style's colour quantiles (colour prior); ``skip_stats`` one ``[B,2C]`` mean/std
    of the style's backbone features per skip stride. A batch of 1 serves any content batch.
    """

    tokens: Tensor
    pos: Tensor
    mask: Tensor | None = None
    colour: Tensor | None = None
    skip_stats: tuple[Tensor, ...] = ()

    def expand(self, batch: int) -> StyleMemory:
        if self.tokens.shape[0] == batch:
            return self
        grow = lambda t: t.expand(batch, *t.shape[1:])  # noqa: E731
        return StyleMemory(
            grow(self.tokens),
            grow(self.pos),
            None if self.mask is None else grow(self.mask),
            None if self.colour is None else grow(self.colour),
            tuple(grow(s) for s in self.skip_stats),
        )

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> StyleMemory:
        move = lambda t: t.to(device, dtype)  # noqa: E731
        return StyleMemory(
            move(self.tokens),
            move(self.pos),
            None if self.mask is None else self.mask.to(device),
            None if self.colour is None else self.colour.to(device, torch.float32),
            tuple(move(s) for s in self.skip_stats),
        )

    def pooled(self) -> Tensor:
        """Mean style token over the unpadded ones ``[B,d]`` (the colour prior's FiLM input)."""
        if self.mask is None:
            return self.tokens.mean(dim=1)
        keep = (~self.mask).unsqueeze(-1).to(self.tokens.dtype)
        return (self.tokens * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)

    def tensors(self) -> tuple[Tensor, ...]:
        """The fields as a flat tuple (the ONNX style graph's outputs, in :meth:`names`
        order); the mask is always there (all False when unpadded)."""
        mask = self.mask if self.mask is not None else torch.zeros_like(self.tokens[..., 0]).bool()
        colour = () if self.colour is None else (self.colour,)
        return (self.tokens, self.pos, mask, *colour, *self.skip_stats)

    @staticmethod
    def names(config: STTRConfig) -> tuple[str, ...]:
        """Names of :meth:`tensors` for a model with ``config`` (the ONNX interface)."""
        colour = ("style_colour",) if config.colour_prior is not None else ()
        stats = tuple(f"style_stats_{stride}" for stride in config.skip_strides)
        return ("memory", "memory_pos", "memory_mask", *colour, *stats)

    @classmethod
    def from_tensors(cls, config: STTRConfig, tensors: tuple[Tensor, ...]) -> StyleMemory:
        """Inverse of :meth:`tensors` (the ONNX content graph's inputs)."""
        tokens, pos, mask, *rest = tensors
        colour = rest.pop(0) if config.colour_prior is not None else None
        return cls(tokens, pos, mask, colour, tuple(rest))
