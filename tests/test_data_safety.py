"""No run may destroy a user's file: inputs are never outputs, temporaries never follow links.

The ``nst`` commands run as real processes (``--local``: the refusals come before any
job, so no daemon is needed); the writers are called directly with symlinks planted at
the names an attacker could predict.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_cli import assert_clean_error, picture

from nst_client.names import is_style_name, slug
from nst_client.protocol import Image
from nst_core import atomic
from nst_core.atomic import PARTIAL_SUFFIX, atomic_write
from nst_core.images import save_image
from nst_core.transformer_net import save_style_model
from nst_daemon.imagefile import read_image, write_image

from daemon_helpers import environment, free_endpoint, random_net

NST = [sys.executable, "-m", "nst_daemon"]


def nst(home: Path, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = environment(home, free_endpoint())
    return subprocess.run(
        [*NST, *map(str, args)], env=env, capture_output=True, text=True, timeout=300, cwd=cwd
    )


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and inode: what a refused run must leave exactly as it was."""
    return {
        p.name: (p.read_bytes() if p.is_file() else b"", p.lstat().st_ino)
        for p in sorted(folder.iterdir())
    }


# --------------------------------------------------------------------------- inputs


def test_a_derived_output_name_that_is_another_input_is_refused(tmp_path: Path) -> None:
    for i, name in enumerate(("x.png", "y.png", "x-udnie.png")):
        picture(tmp_path / name, seed=i)
    before = snapshot(tmp_path)
    result = nst(
        tmp_path / "home",
        "stylize",
        tmp_path / "x.png",
        tmp_path / "y.png",
        tmp_path / "x-udnie.png",
        "--style",
        "udnie",
        "--local",
    )
    assert_clean_error(result, "x-udnie.png", "input", "nothing was written")
    assert result.returncode == 2
    assert snapshot(tmp_path) == before  # y-udnie.png was not written either


@pytest.mark.parametrize("link", ["hard", "symbolic", "same"])
def test_an_explicit_output_that_is_an_input_is_refused(tmp_path: Path, link: str) -> None:
    source = picture(tmp_path / "photo.png")
    target = tmp_path / "out.png"
    if link == "hard":
        os.link(source, target)
    elif link == "symbolic":
        target.symlink_to(source)
    else:
        target = source
    before = snapshot(tmp_path)
    result = nst(tmp_path / "home", "stylize", source, "--style", "udnie", "-o", target, "--local")
    assert_clean_error(result, "input", "photo.png")
    assert snapshot(tmp_path) == before


def test_the_painting_of_a_gatys_run_is_an_input_too(tmp_path: Path) -> None:
    photo, painting = picture(tmp_path / "photo.png"), picture(tmp_path / "art.png", seed=1)
    before = snapshot(tmp_path)
    result = nst(
        tmp_path / "home", "stylize", photo, "--style-image", painting, "-o", painting, "--local"
    )
    assert_clean_error(result, "art.png", "input")
    assert snapshot(tmp_path) == before


def test_batch_refuses_outputs_linked_to_its_inputs(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for i in range(3):
        picture(src / f"{i}.png", seed=i)
    os.link(src / "1.png", out / "2.png")  # 2.png's output is a hard link to input 1.png
    before_in, before_out = snapshot(src), snapshot(out)
    result = nst(tmp_path / "home", "batch", src, "-o", out, "--style", "udnie", "--local")
    assert_clean_error(result, "2.png", "1.png", "input")
    assert (snapshot(src), snapshot(out)) == (before_in, before_out)


def test_an_explicit_output_that_exists_is_replaced(tmp_path: Path) -> None:
    """Documented: ``-o EXISTING`` replaces it (what a CLI user expects); a run is refused
    only when the file is one of its inputs."""
    source = picture(tmp_path / "photo.png", size=(32, 24))
    target = picture(tmp_path / "old.png", size=(8, 8), seed=3)
    result = nst(tmp_path / "home", "stylize", source, "--style", "udnie", "-o", target, "--local")
    assert result.returncode == 0, result.stderr
    assert (read_image(target).width, read_image(target).height) == (32, 24)
    help_text = nst(tmp_path / "home", "stylize", "--help").stdout
    assert "never one of the run's inputs" in " ".join(help_text.split())


# --------------------------------------------------------------------------- temporaries


def _planted(tmp_path: Path, names: list[str]) -> Path:
    """A victim file and symlinks to it at each of ``names`` (the old predictable names)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in names:
        (tmp_path / name).symlink_to(victim)
    return victim


def _image(width: int = 8, height: int = 6) -> Image:
    return Image(width, height, 3, bytes(range(256))[:3] * (width * height))


def test_writers_never_follow_symlinks_at_temporary_names(tmp_path: Path) -> None:
    victim = _planted(
        tmp_path, [f".out.png{PARTIAL_SUFFIX}", "model.safetensors.tmp", "ckpt.tmp", ".ckpt.tmp"]
    )
    write_image(tmp_path / "out.png", _image())
    save_image(tmp_path / "saved.png", torch.rand(1, 3, 6, 8))
    save_style_model(tmp_path / "model.safetensors", random_net(0), {"name": "m"})
    with atomic_write(tmp_path / "ckpt") as out:
        torch.save({"step": 1}, out)
    assert victim.read_text() == "precious"
    assert read_image(tmp_path / "out.png").width == 8
    leftovers = {p.name for p in tmp_path.glob(f"*{PARTIAL_SUFFIX}")}
    assert leftovers == {f".out.png{PARTIAL_SUFFIX}"}  # only the planted link itself


def test_a_symlink_at_the_final_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = _planted(tmp_path, ["out.png"])
    write_image(tmp_path / "out.png", _image())
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.png").is_symlink()


def test_a_temporary_name_taken_by_a_planted_link_is_skipped(tmp_path, monkeypatch) -> None:
    """Even when the random name is guessed, ``O_EXCL | O_NOFOLLOW`` refuses the planted
    link and the writer takes a fresh name."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    names = iter(["guessed", "guessed", "fresh"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda _: next(names))
    (tmp_path / f".out.bin.guessed{PARTIAL_SUFFIX}").symlink_to(victim)
    with atomic_write(tmp_path / "out.bin") as out:
        out.write(b"new")
    assert victim.read_text() == "precious"
    assert (tmp_path / "out.bin").read_bytes() == b"new"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "keep.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as out:
        out.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bin"]


def test_written_files_follow_the_umask_not_private_temporary_modes(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_image(tmp_path / "shared.png", _image())
    finally:
        os.umask(old)
    assert (tmp_path / "shared.png").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        "nl\n",
        "",
        ".hidden",
        "a/b",
        "..",
        "x" * 65,
        "trailing.",
        "-dash",
        "tab\tname",
        "a\0b",
        "~home",
    ],
)
def test_invalid_style_names(name: str) -> None:
    assert not is_style_name(name)


@pytest.mark.parametrize("name", ["udnie", "My_Style-2.v1", "x" * 64])
def test_valid_style_names(name: str) -> None:
    assert is_style_name(name)


@pytest.mark.parametrize("text", ["My Painting (1889)", "..//..", "nl\n", "---", "a..b"])
def test_slug_always_makes_a_valid_name(text: str) -> None:
    assert is_style_name(slug(text))
