#!/usr/bin/env bash
# Installs what the end-to-end suite drives, from pinned sources only:
# Debian's Chromium and curl (apt), playwright-core from the committed
# package-lock.json (npm ci), and the Python clients pinned in
# requirements.txt (a virtual environment in e2e/.venv).
# Never downloads a browser build: Playwright drives /usr/bin/chromium.
# run.sh compares the copies made below to know when to run this again.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "e2e setup: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

npm ci --no-audit --no-fund
cp package-lock.json node_modules/.e2e-installed-lock.json

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --disable-pip-version-check --quiet -r requirements.txt
cp requirements.txt .venv/requirements.installed
