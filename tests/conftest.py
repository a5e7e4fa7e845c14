"""Shared test fixtures: the reference data folder beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_file(relative: str) -> Path:
    """Path of a reference file in ``../shared``; skips the test when it is absent."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"reference data not available: {path} (a checkout without ../shared)")
    return path


@pytest.fixture
def vgg16_weights() -> Path:
    return shared_file("weights/vgg16_features.safetensors")


@pytest.fixture
def example_model() -> Path:
    return shared_file("models/pytorch-examples/candy.pth")
