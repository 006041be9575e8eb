"""A web page for the student: Gradio app with upload/webcam content and sample styles.

``build_app(stylizer)`` returns a ``gr.Blocks``; ``styledistill serve CHECKPOINT`` runs
it. The stylizer can be the PyTorch :class:`~styledistill.student.Stylizer` or the
torch-free :class:`~styledistill.onnx_runtime.OnnxStylizer` (same call).

Safety for a page others may use: uploads over ``max_upload_mb`` are refused by the
server (Gradio's ``max_file_size``) and again here; images over ``max_pixels`` are
refused from their header, before decoding. Every file the app touches (Gradio's
upload cache, sample styles, results) lives in one temporary folder
(``GRADIO_TEMP_DIR`` is pointed at it), removed when ``serve`` exits.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import threading
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError, StyledistillError

__all__ = ["LimitError", "StyleServer", "UploadLimits", "build_app", "launch"]

#: Long side of the sample-style thumbnails shown in the gallery (and used as styles).
SAMPLE_STYLE_SIZE = 256


class LimitError(StyledistillError, ValueError):
    """An upload over the page's size or pixel limit."""


@dataclass(frozen=True)
class UploadLimits:
    """What the page accepts: file size (MB) and pixel count per image."""

    max_upload_mb: float = 20.0
    max_pixels: int = 16_000_000

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def check(self, path: str | os.PathLike, what: str) -> None:
        """Raise :class:`LimitError` (a one-line reason) if ``path`` is over a limit."""
        from PIL import Image, UnidentifiedImageError

        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError:
            raise LimitError(f"{what} could not be read from the upload; try again") from None
        if size == 0:
            raise LimitError(f"{what} is an empty file")
        if size > self.max_bytes:
            raise LimitError(
                f"{what} file is {size / 1e6:.1f} MB, over the {self.max_upload_mb:g} MB upload limit"
            )
        try:
            with Image.open(path) as image:  # reads the header only
                width, height = image.size
        except (UnidentifiedImageError, OSError):
            raise LimitError(f"{what} is not an image file this page can read") from None
        if width * height > self.max_pixels:
            raise LimitError(
                f"{what} is {width}x{height} = {width * height:,} pixels, over the limit of "
                f"{self.max_pixels:,} pixels"
            )


class StyleServer:
    """The page's logic, without Gradio: checks limits, caches style codes, stylizes.

    Style codes are cached by file content (a few recent ones), so clicking again
    with the same style only runs the content half of the model.
    """

    def __init__(
        self,
        stylizer: Any,
        temp_dir: str | os.PathLike,
        *,
        limits: UploadLimits | None = None,
        size: int | None = None,
        cache_styles: int = 8,
    ) -> None:
        self.stylizer = stylizer
        self.temp_dir = Path(temp_dir)
        self.results_dir = self.temp_dir / "results"
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or UploadLimits()
        self.size = size
        self._codes: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_styles
        self._lock = threading.Lock()
        self._count = 0

    def _style_code(self, style_path: str) -> Any:
        digest = hashlib.sha256(Path(style_path).read_bytes()).hexdigest()
        with self._lock:
            if digest in self._codes:
                self._codes.move_to_end(digest)
                return self._codes[digest]
        code = self.stylizer.encode_style(style_path)
        with self._lock:
            self._codes[digest] = code
            while len(self._codes) > self._cache_size:
                self._codes.popitem(last=False)
        return code

    def stylize(self, content_path: str | None, style_path: str | None):
        """(PIL result, PNG path for download); :class:`StyledistillError` on bad input."""
        if not content_path:
            raise LimitError("add a content image first (upload, webcam or paste)")
        if not style_path:
            raise LimitError("add a style image (upload one or pick a sample style)")
        self.limits.check(content_path, "content image")
        self.limits.check(style_path, "style image")
        try:
            code = self._style_code(style_path)
        except StyledistillError as exc:
            raise StyledistillError(_name_by_role(exc, style_path, "style image")) from None
        kwargs = {} if self.size is None else {"size": self.size}
        try:
            image = self.stylizer(content_path, code, output="pil", **kwargs)
        except StyledistillError as exc:
            raise StyledistillError(_name_by_role(exc, content_path, "content image")) from None
        with self._lock:
            self._count += 1
            name = f"stylized-{self._count:05d}.png"
        path = self.results_dir / name
        image.save(path)
        return image, str(path)


def _name_by_role(exc: Exception, path: str | os.PathLike, role: str) -> str:
    """The error with the upload's server-side temp path replaced by its role.

    Image errors start with the file path; on the page that is a meaningless
    (and revealing) temp path, so "content image: truncated ..." reads better.
    """
    return str(exc).replace(os.fspath(path), role)


def _log(message: str) -> None:
    """One line in the server's log (stderr) per refused request."""
    print(f"styledistill serve: {message}", file=sys.stderr, flush=True)


def _upload_path(value: Any, role: str) -> str | None:
    """The server-side file of an upload as Gradio sends it unprocessed (FileData or a path)."""
    if value is None or value == "":
        return None
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    path = value.get("path") if isinstance(value, dict) else getattr(value, "path", None)
    if not path:
        raise LimitError(f"{role} did not arrive as a file upload; upload it again")
    return str(path)


def _require_gradio():
    try:
        import gradio as gr
    except ImportError:
        raise MissingDependencyError("gradio", "serve", "the web page") from None
    return gr


def _write_sample_styles(folder: Path) -> list[tuple[str, str]]:
    """Sample styles as PNG files in ``folder`` -> gallery items (path, caption)."""
    try:
        from .samples import sample_styles
    except ImportError:  # samples module not available: the gallery stays empty
        return []
    from .images import save_image

    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for name, image in sample_styles(SAMPLE_STYLE_SIZE).items():
        path = save_image(image, folder / f"{name}.png")
        items.append((str(path), name.replace("_", " ")))
    return items


def build_app(
    stylizer: Any,
    *,
    limits: UploadLimits | None = None,
    size: int | None = None,
    temp_dir: str | os.PathLike | None = None,
    sample_styles: bool = True,
    title: str = "styledistill: real-time style transfer",
):
    """The Gradio page around ``stylizer`` (``Stylizer`` or ``OnnxStylizer``).

    ``temp_dir``: where uploads, samples and results go (created with ``mkdtemp`` if
    None); ``GRADIO_TEMP_DIR`` is set to it so Gradio's own cache lands there too.
    The returned Blocks has ``.styledistill_temp_dir`` and ``.styledistill_server``.
    """
    owned = temp_dir is None
    if temp_dir is None:
        temp_dir = tempfile.mkdtemp(prefix="styledistill-serve-")
    temp_dir = Path(temp_dir)
    temp_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _build(stylizer, limits, size, temp_dir, sample_styles, title)
    except BaseException:  # Ctrl-C or an error while building: leave nothing behind
        if owned:
            shutil.rmtree(temp_dir, ignore_errors=True)
        raise


def _build(stylizer, limits, size, temp_dir: Path, sample_styles: bool, title: str):
    os.environ["GRADIO_TEMP_DIR"] = str(temp_dir / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    gr = _require_gradio()

    limits = limits or UploadLimits()
    server = StyleServer(stylizer, temp_dir, limits=limits, size=size)
    samples = _write_sample_styles(temp_dir / "samples") if sample_styles else []

    def run(content, style):
        # preprocess=False: Gradio hands over the uploads as they arrived, undecoded (its
        # own preprocessing would decode and re-encode a 20000x20000 upload before any
        # check); the header checks in server.stylize run first.
        try:
            return server.stylize(
                _upload_path(content, "content image"), _upload_path(style, "style image")
            )
        except StyledistillError as exc:
            _log(f"refused: {exc}")
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception:
            _log("failed with an unexpected error:\n" + traceback.format_exc().rstrip())
            raise gr.Error(
                "the server could not stylize this pair (an internal error, logged on the "
                "server); please try again or try other images",
                print_exception=False,
            ) from None

    def pick_sample(evt):
        return samples[evt.index][0]

    # Gradio finds event data by the real annotation (not the string this module's
    # postponed annotations would give it).
    pick_sample.__annotations__ = {"evt": gr.SelectData}

    # System fonts: the page must not fetch anything from the internet.
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "monospace"],
    )
    limit_text = (
        f"Images up to {limits.max_upload_mb:g} MB and {limits.max_pixels / 1e6:g} megapixels."
    )
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(
            f"## {title}\nUpload a photo (or use the webcam), choose a style, press "
            f"**Stylize**. {limit_text}"
        )
        with gr.Row():
            content = gr.Image(
                label="Content",
                sources=["upload", "webcam", "clipboard"],
                type="filepath",
                elem_id="content",
            )
            style = gr.Image(
                label="Style", sources=["upload", "clipboard"], type="filepath", elem_id="style"
            )
            result = gr.Image(
                label="Result",
                type="pil",
                format="png",
                interactive=False,
                buttons=["download", "fullscreen"],
                elem_id="result",
            )
        if samples:
            gallery = gr.Gallery(
                value=samples,
                label="Sample styles (click one to use it)",
                columns=len(samples),
                height=180,
                allow_preview=False,
                elem_id="samples",
            )
            gallery.select(pick_sample, inputs=None, outputs=style)
        button = gr.Button("Stylize", variant="primary", elem_id="run")
        download = gr.File(label="Download PNG", interactive=False, elem_id="download")
        button.click(run, inputs=[content, style], outputs=[result, download], preprocess=False)
    app.styledistill_temp_dir = temp_dir
    app.styledistill_server = server
    app.styledistill_theme = theme
    return app


def launch(
    app,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    limits: UploadLimits | None = None,
    block: bool = True,
    quiet: bool = False,
):
    """Start the page; with ``block=False`` return at once (tests), else serve until Ctrl-C."""
    limits = limits or app.styledistill_server.limits
    return app.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        max_file_size=limits.max_bytes,
        ssr_mode=False,
        show_error=True,
        prevent_thread_lock=not block,
        quiet=quiet,
        allowed_paths=[str(app.styledistill_temp_dir)],
        theme=app.styledistill_theme,
    )


def cleanup(app) -> None:
    """Stop the server (if running) and remove the app's temporary folder."""
    try:
        app.close()
    finally:
        shutil.rmtree(app.styledistill_temp_dir, ignore_errors=True)
