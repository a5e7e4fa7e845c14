"""What the daemon's replies say to a person: error advice, progress and status lines.

One table of wording per error code (``ERRORS``) with what the code means, what to do
about it at the terminal (``nst``) and what to do about it in GIMP; the CLI and the
plug-in both word statuses and progress with the functions here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import DaemonError, DaemonUnavailable, ErrorCode
from .protocol import JobInfo, Progress, Status


@dataclass(frozen=True)
class Wording:
    meaning: str  # what the code says happened
    cli: str | None = None  # what to do about it with `nst`
    plugin: str | None = None  # what to do about it in GIMP, a sentence or two
    plugin_only: bool = False  # the plug-in's advice says it all: no detail after it


ERRORS: dict[ErrorCode, Wording] = {
    ErrorCode.BAD_REQUEST: Wording(
        "the message is not a valid request (not msgpack, wrong types, fields)"
    ),
    ErrorCode.UNSUPPORTED_VERSION: Wording(
        "the request's protocol major version is not spoken here",
        "the daemon is another version of nst; restart it: `nst daemon stop && nst daemon start`",
        "The plug-in and the daemon are from different versions. Re-run install.sh.",
    ),
    ErrorCode.TOO_LARGE: Wording(
        "image or message larger than the daemon's limits",
        "try a smaller --max-size",
        "The image is too large for the daemon. Lower 'Output size limit', or select a "
        "smaller area.",
    ),
    ErrorCode.BUSY: Wording(
        "the daemon's queue is full",
        "the daemon's queue is full; try again when `nst status` shows fewer jobs",
        "The daemon's queue is full. Wait for the running jobs to finish.",
    ),
    ErrorCode.FORBIDDEN: Wording("not allowed from this peer (e.g. shutdown from another machine)"),
    ErrorCode.UNKNOWN_JOB: Wording("no job with this id"),
    ErrorCode.DAEMON_UNAVAILABLE: Wording(
        "no daemon answers and none could be started",
        "start it with `nst daemon start` (see its log), check --endpoint or NST_ENDPOINT, "
        "or run in-process with --local",
        "The Neural Style daemon is not running and could not be started: see Filters > "
        "Neural Style > Daemon Status.",
    ),
    ErrorCode.TIMEOUT: Wording(
        "no message from the daemon within the client's timeout",
        "check the daemon with `nst daemon status`; its log is in the data dir",
        "The daemon stopped answering.",
    ),
    ErrorCode.SHUTTING_DOWN: Wording(
        "the daemon is stopping and accepts no new jobs",
        None,
        "The Neural Style daemon was shutting down and ended the job: try again in a moment.",
        plugin_only=True,
    ),
    ErrorCode.INTERNAL: Wording(
        "unexpected failure inside the daemon (see its log)",
        "see the daemon's log (`nst daemon status` shows where)",
    ),
    ErrorCode.WEIGHTS_MISSING: Wording(
        "VGG weights are not installed",
        "run `nst weights fetch`, or `nst weights import FILE` for a file you have",
        "Paint Like cannot run: the daemon has no VGG network weights; reinstall Neural "
        "Style to restore the bundled ones.",
        plugin_only=True,
    ),
    ErrorCode.UNKNOWN_STYLE: Wording(
        "no style with this name",
        "list styles with `nst styles`, or add a model with `nst styles import FILE`",
        "The daemon does not know this style. Pick another one, or import the model with "
        "'nst styles import FILE'.",
    ),
    ErrorCode.BAD_MODEL: Wording(
        "a style model or weights file cannot be read",
        "use a .pth from PyTorch's fast_neural_style example or an nst .safetensors model",
    ),
    ErrorCode.BAD_IMAGE: Wording("the image cannot be used"),
    ErrorCode.BAD_PARAMETER: Wording("a parameter has a wrong type or value"),
    ErrorCode.OUT_OF_MEMORY: Wording(
        "the device ran out of memory",
        "try a smaller --max-size",
        "The daemon ran out of memory. Lower 'Output size limit' or select a smaller area.",
    ),
    ErrorCode.CANCELLED: Wording("the job was cancelled", None, "The job was cancelled."),
}

#: the plug-in's words for a daemon that died under a job (``DaemonUnavailable.lost_job``)
DAEMON_STOPPED = (
    "The Neural Style daemon stopped during the job, so the job is lost: try "
    "again (the daemon is started anew), or see Filters > Neural Style > "
    "Daemon Status."
)


def _wording(code: str) -> Wording | None:
    try:
        return ERRORS.get(ErrorCode(code))
    except ValueError:  # a newer daemon's code
        return None


def cli_hint(code: str) -> str | None:
    """What to do about error ``code`` at the terminal (appended to the message)."""
    wording = _wording(code)
    return wording.cli if wording is not None else None


def describe_error(error: Exception) -> str:
    """A failed request in the plug-in's plain words, with the detail in brackets."""
    if isinstance(error, DaemonUnavailable) and error.lost_job:
        return DAEMON_STOPPED
    if isinstance(error, DaemonError):
        wording = _wording(error.code) or Wording("")
        advice = wording.plugin
        if advice and (wording.plugin_only or isinstance(error, DaemonUnavailable)):
            return advice
        detail = error.message or error.code
        return f"{advice}\n({detail})" if advice else f"Neural Style failed: {detail}"
    return f"Neural Style failed: {error}"


#: what the engine's stage names say to a user (others are shown as they come)
STAGES = {"loading": "Loading the style", "stylize": "Stylising", "tiles": "Stylising"}


def progress_text(event: Progress) -> str:
    """Status line for a progress event: stage, step (or tile) and time left."""
    stage = event.stage or "working"
    text = STAGES.get(stage, stage.replace("_", " ").capitalize())
    total = event.total or 0
    if stage in ("stylize", "tiles"):
        if total > 1:
            text += f", tile {min(event.step + 1, total)} of {total}"
    elif total:
        text += f", step {event.step} of {total}"
    eta = event.eta_s
    if eta is not None and eta >= 1:
        minutes, seconds = divmod(round(eta), 60)
        left = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
        text += f", about {left} left"
    return text


def _plugin_job_line(job: JobInfo) -> str:
    line = f"  {job.method or 'job'} {job.state}".rstrip()
    if job.total:
        line += f", step {job.step or 0}/{job.total}"
    return line


def status_text(status: Status | None) -> str:
    """The daemon's status as a few lines for the plug-in's dialog (None: not running)."""
    if status is None:
        return "The daemon is not running. Press Start to start it."
    fast = ", ".join(status.models.fast) or "none"
    lines = [
        f"Device: {status.device or 'unknown'}",
        f"Running jobs: {len(status.running)}",
        *(_plugin_job_line(job) for job in status.running),
        f"Waiting jobs: {len(status.queue)}",
        f"VGG network loaded: {'yes' if status.models.vgg else 'no'}",
        f"Fast styles loaded: {fast}",
    ]
    if status.uptime_s is not None:
        minutes = round(status.uptime_s / 60)
        lines.append(f"Running for {minutes} min (process {status.pid or '?'})")
    return "\n".join(lines)


def job_line(job: JobInfo) -> str:
    """One job of a status for the terminal: ``j3 gatys running 5/100 (stylize)``."""
    text = f"{job.job_id or '?'} {job.method} {job.state}"
    if job.total:
        text += f" {job.step or 0}/{job.total}"
    if job.stage:
        text += f" ({job.stage})"
    return text


def status_report(endpoint: str, status: Status) -> str:
    """The daemon's status as ``nst status`` prints it."""
    uptime = status.uptime_s or 0.0
    memory = status.memory
    used = (
        f", {memory['allocated'] / 2**20:.0f} MiB of {memory['total'] / 2**20:.0f} MiB used"
        if memory.get("total")
        else ""
    )
    lines = [
        f"daemon   {endpoint} (pid {status.pid or '?'}, up {uptime / 60:.1f} min)",
        f"device   {status.device or '?'}{used}",
        f"models   VGG {'loaded' if status.models.vgg else 'not loaded'}; fast styles: "
        + (", ".join(status.models.fast) or "none loaded"),
        "running  " + ("; ".join(job_line(j) for j in status.running) or "idle"),
        "queued   " + ("; ".join(job_line(j) for j in status.queue) or "none"),
        f"clients  {status.clients}",
    ]
    if status.vgg_weights:  # older daemons do not say
        lines.insert(3, f"weights  {weights_text(status.vgg_weights)}")
    return "\n".join(lines)


def weights_text(info: dict[str, Any]) -> str:
    """A ``vgg_weights`` entry of hello/status (``nst_core.weights.weights_info``) in words."""
    source = info.get("source", "?")
    if source == "missing":
        return f"missing ({info.get('error') or 'no VGG weights found'})"
    if source == "bundled":
        return f"bundled {info.get('name', '')}".rstrip()
    label = {
        "data_dir": "imported/fetched",
        "explicit": "--vgg-weights",
        "torchvision_cache": "torchvision's cache",
    }.get(source, source)
    return f"{label} {info.get('path', '')}".rstrip()
