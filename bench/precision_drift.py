"""How far StyleID's two precisions drift from a float64 run, on tiny random components.

Each model family (SD 1.x-shaped epsilon UNet, SD 2.x-shaped v-prediction UNet with
linear projections) is built once with random weights; the same pair (same posterior
noise, same schedule) is stylized four times:

* ``float64``: everything in float64 (the reference);
* ``float32``: everything in float32 (the floor: what rounding alone costs);
* ``official``: float32 weights, encode and inversion, fp16 autocast sampling/decoding;
* ``fast``: everything in fp16.

Printed per precision: relative RMS error of the inverted start latent and of the final
latent, and of the decoded image (before 8-bit quantisation) the PSNR and the largest
difference in 8-bit levels, all against float64. On a CPU, fp16 autocast follows the CPU
autocast op lists, which are close to but not the same as CUDA's; run it on a GPU with
``--device cuda`` for the GPU's own figures.

examples:
  python bench/precision_drift.py                 # CPU, 50 steps, 64 px (~10 min, 2 busy cores)
  python bench/precision_drift.py --device cuda
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from styledistill.teachers.styleid import StyleIDTeacher

SD_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "num_train_timesteps": 1000,
}
FAMILIES = {
    "SD1.x-shaped, epsilon": {"prediction_type": "epsilon", "use_linear_projection": False},
    "SD2.x-shaped, v-prediction": {
        "prediction_type": "v_prediction",
        "use_linear_projection": True,
    },
}


def build_components(prediction_type: str, use_linear_projection: bool, size: int) -> dict:
    """A small random UNet/VAE of the SD layout (4 stages, 3 decoder attentions per stage)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=2,
        sample_size=size // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
        use_linear_projection=use_linear_projection,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
    )
    scheduler = DDIMScheduler(**SD_SCHEDULER, prediction_type=prediction_type)
    prompt_embeds = torch.randn(1, 8, 32)
    return {"unet": unet, "vae": vae, "scheduler": scheduler, "prompt_embeds": prompt_embeds}


def images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    low = torch.rand(2, 3, 6, 6, generator=generator)
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic")
    pair = up.clamp(0, 1).mul(255).round().div(255)  # 8-bit, as files are
    return pair[0], pair[1]


def run_once(components: dict, precision: str, dtype: torch.dtype, args) -> dict:
    import copy

    teacher = StyleIDTeacher(
        **copy.deepcopy(components),
        precision=precision,
        dtype=dtype,
        device=args.device,
        size=args.size,
        num_steps=args.steps,
        progress=False,
    )
    content, style = images(args.size)
    latents = {}

    def keep(phase, index, t_from, t_to, latent):
        latents[phase] = latent.detach().to("cpu", torch.float64)

    start = time.perf_counter()
    # Through the public stages, so the image is compared before 8-bit quantisation.
    stacked = torch.stack([teacher._preprocess(content, "c"), teacher._preprocess(style, "s")])
    noise_seeds = [teacher.seed, teacher.style_noise_seed(stacked[1])]
    encoded = teacher.encode_images(stacked, noise_seeds)
    start_latent, q, k, v = teacher.invert(encoded, q_rows=[0], kv_rows=[1], callback=keep)
    init = teacher.adain(start_latent[:1], start_latent[1:])
    final = teacher.sample(
        init, q, {n: t for n, t in k.items()}, {n: t for n, t in v.items()}, callback=keep
    )
    image = teacher.decode(final, quantize=False).to(torch.float64)
    return {
        "start": latents["invert"],
        "final": final.detach().to("cpu", torch.float64),
        "image": image,
        "seconds": time.perf_counter() - start,
    }


def relative_rms(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt()).item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("examples:") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=64, help="pixels (default 64)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # one "cast to fp16" warning per model otherwise
    rows = [
        ("float64", "fast", torch.float64),
        ("float32", "fast", torch.float32),
        ("official", "official", torch.float16),
        ("fast", "fast", torch.float16),
    ]
    print(
        f"device {args.device}, {args.size} px, {args.steps} DDIM steps, tiny random "
        f"components; errors against the float64 run"
    )
    for family, options in FAMILIES.items():
        components = build_components(
            options["prediction_type"], options["use_linear_projection"], args.size
        )
        results = {label: run_once(components, p, d, args) for label, p, d in rows}
        reference = results["float64"]
        print(f"\n{family}")
        print(
            f"  {'precision':<10} {'start latent':>13} {'final latent':>13} "
            f"{'image PSNR':>11} {'max |diff|':>11} {'time':>7}"
        )
        for label, _, _ in rows[1:]:
            got = results[label]
            diff = (got["image"] - reference["image"]).abs()
            mse = diff.pow(2).mean().item()
            psnr = math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
            print(
                f"  {label:<10} {relative_rms(got['start'], reference['start']):13.2e} "
                f"{relative_rms(got['final'], reference['final']):13.2e} "
                f"{psnr:8.1f} dB {diff.max().item() * 255:7.2f} lv {got['seconds']:6.1f}s"
            )
    print(
        "\nstart latent / final latent: relative RMS error after inversion / after sampling; "
        "image: decoded, before 8-bit quantisation; lv = 8-bit levels"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
