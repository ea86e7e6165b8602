#!/bin/sh
# Install the Debian 12 packages loramix needs to build and test. Idempotent:
# packages already present are left alone, and nothing is fetched outside apt.
set -eu
PKGS="build-essential cmake pkg-config libdnnl-dev libcjson-dev libpng-dev \
libutf8proc-dev zlib1g-dev libsleef-dev clang libclang-rt-14-dev libomp-14-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "setup-deps: all packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup-deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
