"""Errors users see. Each says what failed and where, in one line."""

from __future__ import annotations


class StyledistillError(Exception):
    """Base class for errors the CLI prints as one line (no traceback)."""


class ConfigError(StyledistillError, ValueError):
    """A setting, flag or config file that cannot work."""


class CheckpointError(StyledistillError):
    """A checkpoint or weights file that is missing, corrupt or untrusted."""


class NonFiniteError(StyledistillError, ValueError):
    """A model output or a setting holds NaN or infinity; nothing is saved from it."""

    @classmethod
    def in_output(cls, what: str) -> NonFiniteError:
        """The one wording for a non-finite model output (PyTorch and ONNX paths alike)."""
        return cls(
            f"{what} holds NaN or infinite values (damaged weights, or an overflow in "
            "reduced precision); nothing was saved"
        )


class MissingDependencyError(StyledistillError, ImportError):
    """An optional package is needed for this feature."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the '{package}' package: pip install 'styledistill[{extra}]'"
        )
        self.package = package
        self.extra = extra
