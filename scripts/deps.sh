#!/usr/bin/env bash
# Installs the Debian packages cdpcore needs, only those missing. Sourced by the other
# scripts; safe to run again. Needs root (or sudo) only when something is missing.
set -euo pipefail
CDP_PACKAGES=(build-essential cmake pkg-config python3 python3-setuptools python3-pip python3-wheel python3-venv
  libabsl-dev libxxhash-dev libsimdjson-dev doctest-dev libroaring-dev libssl-dev tzdata doxygen
  clang libclang-rt-14-dev)
missing=()
for p in "${CDP_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cdpcore: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
