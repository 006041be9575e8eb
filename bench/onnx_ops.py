"""Why the export writes some ops the way it does: onnxruntime kernels side by side.

Each row times one op, or one small chain, in onnxruntime on the shapes sttr-small's
content path has at 384x384, against the form the export used before: the histogram
bins' cast (int32 indices, ``export.narrow_gather_indices``) and the brightness of an
image (``image_ops.luminance``, the same numbers: the script checks). (onnxruntime's TopK
with k=1 beat ArgMin by ~20% here in some runs and lost by 50% in others; in the whole
graph it made no difference, so the nearest patch stays an argmin.) The machine's other
work moves whole runs, so compare rows of one run only.

    python bench/onnx_ops.py --repeats 200
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from styledistill.benchmark import machine_line, time_calls


def session(nodes, inputs, outputs, initializers=(), threads: int = 2):
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph(nodes, "ops", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def median_ms(run, repeats: int) -> float:
    return float(np.median(time_calls(run, repeats, warmup=5))) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    args = parser.parse_args()

    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    threads = args.threads or os.cpu_count() or 1
    rng = np.random.default_rng(0)
    image = rng.random((1, 3, 384, 384), dtype=np.float32)
    bins = image * 255

    def tensor(name, elem, shape):
        return helper.make_tensor_value_info(name, elem, shape)

    def constant(name, value, dtype=np.float32):
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)

    float_image = [tensor("x", TensorProto.FLOAT, [1, 3, 384, 384])]
    rows = []

    # 1. histogram bins: float -> int64 (what PyTorch indexes with) or int32
    for label, to in (("int64", TensorProto.INT64), ("int32", TensorProto.INT32)):
        cast = session(
            [helper.make_node("Cast", ["x"], ["y"], to=to)],
            float_image,
            [tensor("y", to, None)],
            threads=threads,
        )
        rows.append(
            (
                f"histogram bins, Cast float -> {label}, 3x384x384",
                median_ms(lambda s=cast: s.run(None, {"x": bins}), args.repeats),
            )
        )

    # 2. brightness: weighted sum over channel slices, or one [1,3] x [3,HW] matmul
    weights = (0.299, 0.587, 0.114)
    sliced = session(
        [
            helper.make_node("Split", ["x", "sizes"], ["r", "g", "b"], axis=1),
            *(helper.make_node("Mul", [c, f"w{c}"], [f"{c}w"]) for c in "rgb"),
            helper.make_node("Add", ["rw", "gw"], ["rg"]),
            helper.make_node("Add", ["rg", "bw"], ["y"]),
        ],
        float_image,
        [tensor("y", TensorProto.FLOAT, None)],
        [
            constant("sizes", [1, 1, 1], np.int64),
            *(constant(f"w{c}", w) for c, w in zip("rgb", weights)),
        ],
        threads,
    )
    matmul = session(
        [
            helper.make_node("Reshape", ["x", "flat"], ["xf"]),
            helper.make_node("MatMul", ["w", "xf"], ["y"]),
        ],
        float_image,
        [tensor("y", TensorProto.FLOAT, None)],
        [constant("flat", [1, 3, -1], np.int64), constant("w", [weights])],
        threads,
    )
    got, expected = matmul.run(None, {"x": image})[0], sliced.run(None, {"x": image})[0]
    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=1e-6)
    for label, s in (("channel slices, 3 Mul + 2 Add", sliced), ("one MatMul", matmul)):
        rows.append(
            (
                f"brightness of 3x384x384: {label}",
                median_ms(lambda s=s: s.run(None, {"x": image}), args.repeats),
            )
        )

    print(f"machine: {machine_line()}")
    print(f"onnxruntime {ort.__version__}, {threads} threads, median of {args.repeats} runs")
    print("\n| op | ms |\n|---|---|")
    for label, ms in rows:
        print(f"| {label} | {ms:.3f} |")


if __name__ == "__main__":
    main()
