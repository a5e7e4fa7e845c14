"""The style-file import policy of ``nst_core.styles``, the one every front-end applies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nst_core.errors import ParameterError
from nst_core.styles import (
    StyleNameTakenError,
    find_style,
    looks_like_model_file,
    new_style_path,
    use_model_file,
)
from nst_core.transformer_net import save_style_model

from daemon_helpers import random_net


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NST_HOME", str(tmp_path / "home"))
    return tmp_path


def test_which_style_arguments_are_model_files() -> None:
    for arg in ("mosaic.pth", "mosaic.pt", "mosaic.safetensors", "./mosaic", "dir/mosaic"):
        assert looks_like_model_file(arg), arg
    for arg in ("mosaic", "starry-night", "udnie.v2"):
        assert not looks_like_model_file(arg), arg


def test_a_model_file_is_imported_once_then_reused_and_never_replaced(home: Path) -> None:
    model = save_style_model(home / "my style.safetensors", random_net(1), {})
    assert use_model_file(model) == ("my-style", True)
    stored = find_style("my-style")
    assert use_model_file(model) == ("my-style", False)  # the same network: reused
    assert find_style("my-style") == stored

    other = save_style_model(home / "elsewhere" / "my style.safetensors", random_net(2), {})
    before = stored.read_bytes()
    with pytest.raises(StyleNameTakenError) as info:
        use_model_file(other)
    assert isinstance(info.value, ParameterError)
    assert info.value.name == "my-style" and info.value.existing == stored
    assert "different style" in str(info.value)
    assert stored.read_bytes() == before  # the existing style is untouched
    with pytest.raises(ParameterError, match="already exists"):
        new_style_path("my-style")
    assert new_style_path("my-style", overwrite=True) == stored


def test_the_policy_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from nst_core.styles import MODEL_SUFFIXES, looks_like_model_file\n"
        "assert looks_like_model_file('a.pth') and '.pth' in MODEL_SUFFIXES\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
