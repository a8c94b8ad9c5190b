#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian 12 machine. Idempotent.
set -euo pipefail

need_apt=()
command -v cargo >/dev/null || { echo "cargo is required (rustup)"; exit 1; }
# Nothing else is needed yet; later issues add zookeeper, qemu, debootstrap, sshd here.
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "missing packages: ${need_apt[*]} (run as root to install)"; exit 1
  fi
fi
