"""Replica processes started, and loading what they need, while Ray and Serve start.

``serve-app run`` spends about half of its start on Ray and Serve (the head, the controller,
its proxies, the app's build) before Serve asks for the processes of the first replicas; each
of those then started a Python, imported Ray, and (the embeddings replica) torch and
transformers and the model: one after the other, the server answered long after a plain
process would. Two things overlap them:

- the ingress and the embeddings replicas run in a Python of their own: :func:`mark` sets
  their ``runtime_env`` ``py_executable`` (Ray's documented way to start workers with custom
  arguments) to ``python -m serve_app.prestart <deployment>``, which loads what that
  deployment needs (:func:`preload`: the embedding model on a thread, the ingress's
  modules), then runs Ray's worker in the same process; the replica's constructor takes what
  was loaded (``serve_app.embeddings.preload.take``);
- as soon as the head's raylet is up (``ray start`` is still starting the rest), ``serve-app
  run`` asks it to prestart one such worker for each of them (``serve_app.cluster.
  prestart_workers``: Ray's ``PrestartWorkers``, of no job yet, with a keep-alive). When
  Serve's controller asks for the replica's worker, Ray leases the idle one with the same
  runtime environment instead of starting a process, and what it needs is loaded or nearly.

A deployment of these that scales to zero replicas keeps a *standby* worker (``--standby``):
a prestarted process that has imported Ray Serve and the deployment's code (with
SERVE_APP_STANDBY=libraries also torch and the tokenizer), but holds no model, so that idle
memory stays small. A replica woken from zero is leased it instead of starting a Python; every
replica of such a deployment then asks its raylet for the next standby (:func:`replenish`),
so one waits whenever the deployment goes back to zero. The ingress *wakes* the standby when a
request for the deployment finds no replica (:func:`wake`, a datagram to the standby's
abstract socket on the same node): the standby starts loading the model at once, while Serve's
controller decides to add the replica and Ray leases the standby to it (about half a second
here), and the replica's constructor takes what has loaded by then.

Nothing depends on it: every replica of these deployments preloads from its process start
(a worker node, a restart, a second replica, a scale-up from zero), and one that no
prestarted worker was leased to starts as before. Configs that give an application or these
deployments a runtime environment beyond environment variables are left as they are.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import threading
from typing import Any

# The deployments whose replicas load something first (:func:`preload`) and are prestarted
# when Serve starts one at deploy. The others run through this module too, as "replica"
# (nothing to load; without a role of their own they would inherit the build's).
PRELOADS = ("ingress", "embeddings")
# The role of the app's build task (Serve imports the app's ``import_path`` in a Ray task
# with the application's runtime environment): its worker is prestarted, importing the app.
BUILD = "build"
MODULE = "serve_app.prestart"  # this module, also when run as __main__
# Workers of a deployment that scales to zero: a prestarted one waits as a standby.
STANDBY = "--standby"
# How long the raylet keeps a prestarted worker while it is idle: at start, longer than
# Serve takes to ask for it; a standby, until the deployment next wakes.
KEEP_ALIVE_S = 120
STANDBY_KEEP_ALIVE_S = 30 * 24 * 3600
# What a standby of a role imports while it waits, by SERVE_APP_STANDBY (no model: it may
# wait for hours): Ray Serve and the deployment's code, or its libraries too (torch, ~480 MB).
STANDBY_MODULES = {
    "embeddings": {
        "serve": "serve_app.embeddings.deployment",
        "libraries": "serve_app.embeddings.runtime",
    }
}

STANDBY_MARK = "serve-app-standby-"  # the name of a standby's memfd, then its role
_mark: int | None = None
# What a standby of a role starts loading when woken (:func:`wake`): ``module:function``.
WAKE_LOADERS = {"embeddings": "serve_app.embeddings.preload:start_default"}
WAKE_MESSAGE = b"wake"
# What a woken standby of a role answers itself until Serve routes to its replica
# (serve_app/standby_answer.py): a module with ``answer`` (the standby's handler) and
# ``ask_standby`` (the ingress's call of it).
ANSWERS = {"embeddings": "serve_app.embeddings.preload"}
# A caller wakes the standbys of a role at most this often (a /proc scan each time).
WAKE_EVERY_S = 1.0
_last_wake: dict[str, float] = {}
_woken: dict[str, list[int]] = {}  # the processes the last wake of a role reached
# A replica of a deployment with a standby asks for the next one this long after its start
# (or when it stops, if sooner).
REPLENISH_DELAY_S = 1.0
_replenish_now = threading.Event()
_replenishing: threading.Thread | None = None

# Set by main(): this worker runs with --standby / was prestarted as a standby.
standby_role = False
standby_worker = False


def worker_command(role: str, standby: bool = False) -> str:
    """The ``py_executable`` of the workers of ``role`` (this Python, this module)."""
    flag = f" {STANDBY}" if standby else ""
    return f"{sys.executable} -m {MODULE}{flag} {role}"


def keep_alive_s(runtime_env: dict[str, Any]) -> int:
    """How long the raylet keeps a prestarted worker of ``runtime_env`` while it is idle."""
    command = str(runtime_env.get("py_executable", "")).split()
    return STANDBY_KEEP_ALIVE_S if STANDBY in command else KEEP_ALIVE_S


def replica_starts(deployment: Any) -> bool:
    """Whether Serve starts a replica of ``deployment`` (a config entry) at deploy."""
    auto = deployment.autoscaling_config  # Serve's DEFAULT.VALUE when not set
    if isinstance(auto, dict):
        return max(auto.get("initial_replicas") or 0, auto.get("min_replicas", 1) or 0) > 0
    if auto is not None and hasattr(auto, "min_replicas"):
        return max(auto.initial_replicas or 0, auto.min_replicas or 0) > 0
    replicas = deployment.num_replicas
    return not isinstance(replicas, int) or replicas > 0  # unset (one) or "auto"


def scales_to_zero(deployment: Any) -> bool:
    """Whether ``deployment`` (a config entry) may be left with no replica."""
    auto = deployment.autoscaling_config
    if isinstance(auto, dict):
        return auto.get("min_replicas", 1) == 0
    return auto is not None and getattr(auto, "min_replicas", 1) == 0


def mark(config: Any) -> list[dict[str, Any]]:
    """Run the build task and the replicas of ``config``'s applications (a
    ``ServeDeploySchema``, changed in place) through this module; the runtime environments
    to prestart one worker each for, in the order they are needed longest: the embeddings
    replica (the model), the build, the ingress. A deployment of :data:`PRELOADS` that scales
    to zero runs with :data:`STANDBY` (unless SERVE_APP_STANDBY is off), and one worker is
    prestarted for it also when it starts at zero (the standby of its first wake).
    Applications with a runtime environment of their own, and deployments with more than
    environment variables in theirs, are left as they are (they run as Ray would run them)."""
    from ray.serve._private.utils import override_runtime_envs_except_env_vars
    from ray.serve.schema import RayActorOptionsSchema

    from serve_app.settings import get_settings

    use_standby = get_settings().standby != "off"
    first: list[dict[str, Any]] = []
    then: list[dict[str, Any]] = []
    for app in config.applications:
        if app.runtime_env:
            continue
        app.runtime_env = {"py_executable": worker_command(BUILD)}
        then.append(app.runtime_env)
        for deployment in app.deployments:
            options = deployment.ray_actor_options or RayActorOptionsSchema()
            runtime_env = dict(options.runtime_env or {})
            if set(runtime_env) - {"env_vars"}:
                continue
            role = deployment.name if deployment.name in PRELOADS else "replica"
            standby = use_standby and role in STANDBY_MODULES and scales_to_zero(deployment)
            runtime_env["py_executable"] = worker_command(role, standby)
            options.runtime_env = runtime_env
            deployment.ray_actor_options = options
            if role in PRELOADS and (standby or replica_starts(deployment)):
                # what Serve gives the replica: the app's runtime env merged with its own
                merged = override_runtime_envs_except_env_vars(app.runtime_env, runtime_env)
                (first if role == "embeddings" else then).append(merged)
    return first + then


def background(target: Any, name: str) -> threading.Thread:
    """``target`` on a daemon thread, started."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _import(module: str) -> None:
    """Import ``module``; a failure is printed (the replica, or the build, imports it again
    and fails with its own error)."""
    try:
        importlib.import_module(module)
    except Exception as exc:
        print(f"serve_app.prestart: preloading {module} failed: {exc!r}", file=sys.stderr)


def preload(role: str, standby: bool = False) -> None:
    """Load what a worker of ``role`` needs before Ray's worker starts (the embedding model:
    while it starts). The model loads on a thread (:func:`background`); modules that Ray's worker
    imports too are imported here, on this thread, first: two threads importing the same
    module race (Ray's worker failed with "KeyError: 'pydantic.v1'" while the ingress's
    modules loaded on a thread, and with "module 'ray' has no attribute 'serve'" while Ray
    Serve did). The ingress and the build import their modules (the whole app, for the build)
    here; a ``standby`` worker loads no model, it may wait for hours: it imports what
    SERVE_APP_STANDBY says (:data:`STANDBY_MODULES`) and holds a memfd that names it
    (:func:`is_standby`)."""
    global _mark
    if standby and role in STANDBY_MODULES:
        from serve_app.settings import get_settings

        imports = get_settings().standby
        import ray.serve

        if imports in STANDBY_MODULES[role]:
            _import(STANDBY_MODULES[role][imports])
        _mark = os.memfd_create(f"{STANDBY_MARK}{role}")  # for is_standby, kept open
        if role in WAKE_LOADERS:
            listen_for_wake(role)
        if role in ANSWERS and get_settings().standby_answers:
            from serve_app import standby_answer

            standby_answer.listen(role, _resolve(f"{ANSWERS[role]}:answer"))
    elif role == "embeddings":
        from serve_app.embeddings import preload as embeddings

        # its settings (pydantic) on this thread; torch and the model on the loading one
        embeddings.start(embeddings.settings_kwargs(), embeddings.UNCLAIMED_EXIT_S)
    elif role in ("ingress", BUILD):
        import ray.serve  # noqa: F401

        _import("serve_app.ingress" if role == "ingress" else "serve_app.app")


def is_standby(pid: int, role: str) -> bool:
    """Whether process ``pid`` is an idle standby worker of ``role``: Ray names idle workers
    ``ray::IDLE`` (the title replaces the command line), and a standby holds a memfd named
    for its role (:func:`preload`)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if cmdline.read().split(b"\0")[0] != b"ray::IDLE":
                return False
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:  # it ended, or it is not ours to look at
        return False
    return any(link.startswith(f"/memfd:{STANDBY_MARK}{role} ") for link in links)


def wake_address(role: str, pid: int) -> bytes:
    """The abstract socket a standby of ``role`` in process ``pid`` listens on for a wake."""
    return f"\0{STANDBY_MARK}{role}-{pid}".encode()


def listen_for_wake(role: str) -> threading.Thread:
    """In a standby: wait on a thread for one wake (:func:`wake`), then start loading what a
    replica of ``role`` needs (:data:`WAKE_LOADERS`), which its constructor then takes."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(wake_address(role, os.getpid()))

    def run() -> None:
        with sock:
            while sock.recv(16) != WAKE_MESSAGE:
                continue
        print(
            f"serve_app.prestart: woken by a request; loading the {role} model",
            file=sys.stderr,
            flush=True,
        )
        try:
            _resolve(WAKE_LOADERS[role])()
        except Exception as exc:  # the replica loads its own
            print(f"serve_app.prestart: waking the {role} standby failed: {exc!r}", file=sys.stderr)

    return background(run, f"wake-{role}")


def standby_asks(role: str) -> Any:
    """The ingress's call of a woken standby of ``role`` (:data:`ANSWERS`), or None."""
    return _resolve(f"{ANSWERS[role]}:ask_standby") if role in ANSWERS else None


def _resolve(name: str) -> Any:
    """The function named ``module:function``."""
    module, function = name.split(":")
    return getattr(importlib.import_module(module), function)


def wake(role: str) -> int:
    """Wake the idle standby workers of ``role`` on this node (:func:`listen_for_wake`): a
    request found no replica of it. At most once per :data:`WAKE_EVERY_S`; how many were
    woken. A standby of another node is not reached: its replica then loads from its
    constructor, as without a wake."""
    import socket
    import time

    now = time.monotonic()
    if now - _last_wake.get(role, -WAKE_EVERY_S) < WAKE_EVERY_S:
        return 0
    _last_wake[role] = now
    pids = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        for entry in os.listdir("/proc"):
            if entry.isdigit() and is_standby(int(entry), role):
                try:
                    sock.sendto(WAKE_MESSAGE, wake_address(role, int(entry)))
                    pids.append(int(entry))
                except OSError:  # it stopped listening (woken already, or gone)
                    continue
    _woken[role] = pids
    return len(pids)


def woken(role: str, within_s: float) -> list[int]:
    """The processes that the last :func:`wake` of ``role`` reached, if it was at most
    ``within_s`` ago (else none)."""
    import time

    if time.monotonic() - _last_wake.get(role, -within_s) > within_s:
        return []
    return list(_woken.get(role, []))


def prestarted() -> bool:
    """Whether the raylet started this worker ahead of any lease (of no job: Ray passes the
    nil job ID, all ``f``), not for a replica that is waiting for it."""
    job = os.environ.get("RAY_JOB_ID", "")
    return bool(job) and set(job) == {"f"}


def replenish(wait_s: float = 60.0, delay_s: float = REPLENISH_DELAY_S) -> threading.Thread | None:
    """In a replica whose worker runs with :data:`STANDBY`: ask this node's raylet, on a
    thread, for a standby worker like this one (this replica's runtime environment), which
    the next replica of the deployment is leased (after a scale to zero, or a second one).
    It asks ``delay_s`` after the replica's start, or when the replica stops
    (:func:`replenish_now`), whichever comes first: the new worker's Python would share the
    cores with the replica's first answers. A failure is logged: the next replica then
    starts a process of its own."""
    if not standby_role:
        return None
    import ray

    node = ray._private.worker._global_node
    address = f"{node.node_ip_address}:{node.node_manager_port}"
    runtime_env = dict(ray.get_runtime_context().runtime_env)

    def run() -> None:
        from serve_app.cluster import prestart_workers
        from serve_app.logs import get_logger

        _replenish_now.wait(delay_s)
        try:
            prestart_workers(address, runtime_env, 1, STANDBY_KEEP_ALIVE_S, wait_s)
        except RuntimeError as exc:
            get_logger(__name__).warning("no standby worker for the next replica: %s", exc)

    global _replenishing
    _replenishing = background(run, "prestart-standby")
    return _replenishing


def replenish_now(timeout_s: float = 10.0) -> bool:
    """In a replica that is stopping (its deployment may be going to zero): ask for the next
    standby now if :func:`replenish` is still waiting, and wait until it has asked, at most
    ``timeout_s``. Whether nothing is left to ask."""
    _replenish_now.set()
    if _replenishing is None:
        return True
    _replenishing.join(timeout_s)
    return not _replenishing.is_alive()


def main() -> None:
    """``python -m serve_app.prestart [--standby] ROLE DEFAULT_WORKER.py ARGS...``: preload,
    then run Ray's worker (``default_worker.py``, as Ray would have) in this process."""
    args = sys.argv[1:]
    standby = bool(args) and args[0] == STANDBY
    args = args[1:] if standby else args
    if len(args) < 2:
        raise SystemExit(f"usage: python -m {MODULE} [{STANDBY}] ROLE DEFAULT_WORKER.py ARGS...")
    role, worker_path = args[0], args[1]
    # on the module the replica imports (run with -m, this one is __main__)
    this = importlib.import_module(MODULE)
    this.standby_role = standby
    this.standby_worker = standby and prestarted()
    preload(role, this.standby_worker)
    sys.argv = args[1:]
    runpy.run_path(worker_path, run_name="__main__")


if __name__ == "__main__":
    main()
