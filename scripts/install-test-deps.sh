#!/usr/bin/env bash
# Installs the Debian packages the test suites drive besides Node: chromium (browser tests, through
# playwright-core) and python3-websockets (the PRP document's Python client). Skips what is there.
set -euo pipefail
cd "$(dirname "$0")"
bash ./install-chromium.sh
if /usr/bin/python3 -c 'import websockets' >/dev/null 2>&1; then
  echo "python3-websockets present: $(/usr/bin/python3 -c 'import websockets; print(websockets.__version__)')"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends python3 python3-websockets >/dev/null
echo "installed: python3-websockets $(/usr/bin/python3 -c 'import websockets; print(websockets.__version__)')"
