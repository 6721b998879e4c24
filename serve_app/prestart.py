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

Nothing depends on it: every replica of these deployments preloads from its process start
(a worker node, a restart, a second replica, a scale-up from zero), and one that no
prestarted worker was leased to starts as before. Configs that give an application or these
deployments a runtime environment beyond environment variables are left as they are.
"""

from __future__ import annotations

import importlib
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


def worker_command(role: str) -> str:
    """The ``py_executable`` of the workers of ``role`` (this Python, this module)."""
    return f"{sys.executable} -m {MODULE} {role}"


def replica_starts(deployment: Any) -> bool:
    """Whether Serve starts a replica of ``deployment`` (a config entry) at deploy."""
    auto = deployment.autoscaling_config  # Serve's DEFAULT.VALUE when not set
    if isinstance(auto, dict):
        return max(auto.get("initial_replicas") or 0, auto.get("min_replicas", 1) or 0) > 0
    if auto is not None and hasattr(auto, "min_replicas"):
        return max(auto.initial_replicas or 0, auto.min_replicas or 0) > 0
    replicas = deployment.num_replicas
    return not isinstance(replicas, int) or replicas > 0  # unset (one) or "auto"


def mark(config: Any) -> list[dict[str, Any]]:
    """Run the build task and the replicas of ``config``'s applications (a
    ``ServeDeploySchema``, changed in place) through this module; the runtime environments
    to prestart one worker each for, in the order they are needed longest: the embeddings
    replica (the model), the build, the ingress. Applications with a runtime environment of
    their own, and deployments with more than environment variables in theirs, are left as
    they are (they run as Ray would run them)."""
    from ray.serve._private.utils import override_runtime_envs_except_env_vars
    from ray.serve.schema import RayActorOptionsSchema

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
            runtime_env["py_executable"] = worker_command(role)
            options.runtime_env = runtime_env
            deployment.ray_actor_options = options
            if role in PRELOADS and replica_starts(deployment):
                # what Serve gives the replica: the app's runtime env merged with its own
                merged = override_runtime_envs_except_env_vars(app.runtime_env, runtime_env)
                (first if role == "embeddings" else then).append(merged)
    return first + then


def background(target: Any, name: str) -> threading.Thread:
    """``target`` on a daemon thread, started."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _import(module: str) -> Any:
    def run() -> None:
        try:
            importlib.import_module(module)
        except Exception as exc:  # the replica (or the build) imports it again and fails
            print(f"serve_app.prestart: preloading {module} failed: {exc!r}", file=sys.stderr)

    return run


def preload(role: str) -> None:
    """Start loading what a worker of ``role`` needs, on a thread (:func:`background`)
    while Ray's worker starts: the embedding model, or the modules of the ingress or of the
    whole app (for the build), after Ray itself, which Ray's worker imports first (one
    thread imports Ray, not two at once)."""
    if role == "embeddings":
        from serve_app.embeddings import preload as embeddings

        embeddings.start(embeddings.settings_kwargs(), embeddings.UNCLAIMED_EXIT_S)
    elif role in ("ingress", BUILD):
        import ray  # noqa: F401

        module = "serve_app.ingress" if role == "ingress" else "serve_app.app"
        background(_import(module), f"preload-{role}")


def main() -> None:
    """``python -m serve_app.prestart ROLE DEFAULT_WORKER.py ARGS...``: preload, then run
    Ray's worker (``default_worker.py``, as Ray would have) in this process."""
    if len(sys.argv) < 3:
        raise SystemExit(f"usage: python -m {MODULE} ROLE DEFAULT_WORKER.py ARGS...")
    role, worker_path = sys.argv[1], sys.argv[2]
    preload(role)
    sys.argv = sys.argv[2:]
    runpy.run_path(worker_path, run_name="__main__")


if __name__ == "__main__":
    main()
