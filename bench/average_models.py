"""Average the weights of two fast-style models of one style and architecture.

Two short runs along one training path (a model and a model trained on from it) often
land on either side of a target: one with the lower style loss, the other with the lower
content loss. Their weight average (``(1 - t) * A + t * B``, as in Polyak averaging and
stochastic weight averaging) lies between them on both; judge it with
``compare_models.py`` like any candidate. The output's ``training`` metadata records both
models' training and the weight.

    python bench/average_models.py A.safetensors B.safetensors --weight 0.4 -o OUT.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from nst_core.transformer_net import TransformerNet, load_style_model, save_style_model


def average(a: Path, b: Path, weight: float, output: Path) -> Path:
    first, second = load_style_model(a), load_style_model(b)
    if first.meta.get("name") != second.meta.get("name"):
        raise SystemExit(f"{a} and {b} are models of different styles")
    if first.net.architecture != second.net.architecture:
        raise SystemExit(f"{a} and {b} have different architectures")
    state = {}
    theirs = second.net.state_dict()
    for key, mine in first.net.state_dict().items():
        state[key] = torch.lerp(mine, theirs[key], weight) if mine.is_floating_point() else mine
    net = TransformerNet(first.net.widths, first.net.blocks)
    net.load_state_dict(state)
    trainings = [json.loads(model.meta.get("training", "{}")) for model in (first, second)]
    painting = [{k: t.get(k) for k in ("style_images", "style_size")} for t in trainings]
    if painting[0] != painting[1]:
        raise SystemExit(f"{a} and {b} were trained on different paintings or sizes")
    meta = {k: v for k, v in first.meta.items() if k != "architecture"}
    meta["training"] = {
        "method": "weight average",
        **painting[0],  # what the quality tools judge the model against
        "weight": weight,  # of the second model
        "models": [
            {"file": path.name, "training": training}
            for path, training in zip((a, b), trainings, strict=True)
        ],
    }
    return save_style_model(output, net, meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--weight", type=float, default=0.5, help="of the second model, 0..1")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    if not 0.0 <= args.weight <= 1.0:
        parser.error("--weight must be in 0..1")
    print(average(args.first, args.second, args.weight, args.output))


if __name__ == "__main__":
    main()
