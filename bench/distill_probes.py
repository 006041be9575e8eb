"""Probes behind the distillation benchmark's "why": what each measure rewards.

Run after ``bench/distill_quality.py`` on the same ``--work`` folder. On every ``--every``-th
held-out pair it prints

1. the training loss terms (pixel L1, relative MobileNetV2 feature L1, texture) and the
   EfficientNet-Lite0 distances of: the teacher re-run, a 5x5 box blur of the teacher's
   own output, and the histogram-matched content, each against the teacher's output;
2. for a trained student (``--run``): the distillation score as trained and with its
   texture head's gate forced open or shut (nearest-patch head; for the older
   soft-attention head: its mosaic forced to weight 1, its attention sharpened 10x).
   Students run at the teacher's size;
3. with ``--match``: the untrained sttr-small (ImageNet tokenizers, its residual at zero:
   the head's synthesis pass) with the nearest-patch bank on other grids: a quarter of
   its grid (a patch every 16 px), its grid shifted, two grids, and the texture teacher's
   four (a patch every 4 px both ways). The search is exact in each.
4. with ``--head``: the same untrained sttr-small with its synthesis pass varied: the
   match code's chroma grid and the edge weight's resolution as the last release had them
   (4x4, full) or coarser, and the brightness steps after the paste left out one by one.

    python bench/distill_probes.py --work /tmp/dq2 --run /tmp/dq2/run-student
    python bench/distill_probes.py --work /tmp/dq2 --match --every 1
    python bench/distill_probes.py --work /tmp/dq2 --head --every 1
"""

from __future__ import annotations

import argparse
import copy
import json
from contextlib import ExitStack
from pathlib import Path

import torch
import torch.nn.functional as F


def load_pairs(work: Path, every: int):
    from styledistill.images import center_crop_resize, load_image

    pairs = json.loads((work / "eval" / "pairs.json").read_text())[::every]
    for pair in pairs:
        yield (
            center_crop_resize(load_image(pair["content"]), 256),
            load_image(pair["style"]),
            load_image(work / "eval" / "seed0" / f"{pair['key']}.png"),
            load_image(work / "eval" / "seed1" / f"{pair['key']}.png"),
        )


def what_measures_reward(work: Path, every: int) -> None:
    from styledistill.losses import DistillationLoss, LossWeights
    from styledistill.metrics.distillation import histogram_matched
    from styledistill.metrics.perceptual import EfficientNetLite0, PerceptualDistance

    loss = DistillationLoss(LossWeights(pixel=1, perceptual=1, texture=1), network="mobilenet_v2")
    distance = PerceptualDistance(EfficientNetLite0.from_file())
    sums: dict[str, dict[str, float]] = {}
    count = 0
    for content, style, teacher, rerun in load_pairs(work, every):
        candidates = {
            "teacher re-run": rerun,
            "5x5 blur of the teacher": F.avg_pool2d(teacher[None], 5, 1, 2)[0],
            "hist-matched": histogram_matched(content, style),
        }
        for name, image in candidates.items():
            with torch.no_grad():
                _, terms = loss(image[None], teacher[None])
            values = {k: float(v) for k, v in terms.items()}
            values.update(
                {f"effnet {k}": float(v) for k, v in distance(image[None], teacher[None]).items()}
            )
            row = sums.setdefault(name, {})
            for key, value in values.items():
                row[key] = row.get(key, 0.0) + value
        count += 1
    print(f"\nagainst the teacher's output, mean of {count} held-out pairs")
    keys = list(next(iter(sums.values())))
    print("| candidate | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, row in sums.items():
        print(f"| {name} | " + " | ".join(f"{row[k] / count:.3f}" for k in keys) + " |")


def texture_head_probes(work: Path, run: Path, every: int) -> None:
    from styledistill.metrics.distillation import score_distillation, summarize
    from styledistill.metrics.perceptual import EfficientNetLite0, PerceptualDistance
    from styledistill.student import STTR, Stylizer

    trained = STTR.from_pretrained(run / "student").eval()

    def gate_fixed(model: STTR, logit: float) -> STTR:
        """The nearest-patch head's gate (the last conv's 4th output) set to a constant
        (in logit units)."""
        model = copy.deepcopy(model)
        with torch.no_grad():
            model.image_decoder[-1].weight[3].zero_()
            model.image_decoder[-1].bias[3] = logit
        return model

    def mosaic_weight(model: STTR, weight: float) -> STTR:
        model = copy.deepcopy(model)
        conv = model.image_decoder[-1]
        with torch.no_grad():
            conv.weight[:, -3:] = 0.0
            for channel in range(3):
                conv.weight[channel, conv.weight.shape[1] - 3 + channel, 1, 1] = weight
        return model

    def sharpened(model: STTR, factor: float) -> STTR:
        model = copy.deepcopy(model)
        with torch.no_grad():
            for layer in (model.patch_query, model.patch_key):
                layer.weight.mul_(factor**0.5)
                layer.bias.mul_(factor**0.5)
            model.patch_colour_scale.add_(float(torch.log(torch.tensor(factor))))
        return model

    if trained.config.texture_head == "nearest":
        variants = {
            "as trained": trained,
            "gate forced open (the synthesis pass everywhere)": gate_fixed(trained, 20.0),
            "gate forced shut (texture head unused)": gate_fixed(trained, -20.0),
        }
    else:  # the soft-attention head
        variants = {
            "as trained": trained,
            "mosaic weight 1": mosaic_weight(trained, 1.0),
            "attention 10x sharper": sharpened(trained, 10.0),
        }
    stylizers = {name: Stylizer(model, device="cpu", size=None) for name, model in variants.items()}
    students = {
        name: (lambda c, s, st=stylizer: st.stylize_tensor(c, s))
        for name, stylizer in stylizers.items()
    }
    result = summarize(
        score_distillation(
            load_pairs(work, every), students, PerceptualDistance(EfficientNetLite0.from_file())
        )
    )
    print(f"\nthe texture head of {run}, {result.count} held-out pairs")
    print("\n".join(result.markdown(students)))


def match_probes(work: Path, every: int) -> None:
    """Fixed weights, so only the bank differs: what its density buys in the score."""
    from unittest import mock

    import styledistill.student.patch_synthesis as synthesis
    import styledistill.student.sttr as sttr
    from styledistill.metrics.distillation import score_distillation, summarize
    from styledistill.metrics.perceptual import EfficientNetLite0, PerceptualDistance
    from styledistill.student import STTR, Stylizer

    def grids(*shifts):
        return [mock.patch.object(module, "BANK_SHIFTS", shifts) for module in (synthesis, sttr)]

    def every_other_patch(codes_of):  # a quarter of the bank: a patch every 16 px
        def sparse(style, style_mask, side, cells=synthesis.DESCRIPTOR_CELLS):
            codes = codes_of(style, style_mask, side, cells)
            rows, cols = (n // (side // 2) for n in style.shape[-2:])
            kept = torch.zeros(rows, cols, dtype=torch.bool)
            kept[::2, ::2] = True
            never = ~kept.flatten().repeat(codes.shape[1] // kept.numel())
            codes[..., -1] = codes[..., -1].masked_fill(never, synthesis._NEVER)
            return codes

        return [mock.patch.object(sttr, "style_codes", sparse)]

    variants = {
        "one grid, a patch every 8 px (default)": [],
        "a quarter of it, a patch every 16 px": every_other_patch(sttr.style_codes),
        "that grid shifted by 4 px (not aligned with the content's patches)": grids((0, 0)),
        "two grids, a patch every 8 px and 4 px along the diagonal": grids((0, 0), (1, 1)),
        "the texture teacher's four grids (every 4 px both ways)": grids(
            (0, 0), (0, 1), (1, 0), (1, 1)
        ),
    }
    torch.manual_seed(0)
    stylizer = Stylizer(STTR.from_preset("sttr-small", backbone_weights="imagenet"), size=None)

    def run(content, style, patches):
        with ExitStack() as stack:
            for patch in patches:
                stack.enter_context(patch)
            return stylizer.stylize_tensor(content, style)

    students = {name: (lambda c, s, p=patches: run(c, s, p)) for name, patches in variants.items()}
    result = summarize(
        score_distillation(
            load_pairs(work, every), students, PerceptualDistance(EfficientNetLite0.from_file())
        )
    )
    print(f"\nthe untrained sttr-small's search, {result.count} held-out pairs")
    print("\n".join(result.markdown(students)))


def head_probes(work: Path, every: int) -> None:
    """Fixed weights, the synthesis pass varied: what each of its steps buys in the score."""
    from unittest import mock

    import styledistill.student.patch_synthesis as synthesis
    import styledistill.student.sttr as sttr
    from styledistill.metrics.distillation import score_distillation, summarize
    from styledistill.metrics.perceptual import EfficientNetLite0, PerceptualDistance
    from styledistill.student import STTR, Stylizer

    def fusion_without_detail(mosaic, content_luminance, weight):  # (sttr's name is patched)
        return synthesis.fuse_luminance(mosaic, content_luminance, weight, detail_radius=0)

    settings = {  # name: (preset overrides, patches)
        "today's head (chroma 2x2, edges at half resolution)": ({}, []),
        "chroma 4x4 (last release)": ({"patch_chroma_cells": None}, []),
        "edges at full resolution (last release)": ({"patch_edge_stride": 1}, []),
        "both as the last release": ({"patch_chroma_cells": None, "patch_edge_stride": 1}, []),
        "edges at a quarter resolution": ({"patch_edge_stride": 4}, []),
        "no brightness histogram after the fusion": (
            {},
            [mock.patch.object(sttr, "match_channel_quantiles", lambda b, mask, q: b)],
        ),
        "the fusion without its detail term": (
            {},
            [mock.patch.object(sttr, "fuse_luminance", fusion_without_detail)],
        ),
        "no fusion (the pasted patches as they are)": (
            {},
            [mock.patch.object(sttr, "fuse_luminance", lambda m, lum, w: m)],
        ),
    }

    def student(overrides, patches):
        torch.manual_seed(0)
        model = STTR.from_preset("sttr-small", backbone_weights="imagenet", **overrides)
        stylizer = Stylizer(model, size=None)

        def run(content, style):
            with ExitStack() as stack:
                for patch in patches:
                    stack.enter_context(patch)
                return stylizer.stylize_tensor(content, style)

        return run

    students = {name: student(*setting) for name, setting in settings.items()}
    result = summarize(
        score_distillation(
            load_pairs(work, every), students, PerceptualDistance(EfficientNetLite0.from_file())
        )
    )
    print(f"\nthe untrained sttr-small's synthesis pass, {result.count} held-out pairs")
    print("\n".join(result.markdown(students)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/distill_quality"))
    parser.add_argument("--run", type=Path, help="a trained run folder (for the head probes)")
    parser.add_argument("--every", type=int, default=2, help="score every n-th held-out pair")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--match", action="store_true", help="probe the nearest-patch search")
    parser.add_argument("--head", action="store_true", help="probe the synthesis pass's steps")
    args = parser.parse_args()
    pairs = args.work / "eval" / "pairs.json"
    if not pairs.is_file():
        raise SystemExit(
            f"{pairs}: no held-out pairs; run bench/distill_quality.py --work {args.work} first"
        )
    torch.set_num_threads(args.threads)
    if args.match:
        match_probes(args.work, args.every)
        return
    if args.head:
        head_probes(args.work, args.every)
        return
    what_measures_reward(args.work, args.every)
    if args.run is not None:
        texture_head_probes(args.work, args.run, args.every)


if __name__ == "__main__":
    main()
