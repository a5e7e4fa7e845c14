"""The style catalogue: listing, lookup by name, import, previews."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from test_fast import random_net

from nst_core import paths
from nst_core.errors import ModelFormatError, ParameterError, StyleNotFoundError
from nst_core.fast import stylize_fast
from nst_core.images import load_image, resize
from nst_core.styles import (
    find_style,
    import_style,
    list_styles,
    resolve_style_arg,
    style_preview,
    variant_path,
)
from nst_core.transformer_net import load_style_model, save_style_model


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setenv("NST_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(paths, "bundled_styles_dir", lambda: bundled)
    return bundled, paths.user_styles_dir()


def test_bundled_and_user_styles_are_listed(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    bundled, user = dirs
    assert list_styles() == []
    meta = {
        "title": "The Starry Night",
        "artist": "Vincent van Gogh",
        "year": 1889,
        "licence": "public domain",
    }
    save_style_model(bundled / "starry-night.safetensors", random_net(5), meta)
    torch.save(random_net(6).state_dict(), tmp_path / "My Style!.pth")
    path = import_style(tmp_path / "My Style!.pth")
    assert path == user / "My-Style.safetensors"
    (user / "broken.safetensors").write_bytes(b"junk")  # skipped, not fatal
    styles = {s.name: s for s in list_styles()}
    assert set(styles) == {"starry-night", "My-Style"}
    starry = styles["starry-night"]
    assert (starry.title, starry.artist, starry.year, starry.source) == (
        "The Starry Night",
        "Vincent van Gogh",
        "1889",
        "bundled",
    )
    mine = styles["My-Style"]
    assert mine.source == "user" and mine.meta["source_file"] == "My Style!.pth"
    assert find_style("starry-night") == bundled / "starry-night.safetensors"
    assert find_style("My-Style") == path
    assert load_style_model(path).meta["name"] == "My-Style"


def test_a_lite_file_is_a_variant_of_its_style(dirs: tuple[Path, Path]) -> None:
    bundled, _ = dirs
    full = save_style_model(bundled / "udnie.safetensors", random_net(7), {"title": "Udnie"})
    save_style_model(bundled / "wave.safetensors", random_net(8), {"title": "Wave"})
    lite = save_style_model(
        bundled / "udnie.lite.safetensors",
        random_net(9, (8, 16, 32), 2),
        {"title": "Udnie", "variant": "lite"},
    )
    styles = {s.name: s for s in list_styles()}
    assert set(styles) == {"udnie", "wave"}
    assert styles["udnie"].variants == {"full": full, "lite": lite}
    assert styles["wave"].variants == {"full": bundled / "wave.safetensors"}
    assert variant_path(full, "lite") == lite and variant_path(full, "full") == full
    assert variant_path(bundled / "wave.safetensors", "lite") == bundled / "wave.safetensors"
    with pytest.raises(ParameterError, match="variant"):
        variant_path(full, "tiny")


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a\\b", "/etc/passwd", "..", ".hidden"])
def test_path_like_names_are_refused(dirs: tuple[Path, Path], name: str) -> None:
    with pytest.raises(StyleNotFoundError, match="not a style name"):
        find_style(name)


def test_unknown_style_lists_the_available_ones(dirs: tuple[Path, Path]) -> None:
    bundled, _ = dirs
    save_style_model(bundled / "udnie.safetensors", random_net(7), {})
    with pytest.raises(StyleNotFoundError, match=r"no style called 'nope' \(available: udnie\)"):
        find_style("nope")


def test_resolve_style_arg_accepts_model_files(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    model = save_style_model(tmp_path / "elsewhere.safetensors", random_net(8), {})
    assert resolve_style_arg(str(model)) == model
    with pytest.raises(StyleNotFoundError):
        resolve_style_arg(str(tmp_path / "missing.safetensors"))


def test_import_refuses_bad_models_and_clashes(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    bundled, user = dirs
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(ModelFormatError, match="bad.pth"):
        import_style(tmp_path / "bad.pth")
    save_style_model(bundled / "taken.safetensors", random_net(9), {})
    torch.save(random_net(9).state_dict(), tmp_path / "ok.pth")
    with pytest.raises(ParameterError, match="bundled"):
        import_style(tmp_path / "ok.pth", name="taken")
    import_style(tmp_path / "ok.pth", name="mine")
    with pytest.raises(ParameterError, match="already exists"):
        import_style(tmp_path / "ok.pth", name="mine")
    with pytest.raises(StyleNotFoundError):
        import_style(tmp_path / "ok.pth", name="../escape")
    assert sorted(p.name for p in user.iterdir()) == ["mine.safetensors"]


def test_preview_renders_a_small_picture_and_is_cached(dirs: tuple[Path, Path]) -> None:
    bundled, _ = dirs
    path = save_style_model(bundled / "p.safetensors", random_net(10), {})
    preview = style_preview(path, size=40)
    assert preview.shape == (1, 3, 40, 40) and torch.isfinite(preview).all()
    assert preview.std() > 0.01
    preview.zero_()  # callers get a copy: the cache is unaffected
    assert torch.equal(style_preview(path, size=40), style_preview(path, size=40))
    assert style_preview(path, size=40).std() > 0.01


# --------------------------------------------------------------------------- bundled styles

BUNDLED = sorted(paths.bundled_styles_dir().glob("*.safetensors"))
EXAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "examples" / "lighthouse.png"
_STYLED: dict[str, torch.Tensor] = {}  # each bundled style's picture, for the comparison


def test_the_bundled_folder_holds_the_documented_styles() -> None:
    readme = (paths.bundled_styles_dir() / "README.md").read_text()
    documented = sorted(re.findall(r"^\| `([\w-]+)\.safetensors` \|", readme, re.MULTILINE))
    assert documented and documented == [p.stem for p in BUNDLED]


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_every_bundled_style_loads_is_listed_and_paints(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NST_HOME", str(tmp_path))  # no user styles
    model = load_style_model(path)
    for key in ("title", "artist", "year", "licence"):
        assert str(model.meta.get(key, "")).strip(), f"{path.name}: no {key}"
    listed = {s.name: s for s in list_styles()}
    assert listed[path.stem].source == "bundled" and find_style(path.stem) == path

    photo, _ = load_image(EXAMPLE_PHOTO)
    photo = resize(photo, (96, 128))
    styled = stylize_fast(model, photo, device="cpu")
    assert styled.shape == photo.shape and torch.isfinite(styled).all()
    assert 255 * (styled - photo).abs().mean() > 10  # restyled, not the photo back
    assert 255 * styled.std(dim=(2, 3)).min() > 10  # a picture in every channel, not flat
    inside = ((styled > 0.002) & (styled < 0.998)).float().mean()
    assert inside > 0.5  # mostly unclipped
    _STYLED[path.stem] = styled


def test_bundled_styles_paint_differently() -> None:
    """Two files holding the same network (a copy under another name) would show here."""
    if len(_STYLED) != len(BUNDLED):
        pytest.skip("needs every test_every_bundled_style_loads_is_listed_and_paints run")
    names = sorted(_STYLED)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert 255 * (_STYLED[a] - _STYLED[b]).abs().mean() > 5, (a, b)
