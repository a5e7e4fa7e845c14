"""Jobs: the queue and the device worker.

The worker runs each job with ``execute.execute_stylize`` / ``execute.execute_train``
(the functions the CLI's ``--local`` mode and ``nst batch`` call too) and turns the
outcome into a reply.

Scheduling: one ``Worker`` per device takes jobs from a ``JobQueue`` with two lanes.
``fast`` stylisations go before long jobs (Gatys, training), and while a long job runs,
queued fast jobs are run between its steps (from its progress callback), so a quick
preview never waits for a 10-minute optimisation to finish.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from nst_client.errors import ProtocolError
from nst_client.protocol import (
    Error,
    Image,
    JobInfo,
    Reply,
    Result,
    StylizeRequest,
    TrainRequest,
)
from nst_client.protocol import Progress as ProgressReply
from nst_core.errors import Cancelled, NSTError, OutOfMemoryError
from nst_core.progress import CancelToken, Progress, ProgressCallback

from .execute import execute_stylize, execute_train
from .models import Models

log = logging.getLogger("nst_daemon.jobs")

PROGRESS_INTERVAL_S = 0.1  # at most ten progress messages a second per job
#: Cached device memory and freed host memory are kept this long after the last job, so
#: that jobs in a row reuse warm memory, then given back to the system.
IDLE_RELEASE_S = 30.0


# --------------------------------------------------------------------------- queue

Emit = Callable[["Job", Reply], None]
_job_ids = itertools.count(1)


def request_bytes(request: StylizeRequest | TrainRequest) -> int:
    """Pixel bytes a parsed request holds (what a queued job keeps in memory)."""
    if isinstance(request, TrainRequest):
        images = [request.style_image]
    else:
        images = [request.image, request.mask, *request.style_images]
    return sum(len(image.data) for image in images if image is not None)


@dataclass
class Job:
    request: StylizeRequest | TrainRequest
    request_id: str
    owner: bytes = b""  # the client's ZeroMQ identity
    id: str = field(default_factory=lambda: f"j{next(_job_ids)}")
    cancel: CancelToken = field(default_factory=CancelToken)
    state: str = "queued"  # queued | running | done
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    progress: Progress | None = None
    size: int = 0  # bytes of pixels held, from the request
    #: the final error a cancelled job ends with: (code, message)
    stop_reason: tuple[str, str] = ("cancelled", "the job was cancelled")

    def __post_init__(self) -> None:
        self.size = request_bytes(self.request)

    def stop(self, code: str, message: str) -> None:
        """Cancel the job; it ends with error ``code`` and ``message``."""
        if not self.cancel.cancelled:
            self.stop_reason = (code, message)
        self.cancel.cancel()

    def stopped_reply(self) -> Error:
        code, message = self.stop_reason
        return Error(code, message, job_id=self.id)

    @property
    def method(self) -> str:
        return self.request.method if isinstance(self.request, StylizeRequest) else "train"

    @property
    def lane(self) -> str:
        return "fast" if self.method == "fast" else "slow"

    def describe(self) -> JobInfo:
        state = "cancelling" if self.cancel.cancelled and self.state == "running" else self.state
        p = self.progress
        if p is None:
            return JobInfo(self.id, self.method, state)
        return JobInfo(self.id, self.method, state, p.step, p.total, p.stage)


MIB = 1 << 20


@dataclass(frozen=True)
class QueueLimits:
    """Bounds on queued (not yet running) jobs, in total and per client.

    The byte bounds count the pixels the requests hold. A job is refused only when
    jobs are already held, so any request within the message size can always queue.
    """

    max_jobs: int = 64
    per_client_jobs: int = 16
    total_bytes: int = 2048 * MIB
    per_client_bytes: int = 1024 * MIB


def _mib(size: int) -> str:
    return f"{size / MIB:,.1f} MiB"


class JobQueue:
    """Two FIFO lanes, ``fast`` before ``slow``; thread-safe."""

    def __init__(self, limits: QueueLimits | None = None) -> None:
        self.limits = limits or QueueLimits()
        self._lanes: dict[str, deque[Job]] = {"fast": deque(), "slow": deque()}
        self._cond = threading.Condition()
        self._closed = False

    def _check_room(self, job: Job) -> None:
        """Raise ``busy`` (saying which bound and which option) if ``job`` does not fit."""
        lim, queued = self.limits, self.queued()
        mine = [j for j in queued if j.owner == job.owner]
        held, my_held = sum(j.size for j in queued), sum(j.size for j in mine)
        if len(queued) >= lim.max_jobs:
            raise ProtocolError("busy", f"the queue is full ({lim.max_jobs} jobs); try again later")
        if len(mine) >= lim.per_client_jobs:
            raise ProtocolError(
                "busy",
                f"this client already has {len(mine)} queued jobs, "
                "the daemon's limit (--max-queued-per-client); wait for one "
                "to finish",
            )
        if mine and my_held + job.size > lim.per_client_bytes:
            raise ProtocolError(
                "busy",
                f"this client's queued jobs hold {_mib(my_held)} of "
                f"images; this one ({_mib(job.size)}) would pass the limit "
                f"of {_mib(lim.per_client_bytes)} "
                "(--max-queued-mb-per-client); wait for one to finish",
            )
        if queued and held + job.size > lim.total_bytes:
            raise ProtocolError(
                "busy",
                f"the queued jobs hold {_mib(held)} of images; this "
                f"one ({_mib(job.size)}) would pass the daemon's limit of "
                f"{_mib(lim.total_bytes)} (--max-queued-mb); try again later",
            )

    def put(self, job: Job) -> int:
        """Queue ``job``; returns how many queued jobs run before it (``busy`` if full)."""
        with self._cond:
            if self._closed:
                raise ProtocolError("shutting_down", "the daemon is shutting down")
            self._check_room(job)
            self._lanes[job.lane].append(job)
            self._cond.notify_all()
            return self.position(job)

    def position(self, job: Job) -> int:
        with self._cond:
            fast = list(self._lanes["fast"])
            if job.lane == "fast":
                return fast.index(job) if job in fast else 0
            slow = list(self._lanes["slow"])
            return len(fast) + (slow.index(job) if job in slow else 0)

    def take(self, lanes: tuple[str, ...] = ("fast", "slow"), timeout: float = 0.0) -> Job | None:
        with self._cond:
            deadline = time.monotonic() + timeout
            while True:
                for lane in lanes:
                    if self._lanes[lane]:
                        return self._lanes[lane].popleft()
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def remove(self, job_id: str) -> Job | None:
        with self._cond:
            for lane in self._lanes.values():
                for job in lane:
                    if job.id == job_id:
                        lane.remove(job)
                        return job
        return None

    def queued(self) -> list[Job]:
        with self._cond:
            return [*self._lanes["fast"], *self._lanes["slow"]]

    def close(self) -> list[Job]:
        """Stop taking jobs; returns (and removes) those still queued."""
        with self._cond:
            self._closed = True
            left = self.queued()
            for lane in self._lanes.values():
                lane.clear()
            self._cond.notify_all()
            return left


# --------------------------------------------------------------------------- worker


class Worker(threading.Thread):
    """Runs the jobs of one device, one at a time (fast jobs nested between slow steps)."""

    def __init__(self, queue: JobQueue, models: Models, emit: Emit) -> None:
        super().__init__(name=f"worker-{models.device}", daemon=True)
        self.queue = queue
        self.models = models
        self.emit = emit
        self.running: list[Job] = []  # the slow job and, between its steps, a fast one
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        idle_since: float | None = None  # None: memory already released
        while not self._stop_event.is_set():
            job = self.queue.take(timeout=0.2)
            if job is not None:
                self.run_job(job)
                idle_since = time.monotonic()
            elif idle_since is not None and time.monotonic() - idle_since >= IDLE_RELEASE_S:
                self.models.release_memory()
                idle_since = None

    def run_job(self, job: Job) -> None:
        if job.cancel.cancelled:
            self.emit(job, job.stopped_reply())
            return
        job.state, job.started = "running", time.monotonic()
        self.running.append(job)
        log.info("job %s (%s) started", job.id, job.method)
        try:
            if isinstance(job.request, TrainRequest):
                result = execute_train(job.request, self.models, self._progress(job), job.cancel)
            else:
                result = execute_stylize(job.request, self.models, self._progress(job), job.cancel)
            timings = {**result["timings"], "queued_s": job.started - job.submitted}
            self.emit(
                job,
                Result(
                    job.id,
                    result.get("image"),
                    timings,
                    result.get("style"),
                    result.get("path"),
                    result.get("variant"),
                ),
            )
            log.info("job %s done in %.2f s", job.id, time.monotonic() - job.started)
        except NSTError as exc:
            level = logging.INFO if isinstance(exc, Cancelled) else logging.WARNING
            log.log(level, "job %s: %s: %s", job.id, exc.code, exc)
            if isinstance(exc, OutOfMemoryError):
                self.models.release_memory()
            if isinstance(exc, Cancelled) and job.cancel.cancelled:
                self.emit(job, job.stopped_reply())
            else:
                self.emit(job, Error(exc.code, str(exc), job_id=job.id))
        except Exception as exc:
            log.exception("job %s failed", job.id)
            self.emit(
                job, Error("internal", f"internal error: {exc} (see the daemon log)", job_id=job.id)
            )
        finally:
            job.state = "done"
            self.running.remove(job)

    def _progress(self, job: Job) -> ProgressCallback:
        last_sent = 0.0

        def report(p: Progress) -> None:
            nonlocal last_sent
            job.progress = p
            now = time.monotonic()
            final = p.total > 0 and p.step >= p.total
            if (
                p.preview is not None
                or final
                or p.stage == "loading"
                or now - last_sent >= PROGRESS_INTERVAL_S
            ):
                last_sent = now
                self.emit(job, progress_message(p, job.started or now, job.id))
            if job.lane == "slow":
                self._run_fast_jobs()

        return report

    def _run_fast_jobs(self) -> None:
        """Serve waiting fast jobs between two steps of a long job."""
        while (job := self.queue.take(("fast",))) is not None:
            self.run_job(job)


def progress_message(p: Progress, started: float, job_id: str) -> ProgressReply:
    """The ``progress`` reply for the engine's report ``p`` of a job started at ``started``."""
    from nst_core.images import to_pixels

    elapsed = time.monotonic() - started
    eta = (
        p.eta_s
        if p.eta_s is not None
        else elapsed / p.step * (p.total - p.step)
        if p.step > 0 and p.total
        else None
    )
    preview = None
    if p.preview is not None:
        h, w = p.preview.shape[-2:]
        preview = Image(w, h, 3, to_pixels(p.preview, None, 3))
    return ProgressReply(
        job_id, p.step, p.total, p.stage, {k: float(v) for k, v in p.losses.items()}, eta, preview
    )
