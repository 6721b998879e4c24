"""The autoscaler: its decision rule (hysteresis, cooldowns, bounds) and the control loop against
the Machines API stand-in (the metrics it reads from the real server:
tests/e2e/fly/test_autoscale.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serve_app.cli.main import main
from serve_app.fly.autoscale import (
    Autoscaler,
    MachineLoad,
    Observation,
    Policy,
)

POLICY = Policy(
    min_machines=1,
    max_machines=4,
    target_inflight=10,
    down_ratio=0.5,
    down_after_s=60,
    up_cooldown_s=20,
    cooldown_s=100,
    pending_after_s=30,
)


def obs(started: int, *loads: float, pending: int = 0, unreachable: int = 0) -> Observation:
    machines = [MachineLoad(load, 0, 0) for load in loads]
    if pending and machines:
        machines[0] = MachineLoad(loads[0], 0, pending)
    return Observation(started, machines, unreachable)


def test_scales_up_at_once_to_what_the_load_needs_within_bounds():
    scaler = Autoscaler(POLICY)
    decision = scaler.decide(0, obs(1, 25))
    assert (decision.current, decision.target) == (1, 3)
    assert decision.reason.startswith("up:")
    # a bigger burst right after: held by the up-cooldown, then bounded by --max
    assert scaler.decide(5, obs(3, 80, 80)).target == 3
    decision = scaler.decide(25, obs(3, 80, 80))
    assert decision.target == 4 and "bounded" in decision.reason


def test_scales_down_one_at_a_time_only_after_sustained_low_load_and_cooldown():
    scaler = Autoscaler(POLICY)
    assert scaler.decide(0, obs(1, 35)).target == 4  # last change at t=0
    # load fits in 3 machines at half the target (< 15): wait down_after_s, then cooldown
    assert scaler.decide(10, obs(4, 3, 3, 3, 3)).target == 4
    assert scaler.decide(69, obs(4, 3, 3, 3, 3)).target == 4  # low for 59 s
    assert scaler.decide(75, obs(4, 3, 3, 3, 3)).target == 4  # low 65 s, cooldown until 100
    decision = scaler.decide(101, obs(4, 3, 3, 3, 3))
    assert decision.target == 3 and decision.reason.startswith("down:")
    # the low-load clock restarts after a change, and a spike resets it (hysteresis)
    assert scaler.decide(170, obs(3, 2, 2, 2)).target == 3
    assert scaler.decide(200, obs(3, 12, 1, 1)).target == 3  # 14 >= (3-1)*10*0.5=10
    assert scaler.decide(230, obs(3, 2, 2, 2)).target == 3  # low again, only since 230
    assert scaler.decide(300, obs(3, 2, 2, 2)).target == 2


def test_between_the_thresholds_nothing_changes():
    scaler = Autoscaler(POLICY)
    for t in range(0, 1000, 50):  # 2 machines, load 12: above 5, below 20
        assert scaler.decide(t, obs(2, 6, 6)).target == 2


def test_unplaced_replicas_add_a_machine_after_a_while():
    scaler = Autoscaler(POLICY)
    assert scaler.decide(0, obs(1, 1, pending=1)).target == 1
    assert scaler.decide(20, obs(1, 1, pending=1)).target == 1
    decision = scaler.decide(31, obs(1, 1, pending=1))
    assert decision.target == 2 and "unplaced" in decision.reason
    assert scaler.decide(40, obs(2, 1, 1)).target == 2  # placed: no more pending clock


def test_missing_metrics_never_scale_down_and_min_is_kept():
    scaler = Autoscaler(POLICY)
    assert scaler.decide(0, obs(3)).target == 3  # nobody answered: hold
    for t in (100, 200, 300):  # one machine unreachable: the low load may be a blind spot
        assert scaler.decide(t, obs(3, 0, 0, unreachable=1)).target == 3
    assert Autoscaler(POLICY).decide(0, obs(0)).target == 1  # below --min
    with pytest.raises(ValueError):
        Policy(min_machines=3, max_machines=2)


class Metrics:
    """A /metrics endpoint whose text the test sets (what a loaded server would show)."""

    def __init__(self) -> None:
        self.text = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    yield m
    m.server.shutdown()


def server_text(inflight: int, starting: int = 0) -> str:
    return (
        "# TYPE serve_app_http_inflight gauge\n"
        f"serve_app_http_inflight {inflight}\n"
        "# TYPE serve_app_model_inflight gauge\n"
        f'serve_app_model_inflight{{model="embeddings"}} {inflight}\n'
        "# TYPE serve_app_replicas gauge\n"
        f'serve_app_replicas{{deployment="embeddings",state="RUNNING"}} 1\n'
        f'serve_app_replicas{{deployment="embeddings",state="STARTING"}} {starting}\n'
    )


def test_autoscale_starts_and_stops_machines_from_metrics(fly_api, metrics, capsys):
    first = fly_api.add_machine()
    spare = [fly_api.add_machine(state="stopped") for _ in range(2)]
    metrics.text = server_text(inflight=25)
    args = ["fly", "autoscale", "--rounds", "1", "--interval", "0", "--metrics-url", metrics.url]
    args += ["--target-inflight", "10", "--max", "3"]

    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[dry-run] machines started 1/3, target 3: up: load 25" in out
    assert fly_api.count("POST", r"/start$") == 0  # a dry run changes nothing

    assert main(args) == 0
    assert all(fly_api.states()[m] == "started" for m in [first, *spare])

    # idle: with --down-after 0 and --cooldown 0, one machine stops per round, newest first
    metrics.text = server_text(inflight=0)
    assert main([*args[:3], "2", *args[4:], "--down-after", "0", "--cooldown", "0"]) == 0
    assert fly_api.states()[first] == "started"
    assert sorted(fly_api.states().values()) == ["started", "stopped", "stopped"]
    assert fly_api.leases == {}
