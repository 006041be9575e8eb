"""ONNX export: faithful to PyTorch at several sizes, runnable without torch, int8 measured."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_same_image, modules_imported_by
from styledistill.cli import main
from styledistill.export import (
    FP32_TOLERANCE,
    MAX_OUTLIER_FRACTION,
    export_onnx,
    narrow_gather_indices,
)
from styledistill.onnx_runtime import OnnxStylizer, pad_batch, style_model_path
from styledistill.student import STTR, Stylizer

pytestmark = pytest.mark.usefixtures("one_thread")


#: fp32 onnxruntime vs PyTorch (conftest.assert_same_image): within FP32_TOLERANCE but for a
#: few step-function values (a histogram bin edge, or two near-equal patches, that the other
#: runtime's last bit puts on the other side: MAX_OUTLIER_FRACTION, or three values per
#: image of a small batch), none off by much.
same_export = partial(
    assert_same_image,
    tolerance=FP32_TOLERANCE,
    worst=0.02,
    outliers=MAX_OUTLIER_FRACTION,
    per_image=3,
)


@pytest.fixture(scope="module")
def exported(tiny_student_dir, tmp_path_factory):
    """``styledistill export CKPT --onnx OUT --size 64 --int8`` run once on conftest's saved
    tiny student (last conv scaled: outputs span [0, 1] and depend on the content)."""
    root = tmp_path_factory.mktemp("export")
    out = root / "onnx" / "tiny.onnx"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["export", str(tiny_student_dir), "--onnx", str(out), "--size", "64", "--int8"])
    return {
        "root": root,
        "student": tiny_student_dir,
        "onnx": out,
        "code": code,
        "stdout": buffer.getvalue(),
    }


@pytest.fixture
def images(content_and_style, tmp_path) -> tuple[Path, Path]:
    """A 70x50 content.png and a 56x40 style.png (conftest.py).

    ``wave=4``, not the default 5: with 5, one pixel of the native-size output sits on a
    histogram bin edge and lands in the neighbouring bin in onnxruntime (4.5e-3 off;
    waves 3, 4, 4.5 and 6 agree to ~1e-6). The export check allows such step-function
    pixels (MAX_OUTLIER_FRACTION); these tests compare whole images with a max.
    """
    return content_and_style(tmp_path, (70, 50), (56, 40), "style.png", seed=1, wave=4.0)


def test_cli_export_writes_both_graphs_and_verifies(exported):
    assert exported["code"] == 0
    out: Path = exported["onnx"]
    assert out.is_file() and style_model_path(out).is_file()
    assert style_model_path(out).name == "tiny.style.onnx"
    assert (out.parent / "tiny.int8.onnx").is_file() and (
        out.parent / "tiny.style.int8.onnx"
    ).is_file()
    text = exported["stdout"]
    # three sizes, one of them odd (padded by the runner), each with its number
    fp32 = re.findall(r"^fp32 content .*over tolerance (\S+) \(allowed (\S+)\)$", text, re.M)
    assert len(fp32) == 3 and all(float(over) <= float(allowed[:-1]) for over, allowed in fp32)
    assert "padded to" in text and "OK" in text
    int8 = re.search(r"int8 max abs diff vs PyTorch fp32: (\S+)", text)
    assert int8 is not None and float(int8.group(1)) < 0.2  # the int8 copy stays close
    # and it is quantized: read from its graph, not from the difference (which on this tiny
    # model equals the fp32 runtime's own float noise, ~1e-6, and may round to 0 elsewhere)
    import onnx

    for name in ("tiny.int8.onnx", "tiny.style.int8.onnx"):
        ops = {node.op_type for node in onnx.load(str(out.parent / name)).graph.node}
        assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops, (name, sorted(ops))


@pytest.mark.parametrize("style_hw", [(64, 40), (24, 64)])
def test_export_dynamic_shapes_match_pytorch_directly(exported, style_hw):
    """Beyond the built-in check: other sizes and batch 3 against STTR itself, with a
    style of the traced shape and one of another (no shape baked in at trace time)."""
    model = STTR.from_pretrained(exported["student"])
    runner = OnnxStylizer(exported["onnx"], threads=1)

    rng = np.random.default_rng(3)
    style = rng.random((1, 3, *style_hw), dtype=np.float32)
    style_padded, style_mask = pad_batch(style, 32)
    code = runner.encode_padded_style(style_padded, style_mask)
    for height, width in [(96, 32), (61, 77)]:
        content = rng.random((3, 3, height, width), dtype=np.float32)
        padded, mask = pad_batch(content, 32)
        with torch.no_grad():
            memory = model.encode_style(
                torch.from_numpy(style_padded), torch.from_numpy(style_mask)
            )
            expected = model.decode(torch.from_numpy(padded), memory, torch.from_numpy(mask))
        got = runner.run_padded(padded, mask, code)
        assert got.shape == (3, 3, padded.shape[2], padded.shape[3])
        same_export(got, expected.numpy())
        assert expected.std() > 0.05  # the comparison is not between two flat images


def test_onnx_stylizer_matches_stylizer_end_to_end(exported, images):
    """Same call, same result as the PyTorch Stylizer (resizing done in PIL, not torch)."""
    content, style = images
    stylizer = Stylizer.from_pretrained(exported["student"], device="cpu", size=64)
    runner = OnnxStylizer(exported["onnx"], threads=1)
    assert runner.size == 64
    expected = stylizer(content, style, output="tensor").permute(1, 2, 0).numpy()
    got = runner(content, style, output="numpy")
    assert got.shape == expected.shape == (50, 70, 3)
    assert np.abs(got - expected).mean() < 0.01
    code = runner.encode_style(style)
    again = runner([content, content], code)
    assert len(again) == 2 and again[0].size == (70, 50)
    native = runner(content, code, size=0, output="numpy")
    expected_native = stylizer(content, style, size=0, output="tensor").permute(1, 2, 0).numpy()
    same_export(native, expected_native)


def test_runtime_module_imports_no_torch():
    """The torch-free runner stays torch-free: importing it (and building its inputs)
    loads no torch, and the export (which needs torch) is not imported with it."""
    code = (
        "import numpy as np; from styledistill.onnx_runtime import OnnxStylizer, pad_batch; "
        "pad_batch(np.zeros((1, 3, 40, 50), np.float32), 32)"
    )
    assert modules_imported_by(code, ["torch", "styledistill.export"]) == []


def test_onnx_stylizer_runs_without_torch(exported, images):
    """A fresh interpreter where importing torch fails must still stylize."""
    content, style = images
    script = f"""
import sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError
from styledistill.onnx_runtime import OnnxStylizer
runner = OnnxStylizer({str(exported["onnx"])!r}, threads=1)
out = runner({str(content)!r}, {str(style)!r}, output="numpy")
assert out.shape == (50, 70, 3), out.shape
assert 0.0 <= out.min() and out.max() <= 1.0
image = runner({str(content)!r}, runner.encode_style({str(style)!r}))
image.save({str(exported["root"] / "no_torch.png")!r})
loaded = [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
assert sys.modules["torch"] is None and loaded == ["torch"], loaded
print("ok", out.shape)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok (50, 70, 3)" in result.stdout
    assert (exported["root"] / "no_torch.png").is_file()


def test_metadata_names_the_style_graph(exported):
    import onnx

    proto = onnx.load(str(exported["onnx"]), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["styledistill.role"] == "stylizer"
    assert meta["styledistill.style_model"] == "tiny.style.onnx"
    assert json.loads(meta["styledistill.config"])["d_model"] == 32
    int8 = OnnxStylizer(exported["onnx"].parent / "tiny.int8.onnx", threads=1)
    assert int8.style_path.name == "tiny.style.int8.onnx"


def test_export_rejects_bad_requests(exported, tmp_path, capsys):
    student = exported["student"]
    assert main(["export", str(tmp_path / "missing"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err
    assert main(["export", str(student), "--onnx", str(tmp_path / "x.onnx"), "--opset", "11"]) == 2
    assert "--opset 11" in capsys.readouterr().err
    assert main(["export", str(student), "--onnx", str(tmp_path / "x.pt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    with pytest.raises(Exception, match="style encoder missing"):
        lonely = tmp_path / "lonely.onnx"
        lonely.write_bytes(exported["onnx"].read_bytes())
        OnnxStylizer(lonely)
    with pytest.raises(Exception, match="no such ONNX file"):
        OnnxStylizer(tmp_path / "nothing.onnx")


def test_export_without_style_size_resizes_style_like_stylizer(tiny_student, images, tmp_path):
    """Models without a fixed style size: the style follows ``size`` in both runtimes."""
    model = tiny_student(seed=1, style_size=None)
    report = export_onnx(model, tmp_path / "free.onnx", size=64, verify_sizes=[(64, 64)])
    assert report.faithful and len(report.checks) == 1
    content, style = images
    expected = Stylizer(model, device="cpu", size=64)(content, style, output="tensor")
    got = OnnxStylizer(tmp_path / "free.onnx", threads=1)(content, style, output="numpy")
    assert np.abs(got - expected.permute(1, 2, 0).numpy()).mean() < 0.01


def test_onnx_stylizer_drives_the_web_page_logic(exported, images, tmp_path):
    """``styledistill serve OUT.onnx`` uses the same StyleServer as the PyTorch student."""
    from styledistill.serve import StyleServer

    content, style = images
    server = StyleServer(OnnxStylizer(exported["onnx"], threads=1), tmp_path / "serve")
    image, path = server.stylize(str(content), str(style))
    assert image.size == (70, 50) and Path(path).is_file()


def test_exported_files_get_normal_permissions_not_mkstemp_private(exported):
    """Exports are written via mkstemp (0600); users and servers must be able to read them."""
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    folder = exported["onnx"].parent
    names = ["tiny.onnx", "tiny.style.onnx", "tiny.int8.onnx", "tiny.style.int8.onnx"]
    for name in names:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o666 & ~umask, name


def test_load_rgb_keeps_16bit_range_and_refuses_huge_headers(tmp_path):
    """16-bit gray is scaled (not clipped at 255); a bomb header fails before decoding."""
    import struct
    import zlib

    from styledistill.errors import StyledistillError
    from styledistill.onnx_runtime import load_rgb

    ramp = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    loaded = load_rgb(tmp_path / "gray16.png")
    assert loaded.shape == (3, 32, 32)
    np.testing.assert_allclose(loaded[0], ramp / 65535.0, atol=1e-6)
    assert loaded[0, 0, 0] == 0.0 and loaded[0].mean() == pytest.approx(0.5, abs=0.01)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 60001))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(StyledistillError, match=r"bomb\.png: .*over the limit of 1,000,000"):
        load_rgb(bomb, max_pixels=1_000_000)
    # with no limit of our own, PIL's bomb check must still come out as a one-line error
    saved = Image.MAX_IMAGE_PIXELS  # styledistill.images sets it to None
    Image.MAX_IMAGE_PIXELS = 100_000_000
    try:
        with pytest.raises(StyledistillError, match=r"bomb\.png: image too large"):
            load_rgb(bomb, max_pixels=None)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    with pytest.raises(StyledistillError, match="20000x20000 = 400,000,000 pixels"):
        load_rgb(bomb)  # the default limit


def test_full_disk_during_export_is_one_line_error_naming_the_file(exported, tmp_path, capsys):
    """ENOSPC while saving a graph: exit 2, 'cannot write FILE: reason', no temp file left."""
    import errno

    import onnx

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "out" / "x.onnx"
    student = str(exported["student"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx, "save", full_disk)
        code = main(["export", student, "--onnx", str(out), "--size", "64", "--no-verify"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"styledistill export: error: cannot write {out.parent / 'x.style.onnx'}: " + (
        "No space left on device"
    )
    assert list(out.parent.iterdir()) == []


def test_a_few_step_function_pixels_do_not_fail_the_export_check_but_a_real_drift_does(tmp_path):
    """Histogram bins and nearest-patch choices are step functions: a handful of values on
    a bin edge may differ between runtimes; anything more is an unfaithful export."""
    from styledistill.export import MAX_OUTLIER_FRACTION, ExportReport, SizeCheck

    for name in ("a.onnx", "a.style.onnx"):
        (tmp_path / name).write_bytes(b"")

    def report(fraction: float) -> ExportReport:
        check = SizeCheck((64, 64), (64, 64), (64, 64), 1, 4.5e-3, 1e-6, fraction)
        return ExportReport(tmp_path / "a.onnx", tmp_path / "a.style.onnx", 17, checks=[check])

    assert report(0.0).faithful and report(MAX_OUTLIER_FRACTION / 2).faithful
    assert not report(MAX_OUTLIER_FRACTION * 10).faithful
    assert "FAILED" in report(1e-2).lines()[-1] and "OK" in report(1e-6).lines()[-1]


def test_the_export_check_allows_single_bin_flips_not_a_drift():
    """A histogram bin edge that the runtimes' last bits put on either side moves a few
    single pixels: that share passes the check, a drift over most of the image does not."""
    from styledistill.export import MAX_OUTLIER_FRACTION, SizeCheck

    def check(fraction: float) -> SizeCheck:
        return SizeCheck(
            (256, 384), (256, 384), (256, 256), 2, 0.15, 1e-6, fraction, MAX_OUTLIER_FRACTION
        )

    assert check(MAX_OUTLIER_FRACTION / 2).faithful and not check(0.5).faithful


def test_index_casts_become_int32_only_where_every_use_is_an_index(exported):
    """The histogram bins' float -> int64 cast (5x slower than -> int32 in onnxruntime)
    is narrowed when it only feeds gathers' and scatters' indices (through reshapes, or a
    Shape); a cast whose value is also computed with stays int64, and the graph still
    runs with the same results."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def cast(name: str) -> onnx.NodeProto:
        return helper.make_node("Cast", ["x"], [name], to=TensorProto.INT64, name=name)

    nodes = [
        cast("bins"),  # -> a reshape -> a gather's indices, and a Shape: narrowed
        helper.make_node("Reshape", ["bins", "flat"], ["bins_flat"]),
        helper.make_node("Shape", ["bins"], ["bins_shape"]),
        helper.make_node("GatherElements", ["table", "bins_flat"], ["looked_up"], axis=0),
        cast("counted"),  # -> an Add as well: stays int64
        helper.make_node("GatherElements", ["table", "counted"], ["also_looked_up"], axis=0),
        helper.make_node("Add", ["counted", "one"], ["next_bins"]),
    ]
    graph = helper.make_graph(
        nodes,
        "casts",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
        [
            helper.make_tensor_value_info(name, elem, [size])
            for name, elem, size in (
                ("looked_up", TensorProto.FLOAT, 6),
                ("also_looked_up", TensorProto.FLOAT, 6),
                ("next_bins", TensorProto.INT64, 6),
                ("bins_shape", TensorProto.INT64, 1),
            )
        ],
        initializer=[
            helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
            helper.make_tensor("one", TensorProto.INT64, [], [1]),
            helper.make_tensor("table", TensorProto.FLOAT, [8], [10.0 * i for i in range(8)]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = {"x": np.array([0.5, 1.2, 7.9, 3.0, 0.0, 6.4], np.float32)}
    before = ort.InferenceSession(model.SerializeToString()).run(None, x)
    assert narrow_gather_indices(model.graph) == 1
    to = {n.name: n.attribute[0].i for n in model.graph.node if n.op_type == "Cast"}
    assert to == {"bins": TensorProto.INT32, "counted": TensorProto.INT64}
    onnx.checker.check_model(model)
    after = ort.InferenceSession(model.SerializeToString()).run(None, x)
    for got, expected in zip(after, before):
        np.testing.assert_array_equal(got, expected)
    exported_graph = onnx.load(str(exported["onnx"])).graph  # the student's histogram bins
    casts = [n.attribute[0].i for n in exported_graph.node if n.op_type == "Cast"]
    assert casts.count(TensorProto.INT32) >= 1
