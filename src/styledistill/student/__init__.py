"""The student: the STTR model (``sttr.py``) and the inference API (``stylizer.py``)."""

from __future__ import annotations

from .sttr import STTR, STTRConfig, count_parameters, list_presets, register_preset
from .stylizer import StyleCode, Stylizer

__all__ = [
    "STTR",
    "STTRConfig",
    "StyleCode",
    "Stylizer",
    "count_parameters",
    "list_presets",
    "register_preset",
]
