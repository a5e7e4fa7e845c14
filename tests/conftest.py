"""Shared test fixtures: the reference data folder beside the checkout, the bundled VGG16."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nst_core.weights import bundled_path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_file(relative: str) -> Path:
    """Path of a reference file in ``../shared``; skips the test when it is absent."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"reference data not available: {path} (a checkout without ../shared)")
    return path


# The VGG16 weights shipped in the package: tests that need real VGG use these, never
# ../shared, so they run on a fresh clone.
BUNDLED_VGG16 = bundled_path("vgg16")


@pytest.fixture
def vgg16_weights() -> Path:
    assert BUNDLED_VGG16 is not None and BUNDLED_VGG16.is_file(), "bundled VGG16 missing"
    return BUNDLED_VGG16


@pytest.fixture
def example_model() -> Path:
    return shared_file("models/pytorch-examples/candy.pth")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny images: one thread avoids OpenMP spin-waiting when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
