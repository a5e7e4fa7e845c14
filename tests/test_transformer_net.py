"""Model files: the project's safetensors format and PyTorch-example ``.pth`` files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from test_fast import plain_run, random_net

from nst_core.errors import ModelFormatError
from nst_core.fast import stylize_fast
from nst_core.styles import preview_pattern
from nst_core.transformer_net import TransformerNet, load_style_model, save_style_model


def test_project_format_round_trip(tmp_path: Path) -> None:
    net = random_net(2)
    meta = {"title": "Test", "year": 1889, "settings": {"style_weight": 1e5}}
    path = save_style_model(tmp_path / "test.safetensors", net, meta)
    model = load_style_model(path)
    assert model.meta["title"] == "Test" and model.meta["year"] == "1889"
    assert model.meta["name"] == "test"
    for key, value in net.state_dict().items():  # stored as fp16
        assert torch.allclose(model.net.state_dict()[key], value, rtol=1e-3, atol=1e-4), key
    full = load_style_model(save_style_model(tmp_path / "full.safetensors", net, {}, half=False))
    image = preview_pattern(32)
    assert torch.equal(
        stylize_fast(full, image, device="cpu"), stylize_fast(net, image, device="cpu")
    )


def test_architecture_round_trips_through_the_metadata(tmp_path: Path) -> None:
    lite = random_net(6, (16, 24, 40), 2)
    path = save_style_model(tmp_path / "lite.safetensors", lite, {"name": "lite"}, half=False)
    model = load_style_model(path)
    assert model.net.widths == (16, 24, 40) and model.net.blocks == 2
    assert json.loads(model.meta["architecture"]) == {"widths": [16, 24, 40], "blocks": 2}
    assert sorted({k.split(".")[0] for k in model.net.state_dict() if k.startswith("res")}) == [
        "res1",
        "res2",
    ]
    image = preview_pattern(40)
    assert torch.equal(plain_run(model.net, image), plain_run(lite, image))
    full = load_style_model(save_style_model(tmp_path / "full.safetensors", random_net(1), {}))
    assert json.loads(full.meta["architecture"]) == {"widths": [32, 64, 128], "blocks": 5}


def test_default_network_keeps_the_example_layout() -> None:
    keys = list(TransformerNet().state_dict())
    assert [k for k in keys if k.startswith("res")][0] == "res1.conv1.conv2d.weight"
    assert {k.split(".")[0] for k in keys if k.startswith("res")} == {
        f"res{i}" for i in range(1, 6)
    }
    assert TransformerNet().architecture == {"widths": [32, 64, 128], "blocks": 5}


def test_pth_without_architecture_metadata_runs_exactly_as_before(tmp_path: Path) -> None:
    net = random_net(7)
    torch.save(net.state_dict(), tmp_path / "plain.pth")
    model = load_style_model(tmp_path / "plain.pth")
    assert model.net.widths == (32, 64, 128) and model.net.blocks == 5
    image = preview_pattern(48)
    assert torch.equal(plain_run(model.net, image), plain_run(net, image))
    assert torch.equal(
        stylize_fast(model, image, device="cpu"), stylize_fast(net, image, device="cpu")
    )


def test_bad_architecture_metadata_is_a_model_format_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in random_net(8).state_dict().items()}
    for name, arch in (
        ("huge", {"widths": [10**6, 64, 128], "blocks": 5}),
        ("few", {"widths": [32, 64], "blocks": 5}),
        ("text", "not json"),
        ("other", {"widths": [16, 32, 64], "blocks": 3}),
    ):
        path = tmp_path / f"{name}.safetensors"
        save_file(
            state,
            str(path),
            metadata={"architecture": arch if isinstance(arch, str) else json.dumps(arch)},
        )
        with pytest.raises(ModelFormatError, match=path.name):
            load_style_model(path)


def test_pth_state_dict_loads(tmp_path: Path) -> None:
    net = random_net(3)
    state = net.state_dict()
    state["in1.running_mean"] = torch.zeros(32)  # old PyTorch versions saved these
    torch.save(state, tmp_path / "old.pth")
    model = load_style_model(tmp_path / "old.pth")
    assert model.meta["name"] == "old"
    assert torch.equal(model.net.conv1.conv2d.weight, net.conv1.conv2d.weight)


def test_pytorch_example_model_matches_a_plain_run(example_model: Path) -> None:
    model = load_style_model(example_model)
    image = torch.nn.functional.interpolate(preview_pattern(96), size=(64, 80), mode="bilinear")
    result = stylize_fast(model, image, device="cpu")
    assert torch.allclose(result, plain_run(model.net, image), atol=2e-4)


class _CreatesFile:
    """Unpickling this would create a file: the classic malicious-pickle payload."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_is_not_executed(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.conv2d.weight": _CreatesFile(str(target))}, path, pickle_protocol=2)
    with pytest.raises(ModelFormatError, match="evil.pth"):
        load_style_model(path)
    assert not target.exists()
    raw = tmp_path / "raw.pth"  # a bare pickle, not a torch zip file
    raw.write_bytes(pickle.dumps(_CreatesFile(str(target)), protocol=2))
    with pytest.raises(ModelFormatError, match="raw.pth"):
        load_style_model(raw)
    assert not target.exists()


def test_corrupt_truncated_and_wrong_files_name_the_file(tmp_path: Path) -> None:
    good = save_style_model(tmp_path / "good.safetensors", random_net(4), {})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    torch.save(random_net(4).state_dict(), tmp_path / "good.pth")
    cut_pth = tmp_path / "cut.pth"
    cut_pth.write_bytes((tmp_path / "good.pth").read_bytes()[:5000])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 not a model at all" * 10)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.conv2d.weight": torch.zeros(2, 2)}, wrong)
    listed = tmp_path / "list.pth"
    torch.save([1, 2, 3], listed)
    for path in (truncated, cut_pth, garbage, wrong, listed, tmp_path / "missing.pth"):
        with pytest.raises(ModelFormatError, match=path.name):
            load_style_model(path)
