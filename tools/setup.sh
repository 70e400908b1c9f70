#!/usr/bin/env bash
# Installs everything the whole test suite needs on a fresh Debian machine with Node.js:
# the npm packages (npm ci), redis-server (tests start their own on free loopback ports) and
# Debian's chromium (the browser-client test drives it with playwright-core). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]} (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "setup: node $(node --version), redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'), $(chromium --version 2>/dev/null || echo 'chromium missing')"
