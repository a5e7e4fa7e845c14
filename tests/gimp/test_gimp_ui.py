"""The plug-in in GIMP's user interface (GIMP on an Xvfb display, driven with xdotool):
undo, and the dialog with and without a daemon.

Set ``NST_GIMP_SCREENSHOTS=DIR`` to keep the screenshots of the dialogs there
(``docs/gimp-dialog.png`` is ``fast-style.png`` from such a run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import STYLE_NAME, GimpChroot
from .pixels import write_inputs
from daemon_helpers import free_endpoint

pytestmark = pytest.mark.gimp

FAST = "python-fu-neural-style-fast"

UNDO_SCRIPT = f"""
img = new_image(64, 48)
layer = add_layer(img, "bg", "R'G'B' u8", 64, 48, read_input("rgb.raw"))
Gimp.Display.new(img)
status, error, new = call("{FAST}", img, [layer], style="{STYLE_NAME}")
Gimp.displays_flush()
record("stylized", {{"status": status, "error": error, "tree": tree(img)}})
wait_file("undone")
record("undone", {{"tree": tree(img)}})
"""

STATUS_SCRIPT = """
proc = PDB.lookup_procedure("python-fu-neural-style-status")
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
record("opening", True)
result = proc.run(config)
record("closed", {"status": result.index(0).value_nick})
"""

DIALOG_SCRIPT = """
img = new_image(320, 200)
layer = add_layer(img, "Background", "R'G'B' u8", 64, 48, read_input("rgb.raw"))
img.resize_to_layers()
Gimp.Display.new(img)
Gimp.displays_flush()
proc = PDB.lookup_procedure("%s")
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
config.set_property("image", img)
config.set_core_object_array("drawables", [layer])
record("opening", True)
result = proc.run(config)
record("closed", {"status": result.index(0).value_nick, "tree": tree(img)})
"""


def finish(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def find_window(gimp_chroot: GimpChroot, display: str, title: str) -> str:
    found = gimp_chroot.xdotool(display, "search", "--sync", "--onlyvisible", "--name", title)
    return found.splitlines()[-1]


def test_undo_removes_the_new_layer_in_one_step(gimp_chroot: GimpChroot, installed_plugin: Path,
                                                daemon: str, display: str, workdir: str):
    write_inputs(gimp_chroot.host_path(workdir))
    proc = gimp_chroot.start_gui(UNDO_SCRIPT, workdir, daemon, display)
    try:
        stylized = gimp_chroot.wait_for(workdir, "stylized", proc)
        assert stylized["status"] == "success", stylized["error"]
        assert len(stylized["tree"]) == 2
        window = find_window(gimp_chroot, display, r"\[Untitled\]")
        gimp_chroot.xdotool(display, "windowfocus", "--sync", window, "key", "ctrl+z")
        (gimp_chroot.host_path(workdir) / "undone").touch()
        undone = gimp_chroot.wait_for(workdir, "undone", proc)
    finally:
        finish(proc)
    assert undone["tree"] == ["bg"]


def keep_screenshot(shot: Path, name: str) -> None:
    if os.environ.get("NST_GIMP_SCREENSHOTS"):
        shutil.copyfile(shot, Path(os.environ["NST_GIMP_SCREENSHOTS"]) / name)


def open_and_cancel_dialog(gimp_chroot: GimpChroot, endpoint: str, display: str, workdir: str,
                           script: str = DIALOG_SCRIPT % FAST,
                           title: str = "Neural Style: Fast Style",
                           ) -> tuple[dict, Path]:
    """Open a dialog, screenshot it, press Escape."""
    folder = gimp_chroot.host_path(workdir)
    write_inputs(folder)
    proc = gimp_chroot.start_gui(script, workdir, endpoint, display)
    try:
        gimp_chroot.wait_for(workdir, "opening", proc)
        window = find_window(gimp_chroot, display, title)
        gimp_chroot.screenshot(display, window, f"{workdir}/dialog.png")
        gimp_chroot.xdotool(display, "windowfocus", "--sync", window, "key", "Escape")
        closed = gimp_chroot.wait_for(workdir, "closed", proc)
    finally:
        finish(proc)
    shot = folder / "dialog.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return closed, shot


def test_dialog_opens_and_cancels(gimp_chroot: GimpChroot, installed_plugin: Path, daemon: str,
                                  display: str, workdir: str):
    closed, shot = open_and_cancel_dialog(gimp_chroot, daemon, display, workdir)
    assert closed == {"status": "cancel", "tree": ["Background"]}
    keep_screenshot(shot, "fast-style.png")


def test_dialog_opens_when_the_daemon_is_down(gimp_chroot: GimpChroot, installed_plugin: Path,
                                              display: str, workdir: str):
    down = free_endpoint()
    closed, shot = open_and_cancel_dialog(gimp_chroot, down, display, workdir)
    assert closed == {"status": "cancel", "tree": ["Background"]}
    keep_screenshot(shot, "fast-style-no-daemon.png")


def test_paint_like_dialog(gimp_chroot: GimpChroot, installed_plugin: Path, daemon: str,
                           display: str, workdir: str):
    script = DIALOG_SCRIPT % "python-fu-neural-style-paint-like"
    closed, shot = open_and_cancel_dialog(gimp_chroot, daemon, display, workdir, script,
                                          "Neural Style: Paint Like")
    assert closed == {"status": "cancel", "tree": ["Background"]}
    keep_screenshot(shot, "paint-like.png")


def test_daemon_status_dialog(gimp_chroot: GimpChroot, installed_plugin: Path, daemon: str,
                              display: str, workdir: str):
    closed, shot = open_and_cancel_dialog(gimp_chroot, daemon, display, workdir,
                                          STATUS_SCRIPT, "Neural Style daemon")
    assert closed == {"status": "success"}
    keep_screenshot(shot, "daemon-status.png")
