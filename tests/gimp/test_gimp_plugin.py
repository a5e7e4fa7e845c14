"""The plug-in in real GIMP 3 (headless), against a real daemon.

One GIMP run does all the cases that need the daemon (each GIMP start costs seconds); the
tests then check what it recorded. Expected pixels come from the same daemon, asked
directly with the client for the region the plug-in should have sent: so these tests
check the plug-in's reading, placement, masking and layer handling, not the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

from nst_client.client import Client
from nst_client.errors import DaemonError
from nst_client.protocol import Image

from .conftest import (
    CHROOT_HOME,
    PRELUDE,
    REPO,
    STYLE_NAME,
    STYLE_TITLE,
    VGG_WEIGHTS,
    GimpChroot,
    descendants,
)
from .pixels import input_pixels, pattern, write_inputs
from daemon_helpers import free_endpoint

pytestmark = pytest.mark.gimp

FAST = "python-fu-neural-style-fast"
PAINT_LIKE = "python-fu-neural-style-paint-like"
LAYER_NAME = STYLE_TITLE  # plain: the style's title
PLUGIN_PARAMS = {"strength": 1.0, "max_size": 1600}  # the Fast Style defaults

# Cases, as Python-Fu run inside GIMP (after gimp_prelude.py).
MAIN_SCRIPT = f"""
def case(name, image, layer, fmt, drawables=None):
    status, error, new = call("{FAST}", image, drawables or [layer], style="{STYLE_NAME}")
    info = {{"status": status, "error": error, "tree": tree(image),
            "source": describe(layer, fmt, name + ".source")}}
    if new is not None:
        info["new"] = describe(new, fmt, name + ".new")
    if not Gimp.Selection.is_empty(image):
        info["selection"] = selection_info(image, name)
    record(name, info)

# Filters > Repeat after a Paint Like dialog was cancelled: the last values have no painting
img = new_image(48, 32)
layer = add_layer(img, "photo", "R'G'B' u8", 48, 32, read_input("small.raw"))
repeat = run_procedure("{PAINT_LIKE}", Gimp.RunMode.WITH_LAST_VALS, img, [layer])
record("repeat", {{"status": repeat.index(0).value_nick, "error": str(repeat.index(1)),
                  "tree": tree(img)}})

rgb = read_input("rgb.raw")
img = new_image(64, 48)
case("whole", img, add_layer(img, "bg", "R'G'B' u8", 64, 48, rgb), "R'G'B' u8")

# after a selection run GIMP selects the new layer's mask: stylising it means its layer
big = read_input("big.raw")
img = new_image(160, 120)
layer = add_layer(img, "bg", "R'G'B' u8", 160, 120, big)
img.select_rectangle(Gimp.ChannelOps.REPLACE, 60, 40, 30, 20)
status, error, first = call("{FAST}", img, [layer], style="{STYLE_NAME}")
status, error, again = call("{FAST}", img, [first.get_mask()], style="{STYLE_NAME}")
record("mask_selected", {{"status": status, "error": error, "tree": tree(img)}})

# Select All: the whole layer, and no mask that would change nothing
img = new_image(64, 48)
layer = add_layer(img, "bg", "R'G'B' u8", 64, 48, rgb)
Gimp.Selection.all(img)
case("select_all", img, layer, "R'G'B' u8")

# a result placed right above its source can be hidden: "top" puts it above everything
img = new_image(64, 48)
layer = add_layer(img, "bottom", "R'G'B' u8", 64, 48, rgb)
add_layer(img, "cover", "R'G'B' u8", 64, 48, rgb)
status, error, new = call("{FAST}", img, [layer], style="{STYLE_NAME}", placement="top")
record("on_top", {{"status": status, "error": error, "tree": tree(img)}})

big = read_input("big.raw")
img = new_image(160, 120)
layer = add_layer(img, "bg", "R'G'B' u8", 160, 120, big)
img.select_rectangle(Gimp.ChannelOps.REPLACE, 60, 40, 30, 20)
case("rect", img, layer, "R'G'B' u8")

img = new_image(160, 120)
layer = add_layer(img, "bg", "R'G'B' u8", 160, 120, big)
Gimp.context_set_feather(True)
Gimp.context_set_feather_radius(12.0, 12.0)
img.select_ellipse(Gimp.ChannelOps.REPLACE, 50, 30, 60, 50)
Gimp.context_set_feather(False)
case("feather", img, layer, "R'G'B' u8")

img = new_image(120, 90)
add_layer(img, "bottom", "R'G'B' u8", 120, 90, read_input("canvas.raw"))
layer = add_layer(img, "moved", "R'G'B' u8", 64, 48, rgb, x=30, y=20)
case("offset", img, layer, "R'G'B' u8")

img = new_image(64, 48, gray=True)
case("gray", img, add_layer(img, "gray", "Y' u8", 64, 48, read_input("gray.raw")), "Y' u8")

img = new_image(64, 48)
case("alpha", img, add_layer(img, "see-through", "R'G'B'A u8", 64, 48,
                             read_input("rgba.raw")), "R'G'B'A u8")

img = new_image(64, 48)
add_layer(img, "bottom", "R'G'B' u8", 64, 48, rgb)
group = Gimp.GroupLayer.new(img, "group")
img.insert_layer(group, None, 0)
add_layer(img, "top in group", "R'G'B' u8", 64, 48, rgb, parent=group, position=0)
layer = add_layer(img, "in group", "R'G'B' u8", 64, 48, rgb, parent=group, position=1)
case("group", img, layer, "R'G'B' u8")

img = new_image(64, 48)
first = add_layer(img, "first", "R'G'B' u8", 64, 48, rgb)
second = add_layer(img, "second", "R'G'B' u8", 64, 48, rgb)
case("two", img, first, "R'G'B' u8", drawables=[first, second])

img = new_image(64, 48)
layer = add_layer(img, "bg", "R'G'B' u8", 64, 48, rgb)
img.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE,
                    16, False, False, "")
status, error, new = call("{FAST}", img, [layer], style="{STYLE_NAME}")
record("indexed", {{"status": status, "error": error, "tree": tree(img)}})

img = new_image(200, 150)
layer = add_layer(img, "big", "R'G'B' u8", 200, 150, read_input("huge.raw"))
status, error, new = call("{FAST}", img, [layer], style="{STYLE_NAME}")
record("too_large", {{"status": status, "error": error, "tree": tree(img)}})

img = new_image(64, 48)
layer = add_layer(img, "deep", "R'G'B' u8", 64, 48, rgb)
img.convert_precision(Gimp.Precision.U16_NON_LINEAR)
case("u16", img, layer, "R'G'B' u16")

style_img = new_image(40, 40)
style_layer = add_layer(style_img, "painting", "R'G'B' u8", 40, 40, read_input("style.raw"))
img = new_image(48, 32)
layer = add_layer(img, "photo", "R'G'B' u8", 48, 32, read_input("small.raw"))
gatys = dict(quality="draft", iterations=3, max_size=48)
status, error, new = call("{PAINT_LIKE}", img, [layer], style_layer=style_layer, **gatys)
record("paint_layer", {{"status": status, "error": error, "tree": tree(img),
                       "new": describe(new, "R'G'B' u8", "paint_layer.new") if new else None}})
status, error, new = call("{PAINT_LIKE}", img, [layer],
                          style_file=Gio.File.new_for_path(OUT + "/style.png"), **gatys)
record("paint_file", {{"status": status, "error": error, "tree": tree(img)}})
status, error, new = call("{PAINT_LIKE}", img, [layer], style_layer=style_layer,
                          init_style="{STYLE_NAME}", **gatys)
record("paint_refine", {{"status": status, "error": error, "tree": tree(img)}})
status, error, new = call("{PAINT_LIKE}", img, [layer], **gatys)
record("paint_nothing", {{"status": status, "error": error}})

status, error, style = call("python-fu-neural-style-train", style_img, [style_layer],
                            name="trained-in-gimp", steps=2, image_size=32,
                            dataset=Gio.File.new_for_path(read_input("dataset.txt").decode()))
record("train", {{"status": status, "error": error, "style": style}})

status, error, text = call("python-fu-neural-style-status", None, [], action="show")
record("status", {{"status": status, "error": error, "json": text}})
"""

DOWN_SCRIPT = f"""
img = new_image(64, 48)
layer = add_layer(img, "bg", "R'G'B' u8", 64, 48, read_input("rgb.raw"))
status, error, new = call("{FAST}", img, [layer], style="{STYLE_NAME}")
record("down", {{"status": status, "error": error, "tree": tree(img),
                "source": describe(layer, "R'G'B' u8", "down.source")}})
"""


def crop(data: bytes, width: int, channels: int, x: int, y: int, w: int, h: int) -> bytes:
    row = width * channels
    return b"".join(
        data[(y + j) * row + x * channels : (y + j) * row + (x + w) * channels] for j in range(h)
    )


def stylized(endpoint: str, width: int, height: int, channels: int, data: bytes) -> bytes:
    with Client(endpoint, autostart=False, timeout=60) as client:
        result = client.stylize(
            Image(width, height, channels, data), style=STYLE_NAME, params=PLUGIN_PARAMS
        )
    return result.image.data


def max_difference(a: bytes, b: bytes) -> int:
    assert len(a) == len(b)
    return max((abs(p - q) for p, q in zip(a, b, strict=True)), default=0)


@pytest.fixture(scope="module")
def main_run(
    gimp_chroot: GimpChroot,
    installed_plugin: Path,
    daemon: str,
    tmp_path_factory: pytest.TempPathFactory,
):
    inside = f"/tmp/nst-test-main-{tmp_path_factory.getbasetemp().name}"
    folder = gimp_chroot.host_path(inside)
    folder.mkdir(parents=True, exist_ok=True)
    write_inputs(folder)
    last = gimp_chroot.host_path(
        f"{CHROOT_HOME}/.config/GIMP/3.0/plug-in-settings/GimpProcedureConfigRun-{PAINT_LIKE}.last"
    )
    last.unlink(missing_ok=True)  # as after a cancelled first dialog
    # training photos, read by the daemon outside the chroot
    photos = tmp_path_factory.mktemp("photos")
    for seed in range(4):
        w, h = 48, 40
        PILImage.frombytes("RGB", (w, h), pattern(w, h, 3, seed)).save(photos / f"{seed}.png")
    (folder / "dataset.txt").write_text(str(photos))
    gimp_chroot.host_path(str(photos)).mkdir(parents=True, exist_ok=True)  # GIMP checks it exists
    run = gimp_chroot.run(MAIN_SCRIPT, inside, daemon)
    assert "status" in run.results, f"the batch script did not finish:\n{run.output[-5000:]}"
    yield run, folder
    shutil.rmtree(folder, ignore_errors=True)


def result(main_run, case: str) -> tuple[dict, Path]:
    run, folder = main_run
    assert case in run.results, run.output[-4000:]
    info = run.results[case]
    assert info["status"] == "success", info["error"]
    return info, folder


def check_new_layer(
    info: dict,
    folder: Path,
    endpoint: str,
    source_name: str,
    channels: int,
    region: tuple[int, int, int, int],
) -> None:
    """New layer: above the source, region-sized at the right offset, daemon's pixels."""
    source, new = info["source"], info["new"]
    x, y, w, h = region
    assert new["name"] == LAYER_NAME
    assert new["parent"] == source["parent"]
    assert new["position"] == source["position"] - 1
    assert (new["x"], new["y"], new["width"], new["height"]) == (
        source["x"] + x,
        source["y"] + y,
        w,
        h,
    )
    sent = crop(input_pixels(source_name), source["width"], channels, x, y, w, h)
    expected = stylized(endpoint, w, h, channels, sent)
    got = (folder / new["pixels"]).read_bytes()
    assert max_difference(got, expected) <= 1
    assert max_difference(got, sent) > 10  # something was painted
    # the source is never modified
    assert (folder / source["pixels"]).read_bytes() == input_pixels(source_name)


def test_whole_layer(main_run, daemon):
    info, folder = result(main_run, "whole")
    assert info["tree"] == [LAYER_NAME, "bg"]
    check_new_layer(info, folder, daemon, "rgb.raw", 3, (0, 0, 64, 48))
    assert info["new"]["mask"] is None


def test_rectangular_selection(main_run, daemon):
    info, folder = result(main_run, "rect")
    # selection 60,40 30x20 plus a 32 px context margin, clipped to the 160x120 layer
    check_new_layer(info, folder, daemon, "big.raw", 3, (28, 8, 94, 84))
    mask = (folder / info["new"]["mask"]).read_bytes()
    for j in range(84):
        for i in range(94):
            inside = 60 <= 28 + i < 90 and 40 <= 8 + j < 60
            assert mask[j * 94 + i] == (255 if inside else 0), (i, j)


def test_feathered_selection(main_run, daemon):
    info, folder = result(main_run, "feather")
    sel = info["selection"]
    margin = max(32, round(0.1 * max(sel["width"], sel["height"])))
    x1, y1 = max(sel["x"] - margin, 0), max(sel["y"] - margin, 0)
    x2 = min(sel["x"] + sel["width"] + margin, 160)
    y2 = min(sel["y"] + sel["height"] + margin, 120)
    region = (x1, y1, x2 - x1, y2 - y1)
    check_new_layer(info, folder, daemon, "big.raw", 3, region)
    mask = (folder / info["new"]["mask"]).read_bytes()
    selection = crop((folder / sel["pixels"]).read_bytes(), 160, 1, *region)
    assert mask == selection  # the mask is the selection, soft edges included
    assert any(0 < v < 255 for v in mask)
    assert mask[0] == 0  # pixels outside the selection stay the source's


def test_layer_with_offset(main_run, daemon):
    info, folder = result(main_run, "offset")
    assert info["tree"] == [LAYER_NAME, "moved", "bottom"]
    assert (info["source"]["x"], info["source"]["y"]) == (30, 20)
    check_new_layer(info, folder, daemon, "rgb.raw", 3, (0, 0, 64, 48))


def test_grayscale_image(main_run, daemon):
    info, folder = result(main_run, "gray")
    check_new_layer(info, folder, daemon, "gray.raw", 1, (0, 0, 64, 48))


def test_layer_with_alpha(main_run, daemon):
    info, folder = result(main_run, "alpha")
    assert info["new"]["alpha"]
    check_new_layer(info, folder, daemon, "rgba.raw", 4, (0, 0, 64, 48))
    got = (folder / info["new"]["pixels"]).read_bytes()
    assert got[3::4] == input_pixels("rgba.raw")[3::4]  # alpha kept


def test_layer_inside_group(main_run, daemon):
    info, folder = result(main_run, "group")
    assert info["tree"] == [["group", ["top in group", LAYER_NAME, "in group"]], "bottom"]
    assert info["new"]["parent"] == "group"
    check_new_layer(info, folder, daemon, "rgb.raw", 3, (0, 0, 64, 48))


def test_each_selected_layer(main_run):
    info, _ = result(main_run, "two")
    # GIMP keeps layer names unique: the second result is "... #1"
    assert [name.split(" #")[0] for name in info["tree"]] == [
        LAYER_NAME,
        "second",
        LAYER_NAME,
        "first",
    ]


def test_indexed_image_is_refused(main_run):
    run, _ = main_run
    info = run.results["indexed"]
    assert info["status"] == "execution-error"
    assert "indexed" in info["error"] and "RGB" in info["error"]
    assert info["tree"] == ["bg"]


def test_daemon_status_non_interactive(main_run):
    run, _ = main_run
    info = run.results["status"]
    assert info["status"] == "success", info["error"]
    assert isinstance(json.loads(info["json"]), dict)


def test_daemon_down(gimp_chroot: GimpChroot, installed_plugin: Path, workdir: str):
    folder = gimp_chroot.host_path(workdir)
    write_inputs(folder)
    run = gimp_chroot.run(DOWN_SCRIPT, workdir, free_endpoint())
    info = run.results.get("down")
    assert info, run.output[-4000:]
    assert info["status"] == "execution-error"
    assert "not running" in info["error"]
    assert info["tree"] == ["bg"]  # nothing half-written
    assert (folder / info["source"]["pixels"]).read_bytes() == input_pixels("rgb.raw")


def test_image_too_large(main_run):
    run, _ = main_run
    info = run.results["too_large"]
    assert info["status"] == "execution-error"
    assert "too large" in info["error"]
    assert info["tree"] == ["big"]


def test_16_bit_image(main_run, daemon):
    info, folder = result(main_run, "u16")
    new, source = info["new"], info["source"]
    sent = (folder / source["pixels"]).read_bytes()
    with Client(daemon, autostart=False, timeout=60) as client:
        expected = client.stylize(
            Image(64, 48, 3, sent, "u16"), style=STYLE_NAME, params=PLUGIN_PARAMS
        ).image
    assert expected.dtype == "u16"
    got = (folder / new["pixels"]).read_bytes()
    assert len(got) == 64 * 48 * 3 * 2
    assert max_difference(got[1::2], expected.data[1::2]) <= 1  # high bytes


def test_paint_like_with_a_layer_of_another_image(main_run):
    if not VGG_WEIGHTS.is_file():
        pytest.skip(f"VGG weights not available: {VGG_WEIGHTS}")
    info, folder = result(main_run, "paint_layer")
    assert info["tree"] == ["Paint Like: painting", "photo"]
    new = info["new"]
    assert (new["x"], new["y"], new["width"], new["height"]) == (0, 0, 48, 32)
    assert (folder / new["pixels"]).read_bytes() != input_pixels("small.raw")


def test_paint_like_with_a_style_file(main_run):
    if not VGG_WEIGHTS.is_file():
        pytest.skip(f"VGG weights not available: {VGG_WEIGHTS}")
    info, _ = result(main_run, "paint_file")
    # each result lands directly above its source
    assert info["tree"] == ["Paint Like: painting", "Paint Like: style", "photo"]


def test_train_style_from_layer(main_run, nst_home):
    if not VGG_WEIGHTS.is_file():
        pytest.skip(f"VGG weights not available: {VGG_WEIGHTS}")
    info, _ = result(main_run, "train")
    assert info["style"] == "trained-in-gimp"
    assert (nst_home / "styles" / "trained-in-gimp.safetensors").is_file()


def test_paint_like_refining_a_fast_style(main_run):
    if not VGG_WEIGHTS.is_file():
        pytest.skip(f"VGG weights not available: {VGG_WEIGHTS}")
    info, _ = result(main_run, "paint_refine")
    # the image has a "Paint Like: painting" already: GIMP numbers this one
    assert [name.split(" #")[0] for name in info["tree"][-2:]] == ["Paint Like: painting", "photo"]


def test_paint_like_needs_a_painting(main_run):
    run, _ = main_run
    info = run.results["paint_nothing"]
    assert info["status"] == "execution-error"
    assert "Choose the painting" in info["error"]


def test_repeat_after_a_cancelled_paint_like_says_what_is_missing(main_run):
    run, _ = main_run
    info = run.results["repeat"]
    assert info["status"] == "execution-error" and info["tree"] == ["photo"]
    assert "Choose the painting to imitate" in info["error"]


def test_selected_layer_mask_stylises_its_layer(main_run):
    info, _ = result(main_run, "mask_selected")
    # above the mask's layer (GIMP numbers the second layer of the same name)
    assert [name.split(" #")[0] for name in info["tree"]] == [LAYER_NAME, LAYER_NAME, "bg"]


def test_select_all_adds_no_mask(main_run, daemon):
    info, folder = result(main_run, "select_all")
    assert info["new"]["mask"] is None
    check_new_layer(info, folder, daemon, "rgb.raw", 3, (0, 0, 64, 48))


def test_result_on_top_of_all_layers(main_run):
    info, _ = result(main_run, "on_top")
    assert info["tree"] == [LAYER_NAME, "cover", "bottom"]


CANCEL_SCRIPT = f"""
img = new_image(96, 64)
layer = add_layer(img, "photo", "R'G'B' u8", 48, 32, read_input("small.raw"))
style_img = new_image(40, 40)
style_layer = add_layer(style_img, "painting", "R'G'B' u8", 40, 40, read_input("style.raw"))
record("starting", True)
status, error, new = call("{PAINT_LIKE}", img, [layer], style_layer=style_layer,
                          iterations=5000, max_size=96)
record("ended", {{"status": status, "error": error, "tree": tree(img)}})
"""


def running_jobs(endpoint: str) -> tuple:
    with Client(endpoint, autostart=False, timeout=10) as client:
        return client.status().running


def test_killed_plugin_gets_its_job_cancelled(
    gimp_chroot: GimpChroot, installed_plugin: Path, daemon: str, workdir: str
):
    """GIMP's progress-bar Cancel kills the plug-in process; the daemon then cancels the job
    of the client that went silent."""
    if not VGG_WEIGHTS.is_file():
        pytest.skip(f"VGG weights not available: {VGG_WEIGHTS}")
    write_inputs(gimp_chroot.host_path(workdir))
    proc = subprocess.Popen(
        gimp_chroot.gimp(workdir, daemon),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.stdin.write(PRELUDE.read_text() + "\n" + CANCEL_SCRIPT)
    proc.stdin.close()
    try:
        gimp_chroot.wait_for(workdir, "starting", proc)
        deadline = time.monotonic() + 120
        while not running_jobs(daemon):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.3)
        plugin = [pid for pid, cmd in descendants(proc.pid) if "neural_style.py" in cmd]
        assert len(plugin) == 1, descendants(proc.pid)
        os.kill(plugin[0], signal.SIGKILL)  # what GIMP does on Cancel
        killed = time.monotonic()
        while running_jobs(daemon):
            assert time.monotonic() - killed < 15, "the daemon kept running the job"
            time.sleep(0.3)
        ended = gimp_chroot.wait_for(workdir, "ended", proc)
    finally:
        if proc.poll() is None:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert ended["status"] != "success"
    assert ended["tree"] == ["photo"]


AUTOSTART_SCRIPT = f"""
img = new_image(64, 48)
layer = add_layer(img, "bg", "R'G'B' u8", 64, 48, read_input("rgb.raw"))
status, error, new = call("{FAST}", img, [layer], style=read_input("style.txt").decode())
record("autostart", {{"status": status, "error": error, "tree": tree(img)}})
status, error, text = call("python-fu-neural-style-status", None, [], action="stop")
record("stop", {{"status": status, "error": error, "json": text}})
status, error, text = call("python-fu-neural-style-status", None, [], action="show")
record("after_stop", {{"status": status, "error": error, "json": text}})
"""


def test_plugin_starts_the_daemon_and_stops_it(
    gimp_chroot: GimpChroot, installed_plugin: Path, host_python_in_chroot: None, workdir: str
):
    """No daemon running: the plug-in starts one with the installed ``daemon_command``
    (``nst daemon start``), uses it, and Daemon Status stops it."""
    bundled = sorted((REPO / "nst_core" / "bundled_styles").glob("*.safetensors"))
    if not bundled:
        pytest.skip("no bundled style to stylize with")
    folder = gimp_chroot.host_path(workdir)
    write_inputs(folder)
    (folder / "style.txt").write_text(bundled[0].stem)
    endpoint = free_endpoint()
    try:
        run = gimp_chroot.run(AUTOSTART_SCRIPT, workdir, endpoint)
    finally:
        with contextlib.suppress(DaemonError), Client(endpoint, autostart=False) as client:
            client.shutdown()  # in case the script did not get to stop it
    assert "after_stop" in run.results, run.output[-4000:]
    started = run.results["autostart"]
    assert started["status"] == "success", started["error"]
    assert len(started["tree"]) == 2
    assert run.results["stop"]["status"] == "success"
    assert run.results["after_stop"]["json"] == "null"  # not running any more


SCRIPT_FU = f"""
(let* ((img (car (gimp-image-new 40 30 RGB)))
       (layer (car (gimp-layer-new img "bg" 40 30 RGB-IMAGE 100 LAYER-MODE-NORMAL))))
  (gimp-image-insert-layer img layer 0 0)
  (python-fu-neural-style-fast RUN-NONINTERACTIVE img (vector layer) "{STYLE_NAME}" 1.0 "none" 0)
  (gimp-message (string-append "LAYERS " (number->string
                                          (vector-length (car (gimp-image-get-layers img)))))))
"""


def test_script_fu_call(gimp_chroot: GimpChroot, installed_plugin: Path, daemon: str, workdir: str):
    run = gimp_chroot.run(SCRIPT_FU, workdir, daemon, scheme=True)
    assert "LAYERS 2" in run.output, run.output[-4000:]


# Animation frames: a still picture with a square moving across its top, as the layers of
# one image (GIMP's convention: the bottom layer is the first frame), at an offset.
FRAMES = 5
FRAME_W, FRAME_H, FRAME_X, FRAME_Y = 80, 60, 10, 6
STATIC_ROWS = range(36, FRAME_H)  # well below the moving square (rows 6..19)
GROUP_TITLE = STYLE_TITLE


def frame_name(index: int) -> str:
    return f"Frame {index + 1} (100ms)"


def frame_pixels(index: int) -> bytes:
    data = bytearray(pattern(FRAME_W, FRAME_H, 3, 7))
    for y in range(6, 20):
        for x in range(6 + 4 * index, 20 + 4 * index):
            data[(y * FRAME_W + x) * 3 : (y * FRAME_W + x) * 3 + 3] = b"\xf0\xf0\x20"
    return bytes(data)


FRAMES_SCRIPT = f"""
def animation(frames=None):
    img = new_image({FRAME_W + 20}, {FRAME_H + 10})
    layers = [add_layer(img, "Frame %d (100ms)" % (i + 1), "R'G'B' u8", {FRAME_W}, {FRAME_H},
                        read_input("frame%d.raw" % i), x={FRAME_X}, y={FRAME_Y})
              for i in range(frames or {FRAMES})]
    return img, layers

def results(layers, name):
    return [describe(layer, "R'G'B' u8", "%s%d" % (name, i)) for i, layer in enumerate(layers)]

# frame mode: the whole image as one animation, whatever layer is selected
img, layers = animation()
status, error, new = call("{FAST}", img, [layers[2]], style="{STYLE_NAME}",
                          animation_frames=True)
group = img.get_layers()[0]
record("frames", {{"status": status, "error": error, "tree": tree(img),
                  "group": group.get_name(), "returned": new.get_name() if new else None,
                  "results": results(list(reversed(group.get_children())), "frames")
                  if group.is_group() else None}})

# frame by frame: each layer stylised alone
img, layers = animation()
status, error, new = call("{FAST}", img, layers, style="{STYLE_NAME}")
record("alone", {{"status": status, "error": error, "tree": tree(img),
                 "results": results([l for l in reversed(img.get_layers())
                                     if l not in layers], "alone")}})

# frames that differ in size are refused before any work
img, layers = animation(3)
layers[1].resize(40, 30, 0, 0)
status, error, new = call("{FAST}", img, [layers[0]], style="{STYLE_NAME}",
                          animation_frames=True)
record("sizes", {{"status": status, "error": error, "tree": tree(img)}})

# a layer group is not a frame
img, layers = animation(2)
img.insert_layer(Gimp.GroupLayer.new(img, "group"), None, 0)
status, error, new = call("{FAST}", img, [layers[0]], style="{STYLE_NAME}",
                          animation_frames=True)
record("group", {{"status": status, "error": error, "tree": tree(img)}})
"""


def mean_abs_difference(a: bytes, b: bytes) -> float:
    return sum(abs(p - q) for p, q in zip(a, b, strict=True)) / len(a)


def static_part(data: bytes) -> bytes:
    row = FRAME_W * 3
    return data[STATIC_ROWS.start * row : STATIC_ROWS.stop * row]


def flicker(folder: Path, layers: list[dict]) -> float:
    """Mean absolute difference between consecutive results on the still part."""
    frames = [static_part((folder / layer["pixels"]).read_bytes()) for layer in layers]
    pairs = list(zip(frames, frames[1:], strict=False))
    return sum(mean_abs_difference(a, b) for a, b in pairs) / len(pairs)


@pytest.fixture(scope="module")
def frames_run(
    gimp_chroot: GimpChroot,
    installed_plugin: Path,
    daemon: str,
    tmp_path_factory: pytest.TempPathFactory,
):
    inside = f"/tmp/nst-test-frames-{tmp_path_factory.getbasetemp().name}"
    folder = gimp_chroot.host_path(inside)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(FRAMES):
        (folder / f"frame{index}.raw").write_bytes(frame_pixels(index))
    run = gimp_chroot.run(FRAMES_SCRIPT, inside, daemon)
    assert "group" in run.results, f"the batch script did not finish:\n{run.output[-5000:]}"
    yield run, folder, gimp_chroot.plugin_log(inside)
    shutil.rmtree(folder, ignore_errors=True)


def test_animation_frames_one_result_per_frame(frames_run):
    run, folder, _ = frames_run
    info = run.results["frames"]
    assert info["status"] == "success", info["error"]
    frames = [frame_name(i) for i in reversed(range(FRAMES))]  # top first
    # one new group on top, one layer per frame in the frames' order, the frames untouched
    assert info["tree"] == [[GROUP_TITLE, [f"{name} {STYLE_TITLE}" for name in frames]], *frames]
    assert info["group"] == GROUP_TITLE
    assert info["returned"] == f"{frame_name(FRAMES - 1)} {STYLE_TITLE}"
    for index, layer in enumerate(info["results"]):
        assert layer["name"] == f"{frame_name(index)} {STYLE_TITLE}"
        assert len(layer["name"]) <= 32
        assert layer["parent"] == GROUP_TITLE
        assert (layer["x"], layer["y"], layer["width"], layer["height"]) == (
            FRAME_X,
            FRAME_Y,
            FRAME_W,
            FRAME_H,
        )
        assert (
            max_difference((folder / layer["pixels"]).read_bytes(), frame_pixels(index)) > 10
        )  # painted


def test_animation_frames_are_temporally_consistent(frames_run):
    """Consecutive results differ less on the still part than when each frame is stylised
    alone (each layer selected, frame mode off)."""
    run, folder, _ = frames_run
    alone = run.results["alone"]
    assert alone["status"] == "success", alone["error"]
    assert len(alone["results"]) == FRAMES
    consistent = flicker(folder, run.results["frames"]["results"])
    separate = flicker(folder, alone["results"])
    print(
        f"flicker on the still part: frames {consistent:.3f}, alone {separate:.3f}, "
        f"ratio {consistent / separate:.3f}"
    )
    assert separate > 0.5  # the moving square does change a frame stylised alone
    assert consistent < 0.5 * separate


def test_animation_frames_progress_counts_frames(frames_run):
    _, _, log = frames_run
    texts = [entry["text"] for entry in log if entry.get("event") == "progress"]
    for index in range(FRAMES):
        assert any(text.startswith(f"Frame {index + 1} of {FRAMES}") for text in texts), texts


def test_animation_frames_of_different_sizes_are_refused(frames_run):
    run, _, _ = frames_run
    info = run.results["sizes"]
    assert info["status"] == "execution-error"
    assert "same size and position" in info["error"] and "Frame 2" in info["error"]
    assert info["tree"] == [frame_name(i) for i in reversed(range(3))]  # nothing added


def test_animation_frames_refuse_a_layer_group(frames_run):
    run, _, _ = frames_run
    info = run.results["group"]
    assert info["status"] == "execution-error"
    assert "layer group" in info["error"]
    assert info["tree"] == [["group", []], frame_name(1), frame_name(0)]
