"""The student: the STTR model (``sttr.py`` and its parts), its presets (``presets.py``),
saving/loading and pretrained students (``modeling_utils.py``), and the inference API
(``stylizer.py``)."""

from __future__ import annotations

from .memory import StyleMemory
from .modeling_utils import list_pretrained
from .presets import list_presets, register_preset
from .sttr import STTR, STTRConfig, count_parameters
from .stylizer import StyleCode, Stylizer

__all__ = [
    "STTR",
    "STTRConfig",
    "StyleCode",
    "StyleMemory",
    "Stylizer",
    "count_parameters",
    "list_presets",
    "list_pretrained",
    "register_preset",
]
