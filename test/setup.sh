#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: the npm
# packages from the lockfile and the real servers the tests start on loopback.
# Safe to run again: apt-get and npm ci are idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages of the servers the tests run for real (never as system services),
# and the browser the web page tests drive.
packages=(pdns-server pdns-backend-sqlite3 dovecot-imapd chromium fonts-dejavu-core postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  # policy-rc.d 101 keeps the packages' own services from starting: the tests start their own.
  made_policy=no
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    "${as_root[@]}" sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    made_policy=yes
  fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$made_policy" = no ] || "${as_root[@]}" rm -f /usr/sbin/policy-rc.d
fi

# Node 24 LTS, the second runtime CI runs the suite on (test/node24.sh), from the npm registry's
# `node` package; and the C headers of Node 24.18.1 that test/node24.sh builds better-sqlite3 against
# (the headers its published binaries were built with; see there why not newer ones).
if ! .tools/node24/node_modules/node/bin/node --version 2>/dev/null | grep -q '^v24\.'; then
  npm install --prefix .tools/node24 --no-audit --no-fund --no-save node@24
fi
headers_package="node-$(uname -s | tr A-Z a-z)-$(node -p process.arch)"
if [ ! -f ".tools/node24-headers/node_modules/$headers_package/include/node/node.h" ]; then
  npm install --prefix .tools/node24-headers --no-audit --no-fund --no-save --ignore-scripts "$headers_package@24.18.1"
fi

# The packages from the lockfile; `prepare` compiles src/ and providers/ into dist/.
npm ci --no-audit --no-fund
