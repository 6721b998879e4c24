"""serve_app.prestart: which workers run through it, which are prestarted, and the worker
entry point itself (a real Python process running a stand-in for Ray's default_worker.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ray.serve._private.utils import override_runtime_envs_except_env_vars

from serve_app import prestart
from serve_app.cli.serve_config import load_config
from tests.helpers.standby import start_standby

ROOT = Path(__file__).resolve().parents[2]


def config(name: str = "local"):
    return load_config(ROOT / "deployments" / f"{name}.yaml", "127.0.0.1", 8000)


def role(env: dict) -> str:
    command = env["py_executable"].split()
    assert command[:3] == [sys.executable, "-m", "serve_app.prestart"], command
    return command[-1]


def standby(env: dict) -> bool:
    return prestart.STANDBY in env["py_executable"].split()


@pytest.mark.parametrize("name", ["local", "fly", "gpu", "local-scale-to-zero"])
def test_every_worker_of_the_app_runs_through_prestart(name: str):
    cfg = config(name)
    envs = prestart.mark(cfg)
    app = cfg.applications[0]
    assert role(app.runtime_env) == prestart.BUILD  # the build task's worker
    roles = {d.name: role(d.ray_actor_options.runtime_env) for d in app.deployments}
    assert roles == {
        "ingress": "ingress",
        "embeddings": "embeddings",
        "ocr": "replica",
        "solver": "replica",
    }
    # prestarted: the model first, then the build and the ingress; OCR and the solver start
    # at zero replicas in every shipped config, so no worker waits for them
    assert [role(env) for env in envs] == ["embeddings", prestart.BUILD, "ingress"]
    # embeddings that scale to zero keep a standby worker (a long keep-alive); none else
    zero = name == "local-scale-to-zero"
    assert [standby(env) for env in envs] == [zero, False, False]
    assert [prestart.keep_alive_s(env) for env in envs] == [
        prestart.STANDBY_KEEP_ALIVE_S if zero else prestart.KEEP_ALIVE_S,
        prestart.KEEP_ALIVE_S,
        prestart.KEEP_ALIVE_S,
    ]


def test_prestarted_runtime_env_is_the_one_serve_gives_the_replica():
    """Ray leases an idle worker only to a request with the same runtime env (its hash):
    the env prestarted must be Serve's merge of the app's and the deployment's."""
    cfg = config()
    envs = prestart.mark(cfg)
    app = cfg.applications[0]
    embeddings = next(d for d in app.deployments if d.name == "embeddings")
    merged = override_runtime_envs_except_env_vars(
        app.runtime_env, embeddings.ray_actor_options.runtime_env
    )
    assert envs[0] == merged


def test_config_with_its_own_runtime_env_is_left_alone():
    cfg = config()
    app = cfg.applications[0]
    app.runtime_env = {"pip": ["rich"]}
    assert prestart.mark(cfg) == []
    assert app.runtime_env == {"pip": ["rich"]}
    assert all(
        "py_executable" not in (d.ray_actor_options.runtime_env or {}) for d in app.deployments
    )


def test_deployment_with_packages_keeps_its_runtime_env():
    cfg = config()
    app = cfg.applications[0]
    embeddings = next(d for d in app.deployments if d.name == "embeddings")
    embeddings.ray_actor_options.runtime_env = {"pip": ["rich"]}
    envs = prestart.mark(cfg)
    assert embeddings.ray_actor_options.runtime_env == {"pip": ["rich"]}
    assert [role(env) for env in envs] == [prestart.BUILD, "ingress"]


def test_environment_variables_are_kept():
    cfg = config()
    app = cfg.applications[0]
    ingress = next(d for d in app.deployments if d.name == "ingress")
    ingress.ray_actor_options.runtime_env = {"env_vars": {"X": "1"}}
    envs = prestart.mark(cfg)
    assert ingress.ray_actor_options.runtime_env["env_vars"] == {"X": "1"}
    assert envs[-1]["env_vars"] == {"X": "1"} and role(envs[-1]) == "ingress"


def test_replica_starts():
    from ray.serve.schema import DeploymentSchema

    def starts(**fields) -> bool:
        return prestart.replica_starts(DeploymentSchema(name="d", **fields))

    assert starts()  # Serve's default: one replica
    assert starts(num_replicas=2)
    assert starts(num_replicas="auto")
    assert not starts(autoscaling_config={"min_replicas": 0, "max_replicas": 2})
    assert starts(autoscaling_config={"min_replicas": 0, "initial_replicas": 1, "max_replicas": 2})
    assert starts(autoscaling_config={"min_replicas": 1, "max_replicas": 2})


def test_scales_to_zero():
    from ray.serve.schema import DeploymentSchema

    def zero(**fields) -> bool:
        return prestart.scales_to_zero(DeploymentSchema(name="d", **fields))

    assert not zero()
    assert not zero(num_replicas=1)
    assert zero(autoscaling_config={"min_replicas": 0, "initial_replicas": 1, "max_replicas": 2})
    assert not zero(autoscaling_config={"min_replicas": 1, "max_replicas": 2})


def test_a_deployment_at_zero_gets_a_standby_worker_even_without_initial_replicas():
    cfg = config("local-scale-to-zero")
    embeddings = next(d for d in cfg.applications[0].deployments if d.name == "embeddings")
    embeddings.autoscaling_config["initial_replicas"] = 0
    envs = prestart.mark(cfg)
    assert standby(envs[0]) and role(envs[0]) == "embeddings"


STANDBY_PROBE = (  # a stand-in for Ray's worker: what did prestart start loading?
    "import sys, threading\n"
    "import serve_app.prestart as p\n"
    "from serve_app.embeddings import preload\n"
    "if preload._preload is not None:\n"
    "    preload._preload.loaded.wait(180)\n"
    "for t in threading.enumerate():\n"
    "    if t.name == 'preload-embeddings' and preload._preload is None:\n"
    "        t.join(180)\n"
    "print('standby', p.standby_role, p.standby_worker)\n"
    "print('deployment', 'serve_app.embeddings.deployment' in sys.modules)\n"
    "print('torch', 'torch' in sys.modules)\n"
    "print('model preloaded', preload._preload is not None)\n"
)


@pytest.mark.parametrize(
    ("job", "imports", "expected"),
    [
        # prestarted (Ray passes the nil job): Ray Serve and the deployment's code, no torch
        (
            "ffffffff",
            "serve",
            ("standby True True", "deployment True", "torch False", "model preloaded False"),
        ),
        # ... or the libraries too (SERVE_APP_STANDBY=libraries), still no model
        ("ffffffff", "libraries", ("standby True True", "torch True", "model preloaded False")),
        # started for a waiting replica: the model, as any embeddings worker
        ("01000000", "serve", ("standby True False", "model preloaded True")),
    ],
)
def test_standby_worker_loads_no_model(tmp_path: Path, job, imports, expected):
    worker = tmp_path / "default_worker.py"
    worker.write_text(STANDBY_PROBE)
    out = subprocess.run(
        [sys.executable, "-m", "serve_app.prestart", prestart.STANDBY, "embeddings", str(worker)],
        cwd=ROOT,
        env={**os.environ, "RAY_JOB_ID": job, "SERVE_APP_STANDBY": imports},
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    ).stdout
    for line in expected:
        assert line in out, out


def test_standby_off_keeps_no_worker_for_a_deployment_at_zero(monkeypatch):
    from serve_app.settings import get_settings

    monkeypatch.setenv("SERVE_APP_STANDBY", "off")
    get_settings.cache_clear()
    try:
        envs = prestart.mark(config("local-scale-to-zero"))
    finally:
        get_settings.cache_clear()
    # the initial replica's worker is prestarted, for the start only (no standby)
    assert [role(env) for env in envs] == ["embeddings", prestart.BUILD, "ingress"]
    assert not any(standby(env) for env in envs)
    assert prestart.keep_alive_s(envs[0]) == prestart.KEEP_ALIVE_S


def test_is_standby_finds_an_idle_worker_by_its_title_and_mark():
    """A stand-in standby: Ray's idle title (set as Ray's worker sets it) and the
    memfd that prestart opens for a standby of its role."""
    probe = (
        "import os, sys\n"
        "from ray._raylet import setproctitle\n"
        "from serve_app import prestart\n"
        "fd = os.memfd_create(prestart.STANDBY_MARK + 'embeddings')\n"
        "setproctitle(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    for title, expected in (("ray::IDLE", True), ("ray::ServeReplica", False)):
        proc = subprocess.Popen(
            [sys.executable, "-c", probe, title],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout.readline() == "ready\n"
            assert prestart.is_standby(proc.pid, "embeddings") is expected
            assert prestart.is_standby(proc.pid, "ocr") is False
        finally:
            proc.kill()
            proc.wait()
    assert prestart.is_standby(os.getpid(), "embeddings") is False


WAKE_PROBE = (
    "import sys, time\n"
    "from ray._raylet import setproctitle\n"
    "from serve_app.embeddings import preload\n"
    "setproctitle('ray::IDLE')\n"  # as Ray's worker titles an idle worker
    "print('ready', flush=True)\n"
    "deadline = time.monotonic() + 180\n"
    "while preload._preload is None and time.monotonic() < deadline:\n"
    "    time.sleep(0.02)\n"
    "print('woken', preload._preload is not None, flush=True)\n"
    "runtime = preload.take(preload.settings_kwargs())\n"
    "print('taken', preload.outcome(), runtime is not None, flush=True)\n"
)


def test_a_woken_standby_loads_the_model_for_its_replica(tmp_path: Path, monkeypatch):
    """A real standby worker process (prestarted: the nil job) waits with no model; a wake
    (what the ingress sends when a request finds no replica) starts the load, and the
    replica's constructor (``preload.take``) gets that model."""
    proc = start_standby(tmp_path, WAKE_PROBE)
    try:
        assert proc.stdout.readline() == "ready\n"
        assert prestart.is_standby(proc.pid, "embeddings")
        monkeypatch.setattr(prestart, "_last_wake", {})
        assert prestart.wake("ocr") == 0  # a role it is no standby of
        assert prestart.wake("embeddings") >= 1
        assert prestart.wake("embeddings") == 0  # at most once a second: a /proc scan each
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
        proc.wait()
    assert "woken True" in out and "taken taken True" in out, (out, err)
    assert "woken by a request; loading the embeddings model" in err


def test_a_standby_ignores_other_datagrams(tmp_path: Path):
    """Only the wake message starts a load (anything else on the socket is skipped)."""
    import socket

    proc = start_standby(tmp_path, WAKE_PROBE.replace("+ 180", "+ 3"), stderr=False)
    try:
        assert proc.stdout.readline() == "ready\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"hello", prestart.wake_address("embeddings", proc.pid))
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert "woken False" in out, out


def test_replenish_is_for_standby_roles_only():
    assert not prestart.standby_role  # this process is no Ray worker
    assert prestart.replenish() is None
    # a stopping replica of any deployment may call it: nothing to ask here
    assert prestart.replenish_now(timeout_s=0.1) is True


def test_worker_entry_preloads_then_runs_rays_worker_with_its_arguments(tmp_path: Path):
    """`python -m serve_app.prestart build default_worker.py ARGS` runs the worker script as
    __main__ with its own argv, the app's modules imported first."""
    worker = tmp_path / "default_worker.py"
    worker.write_text(
        "import sys\n"
        "assert __name__ == '__main__'\n"
        "print('argv', sys.argv)\n"
        "print('app imported', 'serve_app.app' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "serve_app.prestart", "build", str(worker), "--flag=1", "x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    assert f"argv ['{worker}', '--flag=1', 'x']" in out
    assert "app imported True" in out


def test_worker_entry_without_a_worker_script_says_how_to_call_it():
    done = subprocess.run(
        [sys.executable, "-m", "serve_app.prestart", "ingress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "usage: python -m serve_app.prestart [--standby] ROLE DEFAULT_WORKER.py" in done.stderr


def test_prestart_without_a_raylet_names_it_and_grpcs_status():
    from serve_app.cluster import free_port, prestart_workers

    address = f"127.0.0.1:{free_port()}"  # nobody listens
    with pytest.raises(RuntimeError, match=rf"the raylet at {address} did not prestart workers: "):
        prestart_workers(address, {}, 1, keep_alive_s=1, wait_s=0.5)
