#!/usr/bin/env python3
"""Install the Neural Style plug-in into GIMP 3 (system and Flatpak). Standard library only.

The plug-in folder gets: ``neural_style.py`` (executable) and its helper modules, the
torch-free ``nst_client`` package whole (``vendor/nst_client``: the protocol's typed
messages, the client, the wording of errors and the style-name rule), pyzmq and msgpack
wheels built for GIMP's own Python (``vendor/``), and ``config.json`` saying how to reach
and start the daemon.

Usage:
    install_plugin.py [--daemon-command NST] [--endpoint EP]
                      [--plugins-dir DIR --python-version X.Y] [--uninstall]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PLUGIN_NAME = "neural_style"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLUGIN_FILES = [
    "neural_style.py",
    "job_runs.py",
    "daemon_status.py",
    "layer_io.py",
    "daemon_link.py",
    "regions.py",
    "preview.py",
    "dialogs.py",
    "dialog_widgets.py",
    "live_preview.py",
]
HELP_DIR = "help"  # the help page and GIMP's map of help ids to it
CLIENT_PACKAGE = "nst_client"  # vendored whole; it imports nothing of the engine's
STALE_PACKAGES = ["nst_daemon", "nst_core"]  # what older versions vendored
VENDORED_PACKAGES = ["pyzmq", "msgpack"]
FLATPAK_APP = "org.gimp.GIMP"
INTERP_GLOBS = [
    f"{prefix}{lib}/gimp/3.0/interpreters/*.interp"
    for prefix in ("/usr", "/usr/local")
    for lib in ("/lib", "/lib64", "/lib/*")
]


class InstallError(Exception):
    """A problem the user can fix; printed without a traceback."""


@dataclass
class Target:
    """One GIMP installation: where its plug-ins live and which Python runs them."""

    label: str
    plugins_dir: Path
    python_version: str | None


def _run(cmd: list[str], timeout: float = 60) -> str | None:
    """stdout+stderr of ``cmd``, or None when it cannot run or fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout + done.stderr) if done.returncode == 0 else None


def _version_of(output: str | None) -> str | None:
    match = re.search(r"Python (\d+)\.(\d+)", output or "")
    return f"{match[1]}.{match[2]}" if match else None


def system_gimp_python() -> str | None:
    """Python version of the interpreter that a system GIMP 3 uses for ``.py`` plug-ins."""
    interps = [path for pattern in INTERP_GLOBS for path in sorted(glob.glob(pattern))]
    for interp in interps:
        for line in Path(interp).read_text(errors="replace").splitlines():
            name, _, program = line.partition("=")
            if name.strip() == "python" or name.strip().endswith("python3"):
                version = _version_of(_run([program.strip(), "--version"]))
                if version:
                    return version
    return _version_of(_run(["python3", "--version"]))


def _is_gimp3(program: str) -> bool:
    path = shutil.which(program)
    return bool(path) and bool(re.search(r"\b3\.\d", _run([path, "--version"], timeout=30) or ""))


def find_targets(with_python: bool = True) -> list[Target]:
    """GIMP 3 installations of this user: system GIMP and Flatpak GIMP.

    ``with_python``: also find out which Python version each one runs plug-ins with.
    """
    home = Path.home()
    targets = []
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "GIMP" / "3.0"
    if config.is_dir() or any(_is_gimp3(p) for p in ("gimp-3.0", "gimp-console-3.0", "gimp")):
        version = system_gimp_python() if with_python else None
        targets.append(Target("system GIMP", config / "plug-ins", version))
    flatpak_config = home / ".var" / "app" / FLATPAK_APP / "config" / "GIMP" / "3.0"
    flatpak_found = _run(["flatpak", "info", FLATPAK_APP]) is not None
    if flatpak_found or flatpak_config.is_dir():
        version = None
        if flatpak_found and with_python:
            cmd = ["flatpak", "run", "--command=python3", FLATPAK_APP, "--version"]
            version = _version_of(_run(cmd, timeout=120))
        targets.append(Target("Flatpak GIMP", flatpak_config / "plug-ins", version))
    return targets


def wheel_platforms() -> list[str]:
    """manylinux tags this machine's glibc accepts, newest first (pip takes several)."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    libc, version = platform.libc_ver()
    minor = int(version.split(".")[1]) if libc == "glibc" and "." in version else 17
    return [f"manylinux_2_{m}_{machine}" for m in range(max(minor, 17), 16, -1)] + [
        f"manylinux2014_{machine}"
    ]


def vendor_stamp(python_version: str) -> str:
    """What ``vendor/.nst-vendored`` says once the wheels for this Python are in place."""
    return f"{python_version} {platform.machine()} {' '.join(VENDORED_PACKAGES)}"


def vendor_packages(vendor: Path, python_version: str) -> None:
    """pip-install pyzmq and msgpack wheels for GIMP's Python into ``vendor`` (skipped if done)."""
    stamp = vendor / ".nst-vendored"
    wanted = vendor_stamp(python_version)
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        print(f"    pyzmq and msgpack for Python {python_version} already in {vendor}")
        return
    for child in vendor.iterdir() if vendor.is_dir() else []:
        if child.name != CLIENT_PACKAGE:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--upgrade",
        "--target",
        str(vendor),
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
    ]
    for tag in wheel_platforms():
        cmd += ["--platform", tag]
    print(f"    fetching pyzmq and msgpack wheels for Python {python_version}")
    done = subprocess.run(cmd + VENDORED_PACKAGES, capture_output=True, text=True)
    if done.returncode != 0:
        raise InstallError(
            f"pip could not fetch pyzmq/msgpack for Python {python_version}:\n{done.stderr.strip()}"
            "\nCheck the network connection, or give GIMP's Python version with --python-version."
        )
    stamp.write_text(wanted + "\n")


def vendor_client(vendor: Path) -> None:
    """Copy the ``nst_client`` package (its modules, afresh) into ``vendor``."""
    source = REPO / CLIENT_PACKAGE
    if not (source / "__init__.py").is_file():
        raise InstallError(f"missing client package {source}; is the checkout complete?")
    for name in [CLIENT_PACKAGE, *STALE_PACKAGES]:
        shutil.rmtree(vendor / name, ignore_errors=True)
    (vendor / CLIENT_PACKAGE).mkdir(parents=True)
    for module in sorted(source.glob("*.py")):
        shutil.copy2(module, vendor / CLIENT_PACKAGE / module.name)


def known_styles() -> list[list[str]] | None:
    """(name, title) of the installed styles, when this Python has the package (optional)."""
    try:
        from nst_core.styles import list_styles
    except ImportError:
        return None
    return [[info.name, info.title or info.name] for info in list_styles()]


def install(target: Target, daemon_command: list[str] | None, endpoint: str | None) -> None:
    if not target.python_version:
        raise InstallError(
            f"cannot tell which Python {target.label} uses; pass --python-version X.Y"
        )
    folder = target.plugins_dir / PLUGIN_NAME
    print(f"==> {target.label}: installing the plug-in into {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    for name in PLUGIN_FILES:
        shutil.copy(HERE / name, folder / name)  # a new mtime: GIMP registers it again
    (folder / "neural_style.py").chmod(0o755)
    shutil.copytree(HERE / HELP_DIR, folder / HELP_DIR, dirs_exist_ok=True)
    vendor_client(folder / "vendor")
    vendor_packages(folder / "vendor", target.python_version)
    config = {"endpoint": endpoint, "daemon_command": daemon_command}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"    wrote {folder / 'config.json'}")
    styles = known_styles()
    if styles is not None:  # GIMP lists these until the plug-in has talked to the daemon
        (folder / "styles-cache.json").write_text(json.dumps(styles) + "\n")
    print("    restart GIMP; the filters are under Filters > Neural Style")


def uninstall(target: Target) -> None:
    folder = target.plugins_dir / PLUGIN_NAME
    if folder.exists():
        shutil.rmtree(folder)
        print(f"==> {target.label}: removed {folder}")
    else:
        print(f"==> {target.label}: no plug-in in {folder}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Install the Neural Style plug-in into GIMP 3.")
    parser.add_argument(
        "--daemon-command",
        metavar="NST",
        help="path of the `nst` program; the plug-in runs `NST daemon start` "
        "when no daemon answers",
    )
    parser.add_argument("--endpoint", help="daemon endpoint (default: the client's default)")
    parser.add_argument(
        "--plugins-dir",
        type=Path,
        help="install into this GIMP plug-ins folder instead of the detected ones",
    )
    parser.add_argument(
        "--python-version",
        metavar="X.Y",
        help="Python version GIMP runs plug-ins with (detected when omitted)",
    )
    parser.add_argument("--uninstall", action="store_true", help="remove the plug-in")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plugins_dir:
        version = args.python_version or (None if args.uninstall else system_gimp_python())
        targets = [Target("GIMP", args.plugins_dir, version)]
    else:
        targets = find_targets(with_python=not args.uninstall and not args.python_version)
        for target in targets:
            target.python_version = args.python_version or target.python_version
    if not targets:
        print("==> no GIMP 3 found (neither system nor Flatpak); plug-in not installed")
        return 0
    daemon_command = None
    if args.daemon_command:
        daemon_command = [str(Path(args.daemon_command).absolute()), "daemon", "start"]
    failed = False
    for target in targets:
        try:
            uninstall(target) if args.uninstall else install(target, daemon_command, args.endpoint)
        except (InstallError, OSError) as exc:
            print(f"install_plugin: {target.label}: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
