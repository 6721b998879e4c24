"""CLI checks that need no running server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from serve_app.cli.main import main
from serve_app.settings import Settings, is_loopback
from serve_app.startup import StartupError
from serve_app.startup.config import load_config
from serve_app.startup.supervisor import check_bind

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"])
def test_loopback_hosts(host: str):
    assert is_loopback(host)
    check_bind(host, Settings(api_token=None))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "fdaa::3"])
def test_refuses_public_bind_without_token(host: str):
    assert not is_loopback(host)
    with pytest.raises(StartupError, match="SERVE_APP_API_TOKEN"):
        check_bind(host, Settings(api_token=None))
    check_bind(host, Settings(api_token="s3cret"))


def test_run_exits_with_a_clear_message(capsys, monkeypatch):
    monkeypatch.delenv("SERVE_APP_API_TOKEN", raising=False)
    from serve_app import settings as settings_module

    settings_module.get_settings.cache_clear()
    try:
        assert main(["run", "--host", "0.0.0.0"]) == 2
    finally:
        settings_module.get_settings.cache_clear()
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SERVE_APP_PORT": "0"}, "SERVE_APP_PORT: Input should be greater than or equal to 1"),
        (
            {
                "SERVE_APP_EMBEDDINGS_INGRESS_IN_FLIGHT": "2",
                "SERVE_APP_EMBEDDINGS_INGRESS_RUNNING": "3",
            },
            "SERVE_APP_EMBEDDINGS_INGRESS_RUNNING (3) must not exceed",
        ),
    ],
)
def test_invalid_settings_are_named_without_a_traceback(env, expected, capsys, monkeypatch):
    from serve_app import settings as settings_module

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings_module.get_settings.cache_clear()
    try:
        assert main(["run"]) == 2
    finally:
        settings_module.get_settings.cache_clear()
    err = capsys.readouterr().err
    assert err.startswith("serve-app: invalid settings:")
    assert expected in err and "Traceback" not in err


def test_required_ocr_weights_missing_refuses_to_start(tmp_path: Path, capsys, monkeypatch):
    from serve_app import settings as settings_module

    monkeypatch.setenv("SERVE_APP_OCR_REQUIRE_WEIGHTS", "true")
    monkeypatch.setenv("SERVE_APP_OCR_WEIGHTS_DIR", str(tmp_path))
    settings_module.get_settings.cache_clear()
    try:
        assert main(["run", "--port", "8123", "--config", "deployments/gpu.yaml"]) == 2
    finally:
        settings_module.get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "docTR weights are required" in err
    assert "db_mobilenet_v3_large, crnn_mobilenet_v3_small" in err and str(tmp_path) in err
    assert "serve-app weights download" in err


@pytest.mark.parametrize(
    ("host", "proxy", "bound"),
    [
        ("::", "haproxy", "0::0"),  # Serve would hand HAProxy "*": IPv4 only
        ("[::]", "haproxy", "0::0"),
        ("::", "python", "::"),  # uvicorn binds "::" dual-stack already
        ("0.0.0.0", "haproxy", "0.0.0.0"),
        ("127.0.0.1", "haproxy", "127.0.0.1"),
    ],
)
def test_bind_host_listens_on_ipv4_and_ipv6_for_any(host, proxy, bound):
    from serve_app.startup.bridge.sockets import bind_host

    assert bind_host(host, proxy) == bound


def test_host_port_helpers_bracket_ipv6():
    from serve_app.net import join_host_port, resolve_address, split_host_port

    assert join_host_port("fdaa::3", 6380) == "[fdaa::3]:6380"
    assert join_host_port("10.0.0.5", 6380) == "10.0.0.5:6380"
    assert split_host_port("[fdaa::3]:6380") == ("fdaa::3", 6380)
    assert resolve_address("localhost:6380") in ("[::1]:6380", "127.0.0.1:6380")
    for bad in ("fdaa::3", "head", "head:port"):
        with pytest.raises(ValueError):
            split_host_port(bad)
    with pytest.raises(ValueError, match="cannot resolve"):
        resolve_address("no-such-head.invalid:6380")


def test_ray_ports_become_ray_start_flags():
    from serve_app.cluster import RayWorker, node_port_args

    settings = Settings()
    flags = node_port_args(settings)
    assert "--node-manager-port=6382" in flags and "--max-worker-port=10199" in flags
    assert node_port_args(None) == []  # a private head: Ray picks
    unset = node_port_args(Settings(ray_node_manager_port=0))
    assert not any(flag.startswith("--node-manager-port") for flag in unset)
    cmd = RayWorker("[fdaa::3]:6380", node_ip="fdaa::4", num_cpus=2, settings=settings).command()
    assert cmd[1] == "start"
    assert "--address=[fdaa::3]:6380" in cmd and "--block" in cmd
    assert "--node-ip-address=fdaa::4" in cmd and "--num-cpus=2" in cmd


def test_haproxy_servers_on_one_machine_get_their_own_internal_ports(monkeypatch):
    from serve_app.proxy import configure_proxy

    for name in ("RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    configure_proxy("haproxy")
    http = os.environ["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"]
    assert http != "8500" and http != os.environ["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"]


def test_join_needs_a_head_address(capsys, monkeypatch):
    monkeypatch.delenv("SERVE_APP_RAY_HEAD_ADDRESS", raising=False)
    from serve_app.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["join"]) == 2
        assert "no head address" in capsys.readouterr().err
        assert main(["join", "no-such-head.invalid:6380"]) == 2
        assert "cannot resolve the Ray head" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


class _Process:
    """Stands in for the Ray head and the embedded PostgreSQL that `serve-app run` starts."""

    def __init__(self) -> None:
        self.stops = 0

    def supervise(self) -> None:
        pass

    def launch(self) -> None:
        self.launched = True

    def wait(self, stop=None) -> str | None:
        if self.signal_while_starting is not None:
            self.signal_while_starting()  # SIGTERM while `ray start` runs
        return None if stop is not None and stop.is_set() else "127.0.0.1:1"

    def stop(self) -> None:
        self.stops += 1

    def configure(self, components: dict[str, str], store: bool) -> None:
        self.configured = (components, store)

    def wait_loaded(self, timeout_s: float) -> bool:  # the bridge's: the head not launched yet
        self.loaded_before_ray = not self.head.launched
        return True

    launched = False
    signal_while_starting = None
    head: _Process


def stand_in_start(
    monkeypatch, supervisor, head: _Process, database: _Process, bridge: _Process
) -> None:
    """`serve-app run`'s start with stand-ins for the head, the database and the bridge (no
    token, no proxy setup, no OCR weights, no orphaned HAProxy scan)."""
    monkeypatch.setattr(supervisor, "use_cluster_token", lambda settings: None)
    monkeypatch.setattr(supervisor, "configure_proxy", lambda kind, share_port=False: None)
    monkeypatch.setattr(supervisor, "start_bridge", lambda settings, host, port, early: bridge)
    monkeypatch.setattr(supervisor, "prepare_ocr", lambda config, settings: None)
    monkeypatch.setattr(supervisor, "uses_store", lambda config: True)
    monkeypatch.setattr(supervisor, "prepare_database", lambda settings, dimensions: database)
    model = SimpleNamespace(dimensions=384)
    monkeypatch.setattr(supervisor, "prepare_embeddings", lambda settings: model)
    monkeypatch.setattr(supervisor, "stop_orphaned_haproxy", lambda port: [])
    monkeypatch.setattr(supervisor, "new_head", lambda settings, head_node: head)


def test_run_stops_ray_and_postgres_when_shutdown_fails(tmp_path: Path, monkeypatch, capsys):
    """Ray's daemons and the embedded PostgreSQL run in process sessions of their own: a
    failure while draining or stopping Serve must not leave them running, nor the bridge."""
    import signal

    from serve_app.startup import supervisor

    head, database, bridge = _Process(), _Process(), _Process()
    bridge.head = head
    # What `run` writes to the environment stays in this test (no token, no proxy setup).
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ENABLE_AUTO_CONNECT", "0")
    monkeypatch.setenv("SERVE_APP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")  # an operator's own value
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's handlers
    stand_in_start(monkeypatch, supervisor, head, database, bridge)
    monkeypatch.setattr(supervisor, "connect_ray", lambda address: None)

    def deploy(config):
        raise RuntimeError("deploy failed")

    def disconnect_ray():
        raise RuntimeError("leaving the cluster failed")

    monkeypatch.setattr(supervisor, "deploy", deploy)
    monkeypatch.setattr(supervisor, "drain", lambda config, timeout_s: None)
    monkeypatch.setattr(supervisor, "disconnect_ray", disconnect_ray)
    with pytest.raises(RuntimeError, match="leaving the cluster failed"):
        main(["run", "--port", "18999"])
    assert (head.stops, database.stops, bridge.stops) == (1, 1, 1)
    # the bridge was told the config's other models (held for Serve), and that it has a
    # store, and Ray was launched only once the bridge had its model
    assert bridge.configured == (["ocr", "solver"], True)
    assert bridge.loaded_before_ray is True and head.launched is True
    assert "stopped (" in capsys.readouterr().out.rstrip().splitlines()[-1]
    # the processes it started inherit the allocator's tuning (an operator's value wins)
    assert os.environ["MALLOC_ARENA_MAX"] == "2"
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == "65536"


def test_a_signal_while_ray_starts_stops_at_once_and_exits_0(tmp_path: Path, monkeypatch, capsys):
    """SIGTERM while ``ray start`` runs (podman stop, Fly's stop of a machine still
    waking): serve-app does not wait for Ray to finish starting, deploys nothing, stops the
    head, the bridge and PostgreSQL, and exits 0."""
    import signal

    from serve_app.startup import supervisor

    head, database, bridge = _Process(), _Process(), _Process()
    bridge.head = head
    handlers: dict[int, object] = {}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ENABLE_AUTO_CONNECT", "0")
    monkeypatch.setenv("SERVE_APP_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(
        signal, "signal", lambda signum, handler: handlers.update({signum: handler})
    )
    head.signal_while_starting = lambda: handlers[signal.SIGTERM](signal.SIGTERM, None)
    stand_in_start(monkeypatch, supervisor, head, database, bridge)

    def never(*args, **kwargs):
        raise AssertionError("nothing connects or deploys after a signal while Ray starts")

    monkeypatch.setattr(supervisor, "connect_ray", never)
    monkeypatch.setattr(supervisor, "deploy", never)
    assert main(["run", "--port", "18998"]) == 0
    assert (head.stops, database.stops, bridge.stops) == (1, 1, 1)
    assert "stopping while starting" in capsys.readouterr().out


def test_head_wait_returns_when_stopped(monkeypatch):
    """LocalRayHead.wait(stop=...) gives up on a ``ray start`` still running as soon as the
    event is set (here a real process that would run for a minute), and the head's stop
    ends it."""
    import subprocess
    import threading
    import time

    from serve_app import cluster

    monkeypatch.setattr(
        cluster, "_ray_start_command", lambda: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    head = cluster.LocalRayHead()
    head.launch()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    assert head.wait(timeout_s=30, stop=stop) is None
    assert time.monotonic() - began < 5
    proc = head._proc
    head.stop()
    assert proc.wait(timeout=10) is not None
    head2 = cluster.LocalRayHead()
    head2.launch()
    with pytest.raises(subprocess.TimeoutExpired):
        head2.wait(timeout_s=0.3)
    head2.stop()


def test_drain_failure_is_reported_not_raised(monkeypatch, capsys):
    """An unexpected error while draining (here: a handle Serve refuses to use from this
    thread) is printed, and shutdown goes on."""
    from ray import serve

    from serve_app.startup import serve_control

    class Handle:
        is_initialized = False

        def _init(self, **options):
            assert options == {"_run_router_in_separate_loop": True}
            raise RuntimeError("No event loop running")

    monkeypatch.setattr(serve, "get_deployment_handle", lambda name, app_name: Handle())
    config = load_config(ROOT / "deployments" / "local.yaml", "127.0.0.1", 8000)
    serve_control.drain(config, timeout_s=1)
    out = capsys.readouterr().out
    assert "drain failed for grocery: RuntimeError: No event loop running" in out


def test_no_bridge_without_haproxy_or_when_turned_off(monkeypatch):
    """The bridge shares the port with HAProxy only: SERVE_APP_PROXY=python and
    SERVE_APP_BRIDGE=false start none (and no process)."""
    from serve_app.settings import Settings
    from serve_app.startup import supervisor

    started, stopped = [], []
    monkeypatch.setattr(supervisor.BridgeProcess, "spawn", lambda self: started.append(self))
    monkeypatch.setattr(supervisor.BridgeProcess, "wait_listening", lambda self: None)
    monkeypatch.setattr(supervisor.BridgeProcess, "stop", lambda self: stopped.append(self))
    assert supervisor.start_bridge(Settings(proxy="python"), "127.0.0.1", 8000) is None
    assert supervisor.start_bridge(Settings(bridge=False), "127.0.0.1", 8000) is None
    assert started == []
    assert supervisor.start_bridge(Settings(), "127.0.0.1", 8000) is not None
    assert len(started) == 1
    # one that serve-app spawned before reading its settings is stopped when they say no
    early = supervisor.BridgeProcess()
    assert supervisor.start_bridge(Settings(bridge=False), "127.0.0.1", 8000, early) is None
    assert stopped == [early]
    assert supervisor.start_bridge(Settings(), "127.0.0.1", 8000, early) is early
    assert len(started) == 1  # taken as it is, not spawned again
