"""What the daemon and the ``nst`` command add to the engine's messages: the command that
helps. The engine (``nst_core``) names no command; its front-ends do, here."""

from __future__ import annotations

from pathlib import Path

#: Advice for missing VGG weights (``weights_missing``).
WEIGHTS_ADVICE = (
    "Run `nst weights fetch` to download them, or `nst weights import FILE` "
    "to use a file you already have."
)


def with_advice(code: str, message: str) -> str:
    """``message`` of an error ``code`` with the command that helps, where there is one."""
    if code == "weights_missing" and "`nst " not in message:
        return f"{message}. {WEIGHTS_ADVICE}"
    return message


def weights_status(arch: str = "vgg16", explicit: str | Path | None = None) -> dict[str, str]:
    """``nst_core.weights.weights_info`` with the advice in a missing file's ``error``."""
    from nst_core.weights import weights_info

    info = weights_info(arch, explicit)
    if info.get("error"):
        info["error"] = with_advice("weights_missing", info["error"])
    return info
