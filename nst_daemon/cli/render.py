"""What the terminal shows: tqdm bars fed by progress events, and the style table's rows
(status text is ``nst_client.text.status_report``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nst_client.protocol import Progress as ProgressReply
    from nst_core.progress import Progress


class StepBar:
    """A tqdm bar for the steps of one job, created on its first progress event."""

    def __init__(self, desc: str, position: int = 0, leave: bool = False) -> None:
        self.desc, self.position, self.leave = desc, position, leave
        self.bar: Any = None

    def __call__(self, event: dict[str, Any] | Progress | ProgressReply) -> None:
        if not isinstance(event, dict):  # a progress reply, or in-process an nst_core Progress
            event = vars(event)
        total = int(event.get("total") or 0)
        if total <= 1:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=self.desc,
                unit="step",
                position=self.position,
                leave=self.leave,
                disable=None,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        if total != self.bar.total:
            self.bar.reset(total)  # a new stage (e.g. the next scale of a Gatys run)
        self.bar.update(int(event.get("step") or 0) - self.bar.n)
        losses = event.get("losses") or {}
        stage = event.get("stage") or ""
        post = {k: f"{v:.3g}" for k, v in losses.items() if isinstance(v, int | float)}
        if stage:
            post = {"stage": stage, **post}
        eta = event.get("eta_s")
        if eta is not None:  # the engine's estimate knows that later steps cost more
            self.bar.bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
            minutes, seconds = divmod(round(eta), 60)
            post["left"] = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
        self.bar.set_postfix(post)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


STYLE_HEADERS = ("NAME", "TITLE", "ARTIST", "YEAR", "SOURCE", "LITE")


def style_row(info: dict[str, Any]) -> tuple[str, ...]:
    """A row of ``STYLE_HEADERS`` from a catalogue entry (a ``StyleEntry`` or, with
    ``--local``, a ``StyleInfo``); LITE says ``yes`` where a lite network ships (the
    ``--speed`` that uses it is ``fast``, or ``auto`` on a CPU)."""

    def text(key: str) -> str:
        value = info.get(key)
        return "" if value is None else str(value)

    lite = "yes" if "lite" in (info.get("variants") or ()) else ""
    return (text("name"), text("title"), text("artist"), text("year"), text("source"), lite)


class ByteBar:
    """tqdm bar for a download reported as ``Progress(step=bytes, total=bytes)``."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: Any = None

    def __call__(self, progress: Any) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=progress.total or None,
                desc=self.desc,
                unit="B",
                unit_scale=True,
                disable=None,
                file=sys.stderr,
            )
        self.bar.update(progress.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
