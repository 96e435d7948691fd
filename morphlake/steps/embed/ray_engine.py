"""`morphlake embed --engine ray`: the plan as a Ray Dataset, decoding in CPU tasks, the encoder in a pool of
actors, embedded batches streamed back to the driver in plan order (the driver writes the lake)."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field

import numpy as np
import pyarrow as pa

from morphlake.common.errors import HintedError
from morphlake.common.extras import install_hint
from morphlake.embed import EmbeddedBatch, Encoder, SnipRef
from morphlake.embed.columns import decode_columns, embedded_batch, encode_columns
from morphlake.embed.errors import EncoderFileError
from morphlake.embed.gpu_decode import GpuDecoder
from morphlake.errors import MorphlakeError
from morphlake.lake.faults import ENV_VARS, crash_point
from morphlake.lake.runs import RunRecord
from morphlake.steps.embed.decode_check import check_decode
from morphlake.steps.embed.engine import Engine
from morphlake.steps.embed.options import EmbedOptions, refuse_gpu_decode_without_gpu, refuse_int8_on_gpu

log = logging.getLogger("morphlake")
MAX_BATCHES_PER_BLOCK = 16  # input blocks of whole batches (never straddled): few Ray tasks on big runs ...
BLOCKS_PER_ACTOR = 4  # ... and enough blocks on small ones that every actor has work to the end
CLUSTER_HINT = "see the README, Running on a cluster"
# Ray Data hands each pool actor its constructor arguments as object references (the map function, its context),
# and Ray's core worker logs an error-level line for every such actor that may restart (ray-project/ray#57733, open:
# "with minimal Ray Data use"). Here it is a false alarm: the driver holds those references for the whole run, so a
# restarted actor finds them (tests/test_crash_safety.py kills one). That line alone is kept off the driver's
# stderr while the actors start (until the first batch is back: the window stays short, so a crash later is never
# silenced, and the progress bar sees the real terminal); Ray's own log still has it
# (<session>/logs/python-core-driver-*.log).
RAY_FALSE_ALARM = re.compile(
    rb"core_worker\.cc:\d+: Actor with class name: '[^']*' and ID: '\w+' has constructor arguments in the object "
    rb"store and max_restarts > 0"
)


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MorphlakeError(
            "--engine ray needs Ray Data, which is not installed",
            f"{install_hint('ray')}; the same on every node of the cluster",
        ) from None
    return ray


@contextmanager
def connected(address: str | None) -> Iterator[str]:
    """Join the cluster at `address`, or start a local Ray instance sized to this machine; leave or stop it at
    the end. A process that has already joined one (a notebook, the tests) keeps it."""
    ray = import_ray()
    if ray.is_initialized():
        yield "the Ray instance this process already joined"
        return
    # Ray's own notices stay out of the command's output (its errors reach it as exceptions; logs stay on the nodes)
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    env = {k: os.environ[k] for k in ENV_VARS if os.environ.get(k)}  # fault injection reaches the workers
    runtime_env = {"env_vars": env} if env else None
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, **quiet)
        else:
            ray.init(address="local", num_cpus=os.cpu_count() or 1, runtime_env=runtime_env, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise MorphlakeError(
            f"cannot join the Ray cluster at {address}: {exc}",
            f"start it with `ray start --head` and pass the address it prints; a cluster with token authentication "
            f"(Ray's default) needs RAY_AUTH_MODE=token and its ~/.ray/auth_token here too ({CLUSTER_HINT}); "
            "or leave out --ray-address for a local Ray instance",
        ) from None
    try:
        yield address or f"a local Ray instance ({os.cpu_count()} CPUs)"
    finally:
        ray.shutdown()


@contextmanager
def stderr_without(pattern: re.Pattern[bytes]) -> Iterator[None]:
    """This process's stderr (file descriptor 2, where Ray's C++ core writes too) without the lines matching
    `pattern`, for the duration; child processes started before keep the real one."""
    if sys.stderr is None:  # stderr closed (`2>&-`): nothing to filter
        yield
        return
    sys.stderr.flush()
    try:
        real = os.dup(2)
        read, write = os.pipe()
    except OSError:  # no stderr to filter
        yield
        return
    os.dup2(write, 2)
    os.close(write)

    def pump() -> None:
        with os.fdopen(read, "rb") as lines:
            for line in lines:
                if not pattern.search(line):
                    with contextlib.suppress(OSError):  # the real stderr gone (a closed pipe): keep draining
                        while line:
                            line = line[os.write(real, line) :]

    thread = threading.Thread(target=pump, name="morphlake-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last writer closes: the pump reads to its end and stops
        thread.join()
        os.close(real)


def actor_pool(
    device: str, resources: dict, where: str, *, batches: int, most: int | None = None
) -> tuple[str, dict, int]:
    """(the device each actor opens, its Ray resources, how many actors) for the cluster's resources. On CUDA one
    actor per GPU, and decoding runs in CPU tasks on every node's cores. On CPUs one actor per CPU: Ray Data fuses
    the decode stage into the actors (same resources), so each decodes and encodes its batch as a local thread
    does, and no pixels cross the object store. `most` (--workers) caps the pool."""
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if device == "cuda" and not gpus:
        raise MorphlakeError(
            f"device cuda was asked for, but {where} has no GPU (resources: {cpus} CPU, 0 GPU)",
            "start Ray on GPU hosts (`ray start --num-gpus N` if it does not find them), or pass --device cpu",
        )
    if gpus and device != "cpu":
        return "cuda", {"num_gpus": 1, "num_cpus": 1}, min(gpus, batches, most or gpus)
    return "cpu", {"num_cpus": 1}, max(1, min(cpus, batches, most or cpus))


def plan_blocks(plans: dict[str, pa.Table], batch_size: int, actors: int) -> list[pa.Table]:
    """The plan's snips in the local engine's order, in blocks of whole batches."""
    parts = [
        pa.table(
            {
                "snip_id": todo["snip_id"].cast(pa.string()),
                "experiment_date": pa.array([exp] * todo.num_rows, pa.string()),
                "path": todo["path"].cast(pa.string()),
            }
        )
        for exp, todo in plans.items()
    ]
    rows = pa.concat_tables(parts).combine_chunks()
    batches = -(-rows.num_rows // batch_size)
    step = batch_size * max(1, min(MAX_BATCHES_PER_BLOCK, batches // (BLOCKS_PER_ACTOR * actors)))
    return [rows.slice(start, step) for start in range(0, rows.num_rows, step)]


def _where() -> dict[str, str]:
    import ray

    context = ray.get_runtime_context()
    return {"node": context.get_node_id(), "actor": context.get_actor_id() or ""}


def decode_stage(batch: dict[str, np.ndarray], *, reduced: bool, gpu: bool) -> dict[str, np.ndarray]:
    crash_point("ray-decode")
    columns = decode_columns(batch, reduced=reduced, gpu=gpu)
    return {**columns, "decode_node": np.full(len(batch["path"]), _where()["node"])}


class EncoderActor:
    """Loads the ONNX session once and embeds the batches sent to it; checks it runs the driver's file. With
    `gpu_decode` (the device: --decode gpu) it decodes the batches' JPEGs there first."""

    def __init__(
        self, *, path: str, sha256: str, device: str, threads: int, batch_size: int, gpu_decode: str | None = None
    ):
        self.encoder = Encoder(path, device=device, threads=threads)
        self.gpu_decoder = GpuDecoder(slots=batch_size, device=gpu_decode) if gpu_decode else None
        self.where = _where()
        if self.encoder.info.sha256 != sha256:
            raise EncoderFileError(
                f"{path} on Ray node {self.where['node']} is not the encoder the driver loaded "
                f"(sha256 {self.encoder.info.sha256[:12]}…, expected {sha256[:12]}…)",
                f"keep the model and the lake on storage every node sees, at the same path ({CLUSTER_HINT})",
            )
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        crash_point("ray-encode")
        out = encode_columns(self.encoder, batch, batch_size=self.batch_size, gpu_decoder=self.gpu_decoder)
        n = len(out["snip_id"])
        out["decode_node"] = batch["decode_node"]
        for key, value in {**self.where, "provider": self.encoder.provider}.items():
            out[key] = np.full(n, value)
        return out


@dataclass(frozen=True)
class RayRun:
    """What the ray engine ran on, for the run record."""

    where: str
    device: str
    remote_args: dict  # each actor's Ray resources
    _: KW_ONLY
    actors: int
    resources: dict
    batch_size: int
    gpu_decode: str | None = None  # --decode gpu: the device the actors decode JPEGs on
    nodes_seen: set = field(default_factory=set)
    actors_seen: set = field(default_factory=set)
    providers: set = field(default_factory=set)

    def saw(self, columns: dict[str, np.ndarray]) -> None:
        self.nodes_seen.update(columns["node"].tolist(), columns["decode_node"].tolist())
        self.actors_seen.update(columns["actor"].tolist())
        self.providers.update(columns["provider"].tolist())

    def to_dict(self) -> dict:
        return {
            "name": "ray",
            "cluster": self.where,
            "cluster_resources": {k: self.resources.get(k, 0) for k in ("CPU", "GPU")},
            "device": self.device,
            "actor_pool": self.actors,
            "batch_size": self.batch_size,
            "nodes": len(self.nodes_seen),
            "actors": len(self.actors_seen),
            "providers": sorted(self.providers),
            **({"jpeg_decode": {"by": "nvImageCodec", "on": self.gpu_decode}} if self.gpu_decode else {}),
        }


NAMED_ERROR = re.compile(r"^(morphlake(?:\.\w+)+)\.(\w+): (.*)\n  hint: (.*)$", re.M)


def _original_error(exc: BaseException | None) -> HintedError | None:
    """A morphlake error raised in a Ray task or actor, as the driver should report it: the exception itself
    where Ray passes it on, else rebuilt from its text (an actor that died in its constructor)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, HintedError) and type(exc).__module__.startswith("morphlake"):
            return exc
        match = NAMED_ERROR.search(str(exc))
        if match:
            kind = getattr(importlib.import_module(match[1]), match[2], None)
            if isinstance(kind, type) and issubclass(kind, HintedError):
                return kind(match[3], match[4])
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


def actor_arguments(encoder: Encoder, options: EmbedOptions, run: RayRun) -> dict:
    """What each encoder actor is made with."""
    return {
        "path": str(encoder.path.absolute()),
        "sha256": encoder.info.sha256,
        "device": run.device,
        "threads": options.threads,
        "batch_size": run.batch_size,
        "gpu_decode": run.gpu_decode,
    }


def stream(plans: dict[str, pa.Table], options: EmbedOptions, run: RayRun, *, actor: dict) -> Iterator[EmbeddedBatch]:
    """Decode (CPU tasks) -> encode (actor pool) -> the driver, batch by batch in plan order."""
    import ray

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # one experiment completes after another, as locally
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    dataset = ray.data.from_arrow(plan_blocks(plans, run.batch_size, run.actors))
    decoded = dataset.map_batches(
        decode_stage,  # type: ignore[arg-type]  # Ray types fn as taking the batch alone; fn_kwargs passes the rest
        fn_kwargs={"reduced": options.reduced_decode, "gpu": run.gpu_decode is not None},
        batch_size=run.batch_size,
        batch_format="numpy",
        num_cpus=1,
    )
    embedded = decoded.map_batches(
        EncoderActor,
        fn_constructor_kwargs=actor,
        batch_size=run.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=run.actors),
        **run.remote_args,
    )
    batches = iter(embedded.iter_batches(batch_size=None, batch_format="numpy"))
    starting = True  # the actors start with the first batch: Ray's false alarm about their arguments comes then
    while True:
        start = time.perf_counter()
        try:
            with stderr_without(RAY_FALSE_ALARM) if starting else contextlib.nullcontext():
                columns = next(batches, None)
            starting = False
        except Exception as exc:
            raise _original_error(exc) or MorphlakeError(
                f"the ray engine failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                f"the Ray logs (/tmp/ray/session_latest/logs on each node) say more ({CLUSTER_HINT})",
            ) from exc
        if columns is None:
            return
        run.saw(columns)
        yield embedded_batch(columns, waited=time.perf_counter() - start)


def decode_check_task(todo: list[SnipRef], actor: dict, decode: str, min_cosine: float) -> dict:
    """--decode gpu checked where the actors decode: an encoder actor's encoder and decoder, in a task of its own.
    (Positional: Ray types a remote function's arguments by their positions.)"""
    encoder = EncoderActor(**actor)
    return check_decode(
        encoder.encoder,
        todo,
        decode=decode,
        batch_size=actor["batch_size"],
        min_cosine=min_cosine,
        gpu_decoder=encoder.gpu_decoder,
    )


def check_remotely(todo: list[SnipRef], *, actor: dict, options: EmbedOptions, run: RayRun) -> dict:
    import ray

    task = ray.remote(decode_check_task).options(**run.remote_args, max_retries=0)
    try:
        return ray.get(task.remote(todo, actor, options.decode, options.min_cosine))
    except Exception as exc:
        raise _original_error(exc) or MorphlakeError(
            f"the ray engine could not check --decode {options.decode}: {type(exc).__name__}",
            f"the Ray logs (/tmp/ray/session_latest/logs on each node) say more ({CLUSTER_HINT})",
        ) from exc


@contextmanager
def ray_engine(record: RunRecord, encoder: Encoder, options: EmbedOptions, *, total: int) -> Iterator[Engine]:
    """`with ray_engine(...) as engine:` then `engine.batches(plans)` streams EmbeddedBatch as embed_snips does.
    Joins (or starts) Ray only when there is something to embed; the run record's `engine` says where it ran."""
    if not total:
        record.set("engine", {"name": "ray", "nodes": 0, "actors": 0})
        yield Engine(lambda plans: iter(()), lambda todo: {})
        return
    ray = import_ray()
    with connected(options.ray_address) as where:
        resources = ray.cluster_resources()
        batch_size = options.batch_for(gpu=int(resources.get("GPU", 0)) > 0 and options.device != "cpu")
        batches = -(-total // batch_size)
        device, remote_args, actors = actor_pool(
            options.device, resources, where, batches=batches, most=options.workers
        )
        if device == "cuda":
            refuse_int8_on_gpu(encoder.info.precision, why=f"--device {options.device} on {where}, which has GPUs")
        elif options.decode == "gpu":
            refuse_gpu_decode_without_gpu(options.decode, why=f"the encoder actors on {where} run on the CPU")
        gpu_decode = device if options.decode == "gpu" else None  # "cpu" only under the suite's GPU_DECODE_ON_CPU
        run = RayRun(
            where, device, remote_args, actors=actors, resources=resources, batch_size=batch_size, gpu_decode=gpu_decode
        )
        log.info("ray engine on %s: %d encoder actor(s) on %s", where, actors, device)
        actor = actor_arguments(encoder, options, run)
        try:
            yield Engine(
                lambda plans: stream(plans, options, run, actor=actor),
                lambda todo: check_remotely(todo, actor=actor, options=options, run=run),
            )
        finally:
            record.set("engine", run.to_dict())
            if run.providers:  # the actors ran the encoder; the driver's own copy (on its CPU) only planned
                record.data["provider"]["used"] = ", ".join(sorted(run.providers))
                log.info(
                    "ray engine: %d actor(s) on %d node(s) ran %s",
                    len(run.actors_seen),
                    len(run.nodes_seen),
                    record.data["provider"]["used"],
                )
