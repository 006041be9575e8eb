"""``styledistill export``: a student checkpoint -> ONNX (style encoder + stylizer), verified."""

from __future__ import annotations

import argparse

from ._common import add_max_pixels_argument, add_student_argument, student_source

HELP = "export a student to ONNX (style encoder + stylizer), checked against PyTorch"
DESCRIPTION = """\
Export a trained student to two ONNX files so a style is encoded once and reused:
  OUT.style.onnx  style [B,3,Hs,Ws] + style_mask -> memory, memory_pos, memory_mask
  OUT.onnx        content [B,3,H,W] + content_mask + the style memory -> image [B,3,H,W]
Batch, height and width are dynamic (multiples of 32; the runner pads any size).
After export, onnxruntime is compared with PyTorch at a few sizes (one of them odd,
padded by the runner) and the command fails if the fp32 difference exceeds 1e-3.
Run the result without torch: styledistill.onnx_runtime.OnnxStylizer("OUT.onnx").
"""
EXAMPLES = """\
examples:
  styledistill export --student styleid-small --onnx exports/styleid-small.onnx
  styledistill export runs/small/student --onnx exports/small.onnx
  styledistill export runs/small/student --onnx exports/small.onnx --int8 --size 512
  python -c "from styledistill.onnx_runtime import OnnxStylizer; \\
      OnnxStylizer('exports/small.onnx')('photo.jpg', 'art.jpg').save('out.png')"
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_student_argument(parser)
    parser.add_argument(
        "--onnx",
        required=True,
        metavar="OUT.onnx",
        help="content graph path; the style graph goes to OUT.style.onnx",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (14..20)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write OUT.int8.onnx / OUT.style.int8.onnx (dynamic int8 quantization) and measure their error",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=512,
        help="default long side of the exported stylizer; also the scale of the verification sizes",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the onnxruntime-vs-PyTorch check"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files (without it an export whose OUT.onnx, "
        "OUT.style.onnx or int8 copies exist is refused)",
    )
    add_max_pixels_argument(parser)


def output_files(args: argparse.Namespace) -> list:
    """Every file the export writes: OUT.onnx, OUT.style.onnx (and the int8 pair)."""
    from pathlib import Path

    from ..export import int8_path, style_model_path

    onnx = Path(args.onnx)
    files = [onnx, style_model_path(onnx)]
    if args.int8:
        files += [int8_path(onnx), style_model_path(int8_path(onnx))]
    return files


def check_outputs(args: argparse.Namespace) -> None:
    """Settings, memory and every output file, before the weights load or the export starts."""
    from pathlib import Path

    from ..export import check_export
    from ..outputs import check_output_file
    from ..student import STTR

    folder, config = STTR.read_config(args.checkpoint)  # config.json only: no weights yet
    check_export(
        args.onnx,
        config,
        opset=args.opset,
        size=args.size,
        verify=not args.no_verify,
        max_pixels=args.max_pixels,
    )
    weights = sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
    # two graphs holding the weights once each (fp32), plus the int8 copies (about as large)
    need = weights * (4 if args.int8 else 2)
    files = output_files(args)
    for index, path in enumerate(files):
        check_output_file(
            path, "--onnx", need_bytes=need if index == 0 else 0, overwrite=args.overwrite
        )


def run(args: argparse.Namespace) -> int:
    from ..export import export_onnx
    from ..student import STTR

    args.checkpoint = student_source(args)
    check_outputs(args)
    model = STTR.from_pretrained(args.checkpoint)
    print(
        f"exporting {args.checkpoint} ({model.config.name}, {model.num_parameters() / 1e6:.1f}M parameters)"
    )
    report = export_onnx(
        model,
        args.onnx,
        opset=args.opset,
        size=args.size,
        int8=args.int8,
        verify=not args.no_verify,
        max_pixels=args.max_pixels,
    )
    for line in report.lines():
        print(line)
    print(f"done in {report.seconds:.1f} s")
    return 0
