#!/usr/bin/env bash
# Installs the PowerDNS authoritative server and its SQLite backend from
# Debian for the provider tests. Idempotent: does nothing when both are
# there. The tests start their own pdns_server; the packaged service is not
# used (and on machines without an init system it cannot start anyway).
set -euo pipefail
if command -v pdns_server >/dev/null 2>&1 && dpkg -s pdns-backend-sqlite3 >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps the package scripts from starting the packaged service.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends pdns-server pdns-backend-sqlite3
