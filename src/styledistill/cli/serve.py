"""``styledistill serve``: a local web page (Gradio) that stylizes uploads with a student."""

from __future__ import annotations

import argparse
import signal

from ._common import add_device_argument, add_student_argument, student_source

HELP = "serve a web page (Gradio): content upload or webcam + style -> stylized image"
DESCRIPTION = """\
Start a Gradio page: upload a content photo (or take one with the webcam), upload a
style or click one of the sample styles, press Stylize, download the PNG.
STUDENT is a student folder or a pretrained name (PyTorch; default: the pretrained
styleid-small) or an exported OUT.onnx (onnxruntime, no torch needed). Uploads over --max-upload-mb or --max-pixels are refused with a
message. Uploads, samples and results live in one temporary folder, removed on exit.
The page binds to 127.0.0.1 unless --host says otherwise (0.0.0.0 exposes it).
"""
EXAMPLES = """\
examples:
  styledistill serve                                         # the pretrained student
  styledistill serve runs/small/student                      # http://127.0.0.1:7860
  styledistill serve exports/small.onnx --port 8080          # onnxruntime, no torch
  styledistill serve runs/small/student --host 0.0.0.0 --max-upload-mb 5 --size 768
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_student_argument(parser, onnx=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument(
        "--max-upload-mb", type=float, default=20.0, help="largest upload accepted (MB)"
    )
    parser.add_argument(
        "--max-pixels", type=int, default=16_000_000, help="largest image accepted (width x height)"
    )
    parser.add_argument("--size", type=int, default=512, help="long side contents are stylized at")
    parser.add_argument(
        "--no-samples", action="store_true", help="hide the gallery of sample styles"
    )
    add_device_argument(parser)


def _load_stylizer(args: argparse.Namespace):
    from pathlib import Path

    from ..errors import ConfigError

    if args.size < 0:
        raise ConfigError(f"--size {args.size}: must be positive (0 = native resolution)")
    if args.max_upload_mb <= 0 or args.max_pixels <= 0:
        raise ConfigError("--max-upload-mb and --max-pixels must be positive")
    if Path(args.checkpoint).suffix == ".onnx":
        from ..onnx_runtime import OnnxStylizer

        return OnnxStylizer(args.checkpoint, size=args.size)
    from ..runtime import resolve_device
    from ..student import Stylizer

    return Stylizer.from_pretrained(
        args.checkpoint, device=resolve_device(args.device), size=args.size
    )


def run(args: argparse.Namespace) -> int:
    from ..serve import UploadLimits, build_app, cleanup, launch

    args.checkpoint = student_source(args)
    stylizer = _load_stylizer(args)
    limits = UploadLimits(max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels)
    # SIGTERM (docker stop, systemd, timeout) ends the page like Ctrl-C: temp folder removed.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        app = build_app(stylizer, limits=limits, sample_styles=not args.no_samples)
    except BaseException:
        signal.signal(signal.SIGTERM, previous)
        raise
    print(f"temporary folder (removed on exit): {app.styledistill_temp_dir}")
    try:
        launch(app, host=args.host, port=args.port, limits=limits, block=True)
    except OSError as exc:
        from ..errors import ConfigError

        raise ConfigError(f"--host {args.host} --port {args.port}: cannot listen ({exc})") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        cleanup(app)
    return 0


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt
