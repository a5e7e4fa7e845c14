#!/bin/sh
# Build (or reuse) a Debian trixie chroot with GIMP 3 for the end-to-end tests.
# Usage: build_chroot.sh [DIR]   (default: $NST_GIMP_CHROOT or ~/.cache/neural-style/gimp-chroot)
# Idempotent: a finished chroot is marked with .nst-ready (its package list) and reused as is.
# Exit status 2: not root; 3: debootstrap cannot be installed (the tests skip on these).
set -eu

DIR="${1:-${NST_GIMP_CHROOT:-$HOME/.cache/neural-style/gimp-chroot}}"
PACKAGES="gimp python3-gi gir1.2-gimp-3.0 xvfb xdotool imagemagick"

if [ "$(cat "$DIR/.nst-ready" 2>/dev/null)" = "$PACKAGES" ]; then
    echo "GIMP chroot ready: $DIR"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "building the GIMP chroot needs root" >&2
    exit 2
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; } || {
        echo "cannot install debootstrap" >&2
        exit 3
    }
fi

mkdir -p "$DIR"
if [ ! -x "$DIR/usr/bin/apt-get" ] || [ ! -f "$DIR/.nst-bootstrapped" ]; then
    debootstrap --variant=minbase trixie "$DIR" http://deb.debian.org/debian
    touch "$DIR/.nst-bootstrapped"
fi

MOUNTED=""
cleanup() {
    for m in $MOUNTED; do umount "$DIR/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
mountpoint -q "$DIR/proc" || { mount -t proc proc "$DIR/proc" && MOUNTED="proc $MOUNTED"; }
mountpoint -q "$DIR/dev" || { mount --bind /dev "$DIR/dev" && MOUNTED="dev $MOUNTED"; }
cp /etc/resolv.conf "$DIR/etc/resolv.conf" 2>/dev/null || true

chroot "$DIR" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
    "apt-get update -q && apt-get install -y -q --no-install-recommends $PACKAGES && apt-get clean"
echo "$PACKAGES" >"$DIR/.nst-ready"
echo "GIMP chroot ready: $DIR"
