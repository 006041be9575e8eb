"""Saving and loading students, the role diffusers' ``ModelMixin`` plays.

A student folder holds ``config.json`` (the architecture), ``model.safetensors`` (the
weights) and a model card ``README.md``. :meth:`ModelMixin.from_pretrained` takes such a
folder, a training run holding ``student/``, or the name of a pretrained student shipped
inside the package (:func:`list_pretrained`), so every entry point (the Python API,
``stylize``, ``export``, ``serve``, ``train --init``) loads them the same way, offline
(:mod:`styledistill.hub`).

One pickle policy: weights are read from safetensors, or from a pickle only with
``allow_pickle=True`` and then with ``torch.load(weights_only=True)``; non-finite tensors
are refused. Missing or mismatched weights are a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..hub import list_pretrained, resolve_student_folder
from ..plumbing import atomic_path, first_line
from ..weights_io import read_state_dict

__all__ = [
    "CONFIG_NAME",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "ModelMixin",
    "count_parameters",
    "list_pretrained",
    "resolve_student_folder",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"
#: Weight files in pickle format; loaded only with ``allow_pickle=True`` (and then weights_only).
PICKLE_WEIGHT_NAMES = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth")


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


class ModelMixin:
    """``save_pretrained`` / ``from_pretrained`` for a module built from one config object.

    A subclass sets ``config_class`` (with ``to_dict``/``from_dict``), ``model_type`` (the
    tag in config.json), and may override :meth:`card_facts` and :meth:`_restore_buffers`.
    """

    config_class: ClassVar[Any]
    model_type: ClassVar[str]
    config: Any

    def num_parameters(self, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only=trainable_only)  # type: ignore[arg-type]

    #: The model card's title (unless the card names one) and first sentence.
    card_title: ClassVar[str] = "Student"
    card_summary: ClassVar[str] = "A style-transfer student made with styledistill"

    def card_facts(self) -> list[str]:
        """The model card's architecture lines (``name: value``), from the config."""
        return []

    def model_card(self, card: dict[str, Any]) -> str:
        """The README.md written beside the weights: ``card`` gives the title, training
        data, teacher, a free ``body`` and any further ``name: value`` lines."""
        teacher = card.get("teacher", "not recorded")
        lines = [
            f"# {card.get('title', self.card_title)}",
            "",
            f"{self.card_summary}, distilled from the teacher named below ({teacher}).",
            "",
            *(f"- {fact}" for fact in self.card_facts()),
            f"- training data: {card.get('training_data', 'not recorded')}",
            f"- teacher: {teacher}",
        ]
        lines += [
            f"- {key.replace('_', ' ')}: {value}"
            for key, value in card.items()
            if key not in ("title", "training_data", "teacher", "body")
        ]
        if card.get("body"):
            lines += ["", str(card["body"]).rstrip()]
        lines += [
            "",
            "## Use",
            "",
            "```python",
            "from styledistill.student import Stylizer",
            "stylizer = Stylizer.from_pretrained('THIS_FOLDER')",
            "stylizer('photo.jpg', 'painting.jpg').save('out.png')",
            "```",
            "",
            "or `styledistill stylize THIS_FOLDER --content photo.jpg --style painting.jpg`.",
            "",
        ]
        return "\n".join(lines)

    def save_pretrained(
        self, directory: str | os.PathLike, model_card: dict[str, Any] | None = None
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a model card ``README.md``."""
        from safetensors.torch import save_file

        from .. import __version__

        if getattr(self, "_inference_only", False):
            raise ConfigError("an inference_copy() cannot be saved: save the model it came from")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "model_type": self.model_type,
            "styledistill_version": __version__,
            **self.config.to_dict(),
        }
        module: nn.Module = self  # type: ignore[assignment]
        state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
        _atomic_write(
            directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"})
        )
        _atomic_write(
            directory / CONFIG_NAME, lambda p: p.write_text(json.dumps(config, indent=2) + "\n")
        )
        card = self.model_card(model_card or {})
        _atomic_write(directory / MODEL_CARD_NAME, lambda p: p.write_text(card))
        return directory

    @classmethod
    def read_config(cls, source: str | os.PathLike) -> tuple[Path, Any]:
        """The student folder ``source`` names (:func:`resolve_student_folder`) and its
        config, checked, without reading the weights."""
        directory = resolve_student_folder(source)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise CheckpointError(f"{config_path}: missing (not a student folder)")
        try:
            data = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{config_path}: invalid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("model_type", cls.model_type) != cls.model_type:
            raise CheckpointError(f"{config_path}: not a {cls.model_type} config")
        try:
            config = cls.config_class.from_dict(data, source=str(config_path))
        except (ConfigError, TypeError) as exc:
            raise CheckpointError(first_line(exc)) from None
        return directory, config

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike,
        *,
        allow_pickle: bool = False,
        map_location: str | torch.device = "cpu",
    ) -> Any:
        """Load a student folder, a training run holding ``student/``, or a pretrained name.

        Pickled weights (``pytorch_model.bin``, ``model.pt``...) are refused unless
        ``allow_pickle=True``, and then read with ``torch.load(weights_only=True)``.
        """
        directory, config = cls.read_config(source)
        weights = directory / WEIGHTS_NAME
        if not weights.exists():
            pickles = [directory / n for n in PICKLE_WEIGHT_NAMES if (directory / n).exists()]
            if not pickles:
                raise CheckpointError(f"{weights}: missing")
            weights = pickles[0]
        state = read_state_dict(weights, allow_pickle=allow_pickle)
        with torch.device("meta"):
            model = cls(config)
        model.to_empty(device=map_location)
        model._restore_buffers()
        try:
            incompatible = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
            raise CheckpointError(
                f"{weights}: {lines[0] if lines else 'does not fit the config'}"
            ) from None
        problems = list(incompatible.missing_keys) + list(incompatible.unexpected_keys)
        if problems:
            raise CheckpointError(
                f"{weights}: does not match {CONFIG_NAME} ({len(incompatible.missing_keys)} "
                f"missing, {len(incompatible.unexpected_keys)} unexpected tensors, "
                f"e.g. {problems[0]})"
            )
        return model.eval()

    def _restore_buffers(self) -> None:
        """Non-persistent buffers are not in the state dict; refill them after to_empty."""
