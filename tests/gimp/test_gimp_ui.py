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

from .conftest import CHROOT_HOME, STYLE_NAME, VGG_WEIGHTS, GimpChroot
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

PREVIEW_SCRIPT = """
img = new_image(64, 48)
layer = add_layer(img, "photo", "R'G'B' u8", 64, 48, read_input("rgb.raw"))
img.scale(128, 96)  # big enough that the run lasts a while
Gimp.Display.new(img)
Gimp.displays_flush()
proc = PDB.lookup_procedure("python-fu-neural-style-paint-like")
config = proc.create_config()
config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
config.set_property("image", img)
config.set_core_object_array("drawables", [layer])
config.set_property("style-file", Gio.File.new_for_path(OUT + "/style.png"))
config.set_property("quality", "draft")
config.set_property("iterations", 300)
record("opening", True)
result = proc.run(config)
failed = result.index(0) != Gimp.PDBStatusType.SUCCESS and result.length() > 1
error = str(result.index(1)) if failed else None
record("closed", {"status": result.index(0).value_nick, "error": error, "tree": tree(img)})
"""


def finish(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def find_window(gimp_chroot: GimpChroot, display: str, title: str, tries: int = 5) -> str:
    """The id of the visible window named ``title``, waiting for it to appear."""
    for _ in range(tries):  # a window closing during the search fails it (BadWindow): retry
        found = gimp_chroot.xdotool(display, "search", "--sync", "--onlyvisible", "--name",
                                    title, check=False)
        if found:
            return found.splitlines()[-1]
    raise AssertionError(f"no window named {title!r}")


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


def test_paint_like_shows_previews_and_the_result_lands(
        gimp_chroot: GimpChroot, installed_plugin: Path, daemon: str, display: str,
        workdir: str):
    if not VGG_WEIGHTS.is_file():
        pytest.skip(f"VGG weights not available: {VGG_WEIGHTS}")
    write_inputs(gimp_chroot.host_path(workdir))
    # An interactive run starts from the last values GIMP saved, not from the arguments.
    last = gimp_chroot.host_path(f"{CHROOT_HOME}/.config/GIMP/3.0/plug-in-settings/"
                                 "GimpProcedureConfigRun-python-fu-neural-style-paint-like.last")
    last.unlink(missing_ok=True)
    proc = gimp_chroot.start_gui(PREVIEW_SCRIPT, workdir, daemon, display)
    try:
        gimp_chroot.wait_for(workdir, "opening", proc)
        dialog = find_window(gimp_chroot, display, "Neural Style: Paint Like")
        gimp_chroot.xdotool(display, "windowfocus", "--sync", dialog, "key", "Return")
        try:
            preview = find_window(gimp_chroot, display, "Neural Style preview")
        except subprocess.TimeoutExpired:
            closed = gimp_chroot.wait_for(workdir, "closed", proc, timeout=300)
            pytest.fail(f"no preview window appeared; the run ended with {closed}")
        gimp_chroot.screenshot(display, preview, f"{workdir}/preview.png")
        closed = gimp_chroot.wait_for(workdir, "closed", proc, timeout=300)
        # the window closes with the job
        assert not gimp_chroot.xdotool(display, "search", "--onlyvisible", "--name",
                                       "Neural Style preview", check=False).strip()
    finally:
        finish(proc)
    assert closed == {"status": "success", "error": None, "tree": ["style (gatys)", "photo"]}
    shot = gimp_chroot.host_path(workdir) / "preview.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep_screenshot(shot, "paint-like-preview.png")
