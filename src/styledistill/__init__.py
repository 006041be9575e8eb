"""styledistill: distil diffusion-quality style transfer (StyleID) into a real-time STTR student.

Data flows one way: teacher -> paired dataset -> training -> student -> stylize.
Heavy modules are imported lazily so ``import styledistill`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import StyledistillError

__all__ = ["StyledistillError", "__version__"]
