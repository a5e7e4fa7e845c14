"""Bad input gets a stable error code and a plain message, never ``internal``.

Protocol refusals are checked on the parser the daemon and ``--local`` share, and the
ones that used to reach the engine through a real daemon process over a real socket.
"""

from __future__ import annotations

import shutil
import struct
import threading
import zlib
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest
import torch
from PIL import Image as PILImage

from nst_client import protocol
from nst_client.errors import ProtocolError
from nst_client.params import MIN_TILE_SIZE
from nst_client.protocol import Image, StylizeRequest, TrainRequest
from nst_core import fast, train
from nst_core.errors import ImageError, ModelFormatError, ParameterError
from nst_core.styles import import_style, new_style_path
from nst_core.transformer_net import load_style_model, save_style_model
from nst_daemon.imagefile import read_image

from daemon_helpers import DaemonProcess, dealer, random_net, save_random_style


def rgb(width: int = 4, height: int = 3) -> Image:
    return Image(width, height, 3, bytes(width * height * 3))


def refusal(fn, *args) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        fn(*args)
    assert info.value.code != "internal" and info.value.message
    return info.value


# --------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("dtype", [[], {}, ["u8"], 8, None])
def test_unhashable_or_odd_dtypes_are_bad_requests(dtype: object) -> None:
    wire = {**rgb().to_wire(), "dtype": dtype}
    assert refusal(Image.from_wire, wire).code == "bad_request"


@pytest.mark.parametrize(
    "field,value",
    [
        ("preserve_colors", []),
        ("preserve_colors", {}),
        ("quality", []),
        ("optimizer", {}),
        ("init", [1]),
    ],
)
def test_unhashable_enum_params_are_bad_parameters(field: str, value: object) -> None:
    msg = protocol.make_request(
        "stylize",
        image=rgb().to_wire(),
        method="gatys",
        style_image=rgb().to_wire(),
        params={field: value},
    )
    assert refusal(StylizeRequest.from_wire, msg).code == "bad_parameter"


def test_the_protocols_ranges_are_the_engines() -> None:
    assert MIN_TILE_SIZE == fast.MIN_TILE
    for tile in (64, 255):
        msg = protocol.make_request(
            "stylize", image=rgb().to_wire(), style="udnie", params={"tile_size": tile}
        )
        assert "256" in refusal(StylizeRequest.from_wire, msg).message
    for value in (0, 0.0):
        msg = protocol.make_request(
            "stylize",
            image=rgb().to_wire(),
            method="gatys",
            style_image=rgb().to_wire(),
            params={"style_strength": value},
        )
        assert refusal(StylizeRequest.from_wire, msg).code == "bad_parameter"
    msg = protocol.make_request(
        "stylize",
        image=rgb().to_wire(),
        method="gatys",
        style_image=[rgb().to_wire()] * 2,
        params={"style_weights": [0, 0]},
    )
    assert refusal(StylizeRequest.from_wire, msg).code == "bad_parameter"


@pytest.mark.parametrize("dataset", ["", ".", "photos", "./photos"])
def test_train_needs_an_absolute_dataset(dataset: str) -> None:
    msg = protocol.make_request(
        "train", name="mine", style_image=rgb().to_wire(), params={"dataset": dataset}
    )
    assert "absolute" in refusal(TrainRequest.from_wire, msg).message


@pytest.mark.parametrize("name", ["nl\n", "bad name", ".x", "x" * 65, "trailing."])
def test_train_names_follow_the_one_rule(name: str) -> None:
    msg = protocol.make_request(
        "train", name=name, style_image=rgb().to_wire(), params={"dataset": "/photos"}
    )
    assert refusal(TrainRequest.from_wire, msg).code == "bad_parameter"


# --------------------------------------------------------------------------- engine


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels (a decompression bomb once decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    PILImage.new("RGB", (64, 64), (10, 200, 30)).save(folder / "ok.png")
    return folder


def _config(photos: Path, tmp_path: Path) -> train.TrainConfig:
    style = tmp_path / "style.png"
    PILImage.new("RGB", (48, 48), (200, 20, 30)).save(style)
    return train.TrainConfig(
        style_images=[style],
        data_dir=photos,
        name="bomb-test",
        output=tmp_path / "out.safetensors",
        steps=1,
        batch_size=1,
        image_size=32,
        style_size=48,
        device="cpu",
    )


def test_a_decompression_bomb_in_the_training_folder_is_a_bad_image(photos, tmp_path):
    bomb = photos / "bomb.png"
    bomb.write_bytes(_png_header(40_000, 40_000))
    with pytest.raises(ImageError, match="bomb.png"):
        train._open_rgb(bomb)
    assert read_error_code(bomb) == "bad_image"


def read_error_code(path: Path) -> str:
    with pytest.raises(ImageError) as info:
        read_image(path)
    return info.value.code


@pytest.mark.parametrize("folder", ["", "photos", "."])
def test_training_refuses_an_empty_or_relative_folder(photos, tmp_path, folder) -> None:
    with pytest.raises(ParameterError, match="absolute"):
        train.train(replace(_config(photos, tmp_path), data_dir=Path(folder)))


def test_listing_training_photos_survives_folders_that_vanish(tmp_path: Path) -> None:
    """A dataset such as ``/`` walks folders (``/proc``) that disappear while it is listed."""
    root = tmp_path / "churn"
    (root / "keep").mkdir(parents=True)
    PILImage.new("RGB", (8, 8)).save(root / "keep" / "a.png")
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            deep = root / f"d{i % 40}" / "sub" / "deeper"
            deep.mkdir(parents=True, exist_ok=True)
            (deep / "x.jpg").write_bytes(b"x")
            shutil.rmtree(root / f"d{(i + 20) % 40}", ignore_errors=True)
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(200):
            assert root / "keep" / "a.png" in train._photo_files(root)
    finally:
        stop.set()
        worker.join()


@pytest.mark.parametrize(
    "state",
    [
        {"conv1.conv2d.weight": 3},
        {"conv1.conv2d.weight": {"nested": torch.zeros(1)}},
        {1: torch.zeros(1)},
        {"conv1.conv2d.weight": torch.zeros(2, dtype=torch.int64)},
    ],
)
def test_importing_a_state_dict_of_non_tensors_is_a_bad_model(tmp_path, state) -> None:
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(ModelFormatError, match="odd.pth"):
        load_style_model(path)


def test_a_model_with_non_finite_weights_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NST_HOME", str(tmp_path / "home"))
    net = random_net(0)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan"))
    torch.save(net.state_dict(), tmp_path / "nan.pth")
    with pytest.raises(ModelFormatError, match="NaN"):
        import_style(tmp_path / "nan.pth", "nan-style")
    assert not (tmp_path / "home" / "styles" / "nan-style.safetensors").exists()


def test_a_new_style_may_not_take_a_bundled_or_existing_name(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NST_HOME", str(tmp_path))
    with pytest.raises(ParameterError, match="bundled"):
        new_style_path("udnie")
    with pytest.raises(ParameterError, match="bundled"):
        new_style_path("udnie", overwrite=True)
    save_style_model(tmp_path / "styles" / "mine.safetensors", random_net(1), {})
    with pytest.raises(ParameterError, match="already exists"):
        new_style_path("mine")
    assert new_style_path("mine", overwrite=True) == tmp_path / "styles" / "mine.safetensors"
    with pytest.raises(ParameterError, match="style name"):
        new_style_path("nl\n")


def test_a_lab_tiff_is_converted_as_colour_not_alpha(tmp_path: Path) -> None:
    path = tmp_path / "lab.tif"
    PILImage.new("LAB", (6, 4), (128, 128, 128)).save(path)  # mid grey in CIELAB
    image = read_image(path)
    assert image.channels == 3
    assert set(image.data) == {119}  # sRGB grey of L* = 50, a* = b* = 0
    from nst_core.images import load_image

    rgb_tensor, alpha = load_image(path)
    assert alpha is None and rgb_tensor.shape == (1, 3, 4, 6)


# --------------------------------------------------------------------------- daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("bad-input-home")
    save_random_style(home, "mine")
    with DaemonProcess(home) as proc:
        yield proc


def raw(daemon: DaemonProcess, msg: dict) -> dict:
    sock = dealer(daemon.endpoint)
    try:
        sock.send(msgpack.packb(msg, use_bin_type=True))
        assert sock.poll(30_000), "no reply"
        return msgpack.unpackb(sock.recv(), raw=False)
    finally:
        sock.close()


def test_the_daemon_answers_bad_enum_types_with_codes(daemon: DaemonProcess) -> None:
    for dtype in ([], {}):
        image = {**rgb().to_wire(), "dtype": dtype}
        reply = raw(daemon, protocol.make_request("stylize", image=image, style="mine"))
        assert (reply["type"], reply["code"]) == ("error", "bad_request"), reply


@pytest.mark.parametrize("name,code", [("udnie", "bundled style"), ("mine", "already exists")])
def test_the_daemon_refuses_a_taken_training_name_before_accepting(
    daemon, tmp_path, name, code
) -> None:
    msg = protocol.make_request(
        "train",
        name=name,
        style_image=rgb(32, 32).to_wire(),
        params={"dataset": str(tmp_path), "steps": 1},
    )
    reply = raw(daemon, msg)
    assert (reply["type"], reply["code"]) == ("error", "bad_parameter"), reply
    assert code in reply["message"]
    assert load_style_model(daemon.home / "styles" / "mine.safetensors")  # left untouched


def test_overwrite_is_a_boolean(daemon: DaemonProcess, tmp_path: Path) -> None:
    msg = protocol.make_request(
        "train",
        name="mine",
        style_image=rgb(32, 32).to_wire(),
        params={"dataset": str(tmp_path)},
        overwrite="yes",
    )
    reply = raw(daemon, msg)
    assert (reply["type"], reply["code"]) == ("error", "bad_request"), reply
