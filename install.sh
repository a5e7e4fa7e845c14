#!/usr/bin/env bash
# Neural Style for GIMP — one-command set-up. Run ./install.sh --help for the options.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
DEV=0
UNINSTALL=0
SERVICE=0
TORCHVISION_WEIGHTS=0
GIMP=1

usage() {
    cat <<'EOF'
Usage: ./install.sh [OPTIONS]

Sets up Neural Style for GIMP from this folder:
  1. creates .venv and installs the package (the `nst` command);
  2. installs the GIMP 3 plug-in (system GIMP and Flatpak GIMP, when found),
     with pyzmq and msgpack vendored for GIMP's own Python;
  3. writes the plug-in's config (how to start the daemon).
By default nothing is downloaded besides the Python packages: the VGG16 weights that
"Paint Like" (Gatys) and training need are bundled with the package.
Running it again is safe: finished steps are skipped.

Options:
  --dev          also install the test tools (pytest, hypothesis, ruff) and Ray
                 (the cluster extra, for `nst batch --ray`: see docs/cluster.md)
  --service      also install and enable a systemd user unit for the daemon
  --no-gimp      do not install the GIMP plug-in
  --torchvision-weights
                 also download torchvision's own VGG16 weights (sha256-checked) into
                 the data dir; they then take precedence over the bundled ones
  --no-weights   accepted for older scripts; does nothing (nothing is fetched by default)
  --uninstall    remove the plug-in, the systemd unit and .venv
                 (your styles and weights in the data dir are kept)
  -h, --help     show this help

Environment:
  PYTHON         the Python interpreter to use (3.11 or newer)
  NST_HOME       data dir for weights, user styles and daemon files
                 (default: ~/.local/share/neural-style)
EOF
}

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

for arg in "$@"; do
    case "$arg" in
        --dev) DEV=1 ;;
        --service) SERVICE=1 ;;
        --no-gimp) GIMP=0 ;;
        --torchvision-weights) TORCHVISION_WEIGHTS=1 ;;
        --no-weights) ;;  # the weights are bundled: nothing to skip
        --uninstall) UNINSTALL=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

UNIT_DIR="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
UNIT="$UNIT_DIR/neural-style.service"

install_service() {
    command -v systemctl >/dev/null 2>&1 || die "--service needs systemd (systemctl not found)"
    mkdir -p "$UNIT_DIR"
    sed "s|@NST@|$VENV/bin/nst|g" "$ROOT/docs/neural-style.service" >"$UNIT"
    systemctl --user daemon-reload && systemctl --user enable --now neural-style.service \
        || die "could not enable the systemd user unit $UNIT"
    say "daemon runs as a systemd user service (systemctl --user status neural-style)"
}

if [ "$UNINSTALL" = 1 ]; then
    if [ -x "$VENV/bin/nst" ]; then
        "$VENV/bin/nst" daemon stop >/dev/null 2>&1 || true
    fi
    if [ -f "$UNIT" ]; then
        systemctl --user disable --now neural-style.service >/dev/null 2>&1 || true
        rm -f "$UNIT"
        say "removed $UNIT"
    fi
    PY="$( [ -x "$VENV/bin/python" ] && echo "$VENV/bin/python" || find_python || true)"
    if [ -n "$PY" ]; then
        "$PY" "$ROOT/gimp_plugin/install_plugin.py" --uninstall
    fi
    rm -rf "$VENV"
    say "removed $VENV"
    say "kept your data dir (${NST_HOME:-~/.local/share/neural-style}); delete it by hand if you wish"
    exit 0
fi

# 1. Python environment and package --------------------------------------------------------
PY="$(find_python)" || die "Python 3.11 or newer is needed. Install it (e.g. 'sudo apt install python3', \
'brew install python@3.12') or point PYTHON at one: PYTHON=/path/to/python3.12 ./install.sh"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -c 'import venv, ensurepip' 2>/dev/null || die "Python's venv module is missing. \
On Debian/Ubuntu: sudo apt install python3-venv (or python3.X-venv for your version)"
    say "creating $VENV with $("$PY" --version)"
    "$PY" -m venv "$VENV"
fi

EXTRAS=""
[ "$DEV" = 1 ] && EXTRAS="[dev]"
STAMP="$VENV/.nst-installed"
WANT="$(cat "$ROOT/pyproject.toml" | cksum | cut -d' ' -f1)$EXTRAS"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    say "installing the package${EXTRAS:+ with test tools} into .venv (torch is large: this can take minutes)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT$EXTRAS"
    echo "$WANT" >"$STAMP"
else
    say "package already installed in .venv"
fi

# 2 + 3. GIMP plug-in ---------------------------------------------------------------------
if [ "$GIMP" = 1 ]; then
    "$VENV/bin/python" "$ROOT/gimp_plugin/install_plugin.py" --daemon-command "$VENV/bin/nst" \
        || say "the GIMP plug-in was not installed (see above); the CLI works without it"
fi

# Optional: torchvision's VGG16 weights instead of the bundled ones ---------------------------
if [ "$TORCHVISION_WEIGHTS" = 1 ]; then
    if ! "$VENV/bin/nst" weights fetch --if-missing; then
        say "torchvision's VGG16 weights were not fetched; the bundled ones are used. Try again" \
            "later with '.venv/bin/nst weights fetch', or import a downloaded file:" \
            "'.venv/bin/nst weights import FILE'"
    fi
fi

[ "$SERVICE" = 1 ] && install_service

say "done. Try: .venv/bin/nst stylize examples/astronaut.jpg --style starry-night -o astronaut-starry.png"
