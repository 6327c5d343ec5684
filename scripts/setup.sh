#!/usr/bin/env bash
# Prepare this machine for running and testing the project: Debian packages
# (Orthanc, its DICOMweb and web viewer plugins, DCMTK, Chromium and chromedriver for the
# browser tests) when missing, then the virtualenv.
# Idempotent: a second run installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(orthanc orthanc-dicomweb orthanc-webviewer dcmtk chromium chromium-driver)
missing=()
for pkg in "${debian_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # The Debian package starts a system Orthanc on 4242/8042; the project runs its own.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet orthanc 2>/dev/null; then
        "${sudo_cmd[@]}" systemctl stop orthanc || true
    fi
fi

python_bin="${PYTHON:-python3}"
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$python_bin" -m venv .venv
fi
if [ ! -f "$stamp" ]; then
    echo "setup: installing Python packages"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    rm -f .venv/.installed-*
    touch "$stamp"
else
    echo "setup: everything already installed"
fi
