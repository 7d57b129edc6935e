#!/usr/bin/env bash
# Installs the Debian packages the C++ tests need when any is missing: CMake
# and Ninja, GoogleTest's sources, the aarch64 cross compiler and qemu-user.
set -euo pipefail
packages=(cmake ninja-build libgtest-dev g++-aarch64-linux-gnu qemu-user-static)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
fi
echo "installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
