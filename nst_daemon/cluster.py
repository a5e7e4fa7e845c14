"""``nst batch --ray``: the resumable batch of ``nst_daemon.batch``, run on a Ray cluster.

The driver lists the inputs and plans the work with the local batch's rules
(``plan_batch``: every picture goes to the same file name in the output folder, an existing
output means done), then hands the remaining pictures to Ray Data: ``from_items`` holds
one row per picture and ``map_batches`` runs :class:`StylizeWorker`, a callable class that
Ray starts as a pool of actors. Each actor loads the style model once and stylises its
pictures with the daemon's own job function (``LocalRunner``: the run's ``StylizeRequest``
straight to ``execute.execute_stylize``), reading and writing with ``imagefile.read_image`` and
``write_image``, so the pixels are those of a local run.

Guarantees, as for the local batch:

- **atomic outputs** — each output is written to a hidden temporary beside its final name
  and renamed, so no half-written picture is ever visible under the final name;
- **resumable** — finished outputs are skipped by the plan, and again by the worker just
  before it computes a picture (a batch that Ray retries after its actor died skips what
  the dead actor had already written); a rerun after the driver died finishes the rest;
- **one output per input** — outputs are named by their input, so a picture computed
  twice (only a retried batch can do that) still yields one file, written atomically;
- **failures reported** — a picture that cannot be read or stylised is reported in the
  rows and the job goes on; any other error (unknown style, no weights) stops the job.

Folders are local paths (one machine, or a shared file system mounted at the same path on
every node) or URIs of any file system pyarrow understands (``s3://``, ``gs://``,
``hdfs://``, ``file://``), read and written by the actors through ``pyarrow.fs``, as Ray
Data does. Ray is an optional extra (``pip install '.[cluster]'``) and is imported only
when this module's functions run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nst_client.params import FastParams
from nst_client.protocol import Image
from nst_core.atomic import PARTIAL_SUFFIX, partial_name, remove_partials
from nst_core.errors import ImageError, NSTError
from nst_core.pillow_modes import IMAGE_EXTENSIONS
from nst_daemon.batch import (
    LocalRunner,
    Runner,
    StyleSpec,
    Task,
    is_picture_error,
    plan_batch,
)
from nst_daemon.imagefile import read_image, write_image

RAY_MISSING = (
    "--ray needs Ray, which is not installed: install the cluster extra, "
    "`pip install '.[cluster]'` in the source folder (or `pip install 'ray[data]'`)"
)

# Pictures per map_batches call. Pictures of one batch are stylised one after another (they
# have different sizes, so they cannot share a tensor), so the device holds one picture at a
# time whatever the batch size: it only sets how much work one task is, and so how much a
# retried task may recompute and how evenly the actors share the work.
MAX_FAST_BATCH = 16
TASKS_PER_ACTOR = 4  # at least this many batches per actor when there are enough pictures


class RayMissingError(NSTError):
    code = "ray_missing"


class JobError(NSTError):
    """An error an actor met that concerns the whole job (unknown style, no weights, bad
    parameters), with the stable code of the original error."""

    def __init__(self, message: str, code: str = "internal") -> None:
        super().__init__(message)
        self.code = code


def import_ray() -> Any:
    """``ray`` with Ray Data, or :class:`RayMissingError` with the install command."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    try:
        import ray
        import ray.data  # noqa: F401 - the extra must include Ray Data
    except ImportError as exc:
        raise RayMissingError(RAY_MISSING) from exc
    return ray


# --- folders: local paths or pyarrow file systems ---------------------------------------------


@dataclass(frozen=True)
class Folder:
    """A folder of pictures: ``fs`` is ``None`` for a local path, else a pyarrow FileSystem."""

    text: str  # as the user gave it
    path: str  # the local path, or the path inside ``fs``
    fs: Any = None

    @property
    def local(self) -> bool:
        return self.fs is None

    def child(self, name: str) -> str:
        return str(Path(self.path) / name) if self.local else f"{self.path.rstrip('/')}/{name}"

    def show(self, path: str) -> str:
        """``path`` (inside this folder's file system) as the user would write it."""
        if self.local:
            return path
        scheme = self.text.split("://", 1)[0]
        return f"{scheme}://{path}"


def resolve_folder(text: str) -> Folder:
    """A local path, or a URI resolved by pyarrow (``file://`` URIs become local paths)."""
    if "://" not in text:
        return Folder(text, str(Path(text).expanduser().absolute()))
    from pyarrow import fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise NSTError(f"{text}: not a folder pyarrow can open ({exc})") from None
    if isinstance(filesystem, pafs.LocalFileSystem):
        return Folder(text, path)
    return Folder(text, path.rstrip("/") or path, filesystem)


def _remote_exists(folder: Folder, path: str) -> bool:
    from pyarrow import fs as pafs

    return folder.fs.get_file_info(path).type != pafs.FileType.NotFound


def plan(source: Folder, output: Folder) -> tuple[list[Task], list[Task]]:
    """``(todo, done)`` with the local batch's rules; remote folders are listed by pyarrow."""
    if source.local and output.local:
        return plan_batch(Path(source.path), Path(output.path))
    from pyarrow import fs as pafs

    if source.local:
        names = sorted(
            p.name
            for p in Path(source.path).iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
    else:
        infos = source.fs.get_file_info(pafs.FileSelector(source.path, recursive=False))
        names = sorted(
            info.base_name
            for info in infos
            if info.type == pafs.FileType.File
            and Path(info.base_name).suffix.lower() in IMAGE_EXTENSIONS
        )
    tasks = [Task(Path(source.child(n)), Path(output.child(n))) for n in names]
    if output.local:
        finished = {t.target for t in tasks if t.target.exists()}
    else:
        infos = output.fs.get_file_info([str(t.target) for t in tasks]) if tasks else []
        finished = {
            t.target
            for t, info in zip(tasks, infos, strict=True)
            if info.type != pafs.FileType.NotFound
        }
    todo = [t for t in tasks if t.target not in finished]
    return todo, [t for t in tasks if t.target in finished]


def prepare_output(output: Folder) -> int:
    """Create the output folder and delete temporaries of killed writers; returns how many."""
    if output.local:
        Path(output.path).mkdir(parents=True, exist_ok=True)
        return remove_partials(Path(output.path))
    from pyarrow import fs as pafs

    output.fs.create_dir(output.path, recursive=True)
    count = 0
    for info in output.fs.get_file_info(pafs.FileSelector(output.path, allow_not_found=True)):
        if info.base_name.startswith(".") and info.base_name.endswith(PARTIAL_SUFFIX):
            with contextlib.suppress(OSError):
                output.fs.delete_file(info.path)
                count += 1
    return count


def read_picture(folder: Folder, path: str) -> Image:
    """``read_image`` of a local file, or of a copy of a remote one (same decoding)."""
    if folder.local:
        return read_image(path)
    name = Path(path).name
    with tempfile.TemporaryDirectory(prefix="nst-ray-") as tmp:
        local = Path(tmp) / name
        try:
            with folder.fs.open_input_stream(path) as remote, open(local, "wb") as out:
                while chunk := remote.read(1 << 20):
                    out.write(chunk)
        except OSError as exc:
            raise ImageError(f"{folder.show(path)}: cannot read ({exc})") from None
        try:
            return read_image(local)
        except ImageError as exc:
            raise ImageError(str(exc).replace(str(local), folder.show(path))) from None


def write_picture(folder: Folder, path: str, image: Image) -> None:
    """``write_image`` (atomic) to a local path; remote: a hidden temporary, then a move."""
    if folder.local:
        write_image(path, image)
        return
    with tempfile.TemporaryDirectory(prefix="nst-ray-") as tmp:
        encoded = write_image(Path(tmp) / Path(path).name, image).read_bytes()
    partial = str(partial_name(Path(path)))
    try:
        with folder.fs.open_output_stream(partial) as out:
            out.write(encoded)
        folder.fs.move(partial, path)
    except BaseException:
        with contextlib.suppress(Exception):
            folder.fs.delete_file(partial)
        raise


def exists(folder: Folder, path: str) -> bool:
    return Path(path).exists() if folder.local else _remote_exists(folder, path)


# --- the actor ------------------------------------------------------------------------------

RunnerFactory = Callable[[StyleSpec], Runner]


class StylizeWorker:
    """The callable class of ``map_batches``: one per actor, the style model loaded once.

    Each row is ``source``/``target`` (paths in the input/output folders); each result row
    adds ``status`` (``done``, ``skipped`` when the output exists already, ``failed`` for a
    picture that cannot be used, ``abort`` for an error of the whole job: the batch stops
    there), ``error`` and ``code``, ``node`` and ``worker`` (process id) so the driver can
    report and count. Errors without a stable ``code`` (bugs) are raised, for Ray to report.
    """

    def __init__(
        self,
        spec: StyleSpec,
        source: Folder,
        output: Folder,
        runner_factory: RunnerFactory | None = None,
    ) -> None:
        self.source, self.output = source, output
        self.runner = (runner_factory or LocalRunner)(spec)
        self.node = _node_id()
        self.worker = os.getpid()
        self.startup_error: Exception | None = None
        try:
            _warm_up(spec, getattr(self.runner, "models", None))
        except Exception as exc:  # reported on the first batch, as a clear error
            self.startup_error = exc

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        keys = ("source", "target", "status", "error", "code", "node", "worker", "batch")
        rows: dict[str, list[Any]] = {k: [] for k in keys}
        size = len(batch["source"])
        for source, target in zip(batch["source"], batch["target"], strict=True):
            source, target = str(source), str(target)
            status, error, code = "done", "", ""
            try:
                if self.startup_error is not None:
                    raise self.startup_error
                if exists(self.output, target):
                    status = "skipped"  # written by an earlier try of this batch
                else:
                    image = read_picture(self.source, source)
                    result = self.runner.start(image).result()
                    write_picture(self.output, target, result)
            except Exception as exc:
                code = getattr(exc, "code", None)
                if not isinstance(code, str):
                    raise
                error = getattr(exc, "message", None) or str(exc)
                status = "failed" if is_picture_error(exc) else "abort"
            for key, value in zip(
                keys,
                (source, target, status, error, code, self.node, self.worker, size),
                strict=True,
            ):
                rows[key].append(value)
            if status == "abort":
                break
        return rows


def _node_id() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # not in a Ray worker
        return ""


def _warm_up(spec: StyleSpec, models: Any) -> None:
    """Load the network this actor uses for every picture into the runner's ``Models``
    (where the job function finds it), once per actor; a missing style or missing weights
    become a clear error before any picture is read."""
    if isinstance(spec.params, FastParams) and spec.style:
        from nst_core.styles import find_style

        if models is None:
            find_style(spec.style)
        else:  # the network the job function picks for the request's speed
            from nst_daemon.execute import fast_model_file

            models.fast_model(fast_model_file(spec.style, spec.params.speed, models.device).path)
    elif models is not None:
        models.vgg()


# --- the driver -----------------------------------------------------------------------------


@dataclass
class Plan:
    source: Folder
    output: Folder
    todo: list[Task]
    done: list[Task]
    removed_partials: int = 0


@dataclass
class Report:
    """What a run did: the rows of the pictures it handled, by status, and where."""

    stylised: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    nodes: Counter[str] = field(default_factory=Counter)
    workers: Counter[int] = field(default_factory=Counter)
    actors: int = 0
    batch_size: int = 0
    gpu: bool = False


def make_plan(source_text: str, output_text: str) -> Plan:
    source, output = resolve_folder(source_text), resolve_folder(output_text)
    if source.local and output.local:
        same = Path(source.path).resolve() == Path(output.path).resolve()
    else:
        same = (source.path, type(source.fs)) == (output.path, type(output.fs))
    if same:
        raise NSTError("the output folder must differ from the input folder")
    if source.local and not Path(source.path).is_dir():
        raise NSTError(f"{source_text}: not a folder")
    removed = prepare_output(output)
    todo, done = plan(source, output)
    return Plan(source, output, todo, done, removed)


@contextlib.contextmanager
def connected(address: str | None, **init_kwargs: Any) -> Iterator[Any]:
    """Ray, connected: to ``address`` (``auto``, ``ray://host:port``, ``host:port``), to a
    Ray this process has initialised already, or to a new local one (shut down after)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {
        "logging_level": logging.WARNING,
        "log_to_driver": False,
        "configure_logging": True,
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs["include_dashboard"] = False
    kwargs.update(init_kwargs)
    ray.init(**kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def choose_actors(ray: Any, method: str, actors: int | None) -> tuple[int, bool]:
    """``(actors, gpu)``: one actor per GPU when the cluster has GPUs, else one per CPU."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    gpu = gpus > 0
    return (actors or (gpus if gpu else cpus)), gpu


def choose_batch_size(method: str, pictures: int, actors: int) -> int:
    """Gatys: one picture per task (minutes each); fast: enough tasks to share the work."""
    if method != "fast":
        return 1
    return max(1, min(MAX_FAST_BATCH, math.ceil(pictures / (actors * TASKS_PER_ACTOR))))


def run(
    job: Plan,
    spec: StyleSpec,
    *,
    address: str | None = None,
    actors: int | None = None,
    batch_size: int | None = None,
    cpus_per_actor: float = 1.0,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    runner_factory: RunnerFactory | None = None,
    init_kwargs: dict[str, Any] | None = None,
) -> Report:
    """Stylise ``job.todo`` on Ray; ``on_row`` sees each result row as it arrives."""
    report = Report()
    if not job.todo:
        return report
    with connected(address, **(init_kwargs or {})) as ray:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI draws its own bar
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-dataset INFO lines
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars off"
        report.actors, report.gpu = choose_actors(ray, spec.method, actors)
        report.actors = min(report.actors, len(job.todo))
        report.batch_size = batch_size or choose_batch_size(
            spec.method, len(job.todo), report.actors
        )
        rows = [{"source": str(t.source), "target": str(t.target)} for t in job.todo]
        blocks = min(len(rows), max(1, math.ceil(len(rows) / report.batch_size)), 10_000)
        dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            StylizeWorker,
            fn_constructor_kwargs={
                "spec": spec,
                "source": job.source,
                "output": job.output,
                "runner_factory": runner_factory,
            },
            batch_size=report.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=report.actors, max_tasks_in_flight_per_actor=2),
            num_cpus=cpus_per_actor,
            num_gpus=1 if report.gpu else 0,
        )
        results = iter(dataset.iter_rows())
        try:
            for row in results:
                row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                if row["status"] == "abort":
                    raise JobError(row["error"], row["code"])
                if row["status"] == "done":
                    report.stylised.append(row["target"])
                elif row["status"] == "skipped":
                    report.skipped.append(row["target"])
                else:
                    report.failed.append((row["source"], row["error"]))
                report.nodes[row["node"]] += 1
                report.workers[row["worker"]] += 1
                if on_row is not None:
                    on_row(row)
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # stops the dataset's execution when the loop ends early
    return report
