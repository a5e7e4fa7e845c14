"""VGGFeatures: layer names, truncation, frozen parameters, torchvision compatibility."""

from __future__ import annotations

import pytest
import torch
import torchvision

from nst_core.errors import ParameterError
from nst_core.vgg import VGGFeatures, layer_names, make_features


def random_state(arch: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return make_features(arch).state_dict()


def torchvision_features(cfg: str) -> torch.nn.Sequential:
    """torchvision's own ``features`` stack (without building the large classifier)."""
    return torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs[cfg])


def test_layer_names_follow_torchvision_indices() -> None:
    for arch, cfg in (("vgg16", "D"), ("vgg19", "E")):
        names = layer_names(arch)
        reference = torchvision_features(cfg)
        assert len(names) == len(reference)
        for name, module in zip(names, reference, strict=True):
            kind = {"conv": torch.nn.Conv2d, "relu": torch.nn.ReLU, "pool": torch.nn.MaxPool2d}
            assert isinstance(module, kind[name[:4]])
    assert "relu4_3" in layer_names("vgg16") and "relu5_4" in layer_names("vgg19")


def test_outputs_match_torchvision_features() -> None:
    state = random_state("vgg16")
    vgg = VGGFeatures("vgg16", ["relu1_2", "relu3_3", "relu4_2"], weights=state)
    reference = torchvision_features("D").eval()
    reference.load_state_dict(state)
    x = torch.rand(1, 3, 32, 32)
    normalised = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    out = vgg(x)
    assert set(out) == {"relu1_2", "relu3_3", "relu4_2"}
    with torch.no_grad():
        assert torch.allclose(out["relu1_2"], reference[:4](normalised), atol=1e-5)
        assert torch.allclose(out["relu4_2"], reference[:21](normalised), atol=1e-4)


def test_truncated_frozen_and_eval() -> None:
    vgg = VGGFeatures("vgg19", ["relu2_1", "conv3_1"], weights=random_state("vgg19"))
    assert vgg.names[-1] == "conv3_1"
    assert len(vgg.features) == layer_names("vgg19").index("conv3_1") + 1
    assert all(not p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    vgg(x)["relu2_1"].sum().backward()
    assert x.grad is not None  # gradients reach the image, not the weights


def test_forward_subset_and_errors() -> None:
    vgg = VGGFeatures("vgg16", ["relu1_1", "relu3_1"], weights=random_state("vgg16"))
    assert set(vgg(torch.rand(1, 3, 16, 16), ["relu1_1"])) == {"relu1_1"}
    with pytest.raises(ParameterError, match="deeper"):
        vgg(torch.rand(1, 3, 16, 16), ["relu4_1"])
    with pytest.raises(ParameterError, match="relu9_9"):
        VGGFeatures("vgg16", ["relu9_9"], weights=random_state("vgg16"))
    with pytest.raises(ParameterError, match="vgg11"):
        VGGFeatures("vgg11", ["relu1_1"])


def test_avg_pooling_option() -> None:
    state = random_state("vgg16")
    vgg = VGGFeatures("vgg16", ["relu2_1"], weights=state, pooling="avg")
    assert isinstance(vgg.features[4], torch.nn.AvgPool2d)
    with pytest.raises(ParameterError, match="pooling"):
        VGGFeatures("vgg16", ["relu2_1"], weights=state, pooling="min")


def test_loads_reference_weights(vgg16_weights) -> None:
    vgg = VGGFeatures("vgg16", ["relu1_2", "relu4_3"], weights=vgg16_weights)
    out = vgg(torch.rand(1, 3, 64, 64))
    # the reference weights expect 0-255 input internally: large activations
    assert out["relu1_2"].mean() > 10
