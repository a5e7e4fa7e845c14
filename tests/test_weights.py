"""Weights files: resolution order, formats, validation, safe loading, fetch over real HTTP."""

from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from nst_core.errors import ModelFormatError, WeightsMissingError
from nst_core.progress import Progress
from nst_core.vgg import VGGFeatures, make_features
from nst_core.weights import (
    WeightsChoice,
    bundled_path,
    choose_weights,
    fetch_weights,
    import_weights,
    load_features_state,
    resolve_weights,
    stored_path,
    torchvision_cache_path,
)
from nst_daemon.advice import with_advice


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty data dir and torch hub dir for each test."""
    monkeypatch.setenv("NST_HOME", str(tmp_path / "nst"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@functools.cache
def features_state(arch: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return make_features(arch).state_dict()


def full_model_state(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's whole-model layout: ``features.N.*`` plus a (tiny stand-in) classifier."""
    state = {f"features.{k}": v for k, v in features_state(arch).items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    return state


def test_resolution_order(homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit file, then the data dir (fetched/imported), then bundled, then torch's cache."""
    bundled = bundled_path("vgg16")
    assert choose_weights("vgg16") == WeightsChoice("vgg16", bundled, "bundled")
    assert resolve_weights("vgg16") == bundled

    cached = torchvision_cache_path("vgg16")
    cached.parent.mkdir(parents=True)
    torch.save(full_model_state("vgg16"), cached)
    assert resolve_weights("vgg16") == bundled  # the cache does not displace the bundled file

    stored = import_weights(cached)
    assert stored == stored_path("vgg16") and stored.suffix == ".safetensors"
    assert choose_weights("vgg16") == WeightsChoice("vgg16", stored, "data_dir")

    explicit = homes / "mine.safetensors"
    save_file(features_state("vgg16"), str(explicit))
    assert choose_weights("vgg16", explicit) == WeightsChoice("vgg16", explicit, "explicit")
    with pytest.raises(WeightsMissingError, match="nope.pth"):
        resolve_weights("vgg16", homes / "nope.pth")

    # without a bundled file (VGG19, or a package that left it out): torchvision's cache
    stored.unlink()
    monkeypatch.setattr("nst_core.weights.BUNDLED_DIR", homes / "no-bundle")
    assert choose_weights("vgg16").source == "torchvision_cache"
    cached.unlink()
    with pytest.raises(WeightsMissingError) as info:
        resolve_weights("vgg16")
    assert "`nst " not in str(info.value)  # the engine names no command: front-ends add it
    advised = with_advice(info.value.code, str(info.value))  # what the daemon and CLI say
    assert "nst weights fetch" in advised and "nst weights import" in advised
    assert bundled_path("vgg19") is None
    with pytest.raises(WeightsMissingError):
        resolve_weights("vgg19")


@pytest.mark.parametrize("layout", ["full_pth", "features_pth", "safetensors"])
def test_formats_load_the_same_weights(homes: Path, layout: str) -> None:
    path = homes / f"w.{layout}"
    if layout == "full_pth":
        torch.save(full_model_state("vgg19"), path)
    elif layout == "features_pth":
        torch.save(features_state("vgg19"), path)
    else:
        save_file(features_state("vgg19"), str(path))
    arch, state = load_features_state(path)
    assert arch == "vgg19"
    assert set(state) == set(features_state("vgg19"))
    assert torch.equal(state["34.weight"], features_state("vgg19")["34.weight"])
    vgg = VGGFeatures("vgg19", ["relu5_4"], weights=path)
    assert vgg(torch.rand(1, 3, 32, 32))["relu5_4"].shape == (1, 512, 2, 2)


def test_wrong_architecture_and_shapes_are_named(homes: Path) -> None:
    path = homes / "vgg19.safetensors"
    save_file(features_state("vgg19"), str(path))
    with pytest.raises(ModelFormatError, match=r"vgg19\.safetensors.*VGG16"):
        load_features_state(path, "vgg16")

    bad = dict(features_state("vgg16"))
    bad["2.weight"] = torch.zeros(32, 64, 3, 3)
    path = homes / "bad_shape.safetensors"
    save_file(bad, str(path))
    with pytest.raises(ModelFormatError, match=r"bad_shape\.safetensors.*2\.weight"):
        load_features_state(path)

    few = {k: v for k, v in features_state("vgg16").items() if not k.startswith("28.")}
    path = homes / "twelve.safetensors"
    save_file(few, str(path))
    with pytest.raises(ModelFormatError, match="12 conv layers"):
        load_features_state(path)


def test_corrupt_files_give_clear_errors(homes: Path) -> None:
    good = homes / "good.pth"
    torch.save(features_state("vgg16"), good)
    truncated = homes / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:100_000])
    garbage = homes / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json} and more bytes")
    empty = homes / "empty.pth"
    empty.write_bytes(b"")
    for path in (truncated, garbage, empty):
        with pytest.raises(ModelFormatError, match=path.name):
            load_features_state(path)
        with pytest.raises(ModelFormatError):
            import_weights(path)
    assert not stored_path("vgg16").exists()


class _Payload:
    """Unpickling this object would create ``marker``: the proof of code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("writer", ["torch_zip", "raw_pickle"])
def test_malicious_pickle_is_not_executed(homes: Path, writer: str) -> None:
    marker = homes / "pwned"
    path = homes / "evil.pth"
    payload = {"0.weight": _Payload(marker)}
    if writer == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ModelFormatError, match="evil.pth"):
        load_features_state(path)
    assert not marker.exists()


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_verifies_and_stores_safetensors(homes: Path, http_dir) -> None:
    base, root = http_dir
    served = root / "vgg16-test.pth"
    torch.save(full_model_state("vgg16"), served)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    events: list[Progress] = []
    path = fetch_weights("vgg16", events.append, url=base + served.name, sha256_prefix=digest[:8])
    assert path == stored_path("vgg16") and path.suffix == ".safetensors"
    assert path.stat().st_size < served.stat().st_size  # the classifier was dropped
    assert events and events[-1].step == events[-1].total == served.stat().st_size
    _, state = load_features_state(path, "vgg16")
    assert torch.equal(state["0.weight"], features_state("vgg16")["0.weight"])
    assert resolve_weights("vgg16") == path
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files


def test_fetch_rejects_a_sha256_mismatch(homes: Path, http_dir) -> None:
    base, root = http_dir
    served = root / "vgg16-397923af.pth"
    torch.save(features_state("vgg16"), served)  # valid weights, but not the official file
    with pytest.raises(ModelFormatError, match="sha256"):
        fetch_weights("vgg16", url=base + served.name)
    assert not stored_path("vgg16").exists()
    assert list(stored_path("vgg16").parent.iterdir()) == []


def test_fetch_unreachable_server(homes: Path, http_dir) -> None:
    base, _ = http_dir
    with pytest.raises(WeightsMissingError, match="could not download"):
        fetch_weights("vgg16", url=base + "missing.pth")
    assert not stored_path("vgg16").exists()
