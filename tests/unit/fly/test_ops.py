"""`serve-app fly ...` against the Machines API stand-in: retries, leases, capacity, waits."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from serve_app.cli.main import main
from serve_app.fly.api import FlyApiError, InsufficientCapacity, MachinesClient, RetryPolicy
from serve_app.fly.ops import OpsError, app_name
from tests.helpers.fly_standin import APP, FLY_TOKEN


def fly(*args: str) -> int:
    return main(["fly", *args])


def started(api) -> list[str]:
    return sorted(i for i, s in api.states().items() if s == "started")


def test_machines_lists_id_state_region_size_role(fly_api, capsys):
    head = fly_api.add_machine(region="iad")
    worker = fly_api.add_machine(region="ord", state="stopped", group="worker")
    gpu = fly_api.add_machine(region="ord", gpu_kind="l40s", gpus=1)
    assert fly("machines") == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines[head][:5] == [head, "started", "iad", "performance-4x/8192MB", "head"]
    assert lines[worker][:5] == [worker, "stopped", "ord", "performance-4x/8192MB", "worker"]
    assert lines[gpu][3] == "performance-4x/8192MB+1xl40s"
    assert out.splitlines()[0].split()[:5] == ["ID", "STATE", "REGION", "SIZE", "ROLE"]


def test_scale_up_clones_config_and_retries_429_and_5xx(fly_api, capsys):
    template = fly_api.add_machine(region="iad")
    fly_api.inject("POST", r"/machines$", 429, "rate limited", headers={"Retry-After": "0"})
    fly_api.inject("GET", r"/machines$", 503, "upstream unavailable", times=2)
    assert fly("scale", "--count", "3") == 0
    assert len(started(fly_api)) == 3
    for machine_id, machine in fly_api.machines.items():
        assert machine["config"] == fly_api.machines[template]["config"]
        assert machine["region"] == "iad", machine_id
    assert fly_api.count("POST", r"/machines$", 429) == 1
    assert fly_api.count("POST", r"/machines$", 200) == 2
    assert fly_api.count("GET", r"/machines$", 503) == 2
    assert "3 app machine(s)" in capsys.readouterr().out


def test_scale_tries_the_fallback_region_on_insufficient_capacity(fly_api, capsys):
    fly_api.add_machine(region="iad")
    fly_api.capacity["iad"] = 0
    assert fly("scale", "--count", "2", "--fallback-region", "ord") == 0
    regions = sorted(m["region"] for m in fly_api.machines.values())
    assert regions == ["iad", "ord"]
    assert "insufficient_capacity in iad" in capsys.readouterr().out


def test_scale_reports_insufficient_capacity_without_fallback(fly_api, capsys):
    fly_api.add_machine(region="iad")
    fly_api.capacity["iad"] = 0
    assert fly("scale", "--count", "2") == 2
    err = capsys.readouterr().err
    assert "insufficient_capacity" in err and "--fallback-region" in err
    assert len(fly_api.machines) == 1


def test_scale_down_removes_stopped_machines_first_then_the_newest(fly_api):
    oldest = fly_api.add_machine()
    stopped = fly_api.add_machine(state="stopped")
    middle = fly_api.add_machine()
    newest = fly_api.add_machine()
    assert fly("scale", "--count", "2") == 0
    states = fly_api.states()
    assert states[stopped] == "destroyed" and states[newest] == "destroyed"
    assert states[oldest] == "started" and states[middle] == "started"
    # the running one was stopped (SIGTERM: it drains) before it was destroyed
    assert fly_api.count("POST", newest + "/stop") == 1
    assert fly_api.count("POST", stopped + "/stop") == 0
    assert fly_api.leases == {}  # every lease was released


def test_scale_down_when_a_destroyed_machine_answers_404(fly_api, capsys):
    fly_api.forget_destroyed = True  # the machine is gone: waiting for "destroyed" meets 404
    keep = fly_api.add_machine()
    gone = fly_api.add_machine()
    assert fly("scale", "--count", "1") == 0, capsys.readouterr().err
    assert fly_api.states() == {keep: "started"}
    assert fly_api.count("GET", gone + "/wait", 404) >= 1
    out = capsys.readouterr().out
    assert f"{gone} destroyed" in out and "could not release the lease" not in out


def test_group_options_after_the_subcommand(fly_api, capsys, monkeypatch):
    """flyctl's habit: `-a/--app` (and the group's other options) after any subcommand."""
    monkeypatch.delenv("FLY_APP_NAME")
    head = fly_api.add_machine()
    worker = fly_api.add_machine(state="stopped", group="worker")
    assert fly("machines", "-a", APP) == 0
    assert head in capsys.readouterr().out
    assert fly("start", "--app", APP, "--group", "worker", "--wait-timeout", "30") == 0
    assert fly_api.states()[worker] == "started"
    assert fly("--app", "elsewhere", "machines", "-a", APP) == 0  # the later one wins
    assert fly("machines", "-a", "no-such-app") == 2
    assert "no-such-app" in capsys.readouterr().err


def test_start_stop_and_warm(fly_api, capsys):
    a = fly_api.add_machine()
    b = fly_api.add_machine(state="stopped")
    c = fly_api.add_machine(state="stopped")
    worker = fly_api.add_machine(state="stopped", group="worker")
    assert fly("warm", "2") == 0
    assert len([m for m in (a, b, c) if fly_api.states()[m] == "started"]) == 2
    assert fly_api.states()[worker] == "stopped"  # another process group
    assert fly("stop") == 0
    assert {fly_api.states()[m] for m in (a, b, c)} == {"stopped"}
    assert fly("start", b) == 0
    assert fly_api.states()[b] == "started" and fly_api.states()[a] == "stopped"
    assert fly("--group", "worker", "start") == 0
    assert fly_api.states()[worker] == "started"
    assert fly("warm", "5") == 0
    assert "`serve-app fly scale --count 5` creates more" in capsys.readouterr().out
    assert fly("start", "0000000000dead") == 2
    assert "no such machine" in capsys.readouterr().err


def test_a_lease_held_by_someone_else_stops_the_change(fly_api, capsys):
    machine = fly_api.add_machine(state="stopped")
    client = MachinesClient(fly_api.url, FLY_TOKEN, APP)
    nonce = client.acquire_lease(machine, ttl_s=60)
    assert fly("start", machine) == 2
    assert "lease currently held" in capsys.readouterr().err
    assert fly_api.states()[machine] == "stopped"
    client.release_lease(machine, nonce)
    assert fly("start", machine) == 0
    assert fly_api.states()[machine] == "started"


def test_create_is_not_retried_on_5xx(fly_api, capsys):
    fly_api.add_machine()
    fly_api.inject("POST", r"/machines$", 500, "internal error")
    assert fly("scale", "--count", "2") == 2
    assert "500" in capsys.readouterr().err
    assert fly_api.count("POST", r"/machines$") == 1  # a retried create could make two


def test_waits_time_out_with_a_clear_message(fly_api, capsys):
    machine = fly_api.add_machine(state="stopped")
    fly_api.inject("GET", r"/wait$", 408, "deadline_exceeded", times=1000)
    assert fly("--wait-timeout", "1.5", "start", machine) == 2
    assert f"machine {machine} not started after 1.5 s" in capsys.readouterr().err
    assert fly_api.leases == {}  # released even though the wait failed


def test_rate_limit_is_retried_with_backoff(fly_api):
    machine = fly_api.add_machine()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    # seeded jitter: the waits add up to the ~1 s the bucket needs to refill
    retry = RetryPolicy(base_s=0.5, sleep=sleep, rng=random.Random(7))
    client = MachinesClient(fly_api.url, FLY_TOKEN, APP, retry=retry)
    for _ in range(6):  # burst of 3, then 429s that the client waits out
        assert client.get_machine(machine)["id"] == machine
    assert fly_api.count("GET", machine + "$", 429) >= 1
    assert len(sleeps) == fly_api.count("GET", machine + "$", 429)


def test_bad_token_and_unknown_app_are_clear_errors(fly_api, monkeypatch, capsys):
    client = MachinesClient(fly_api.url, "wrong", APP)
    with pytest.raises(FlyApiError) as err:
        client.list_machines()
    assert err.value.status == 401
    assert fly("--app", "no-such-app", "machines") == 2
    assert "404" in capsys.readouterr().err
    monkeypatch.delenv("FLY_API_TOKEN")
    from serve_app.settings import get_settings

    get_settings.cache_clear()
    assert fly("machines") == 2
    assert "FLY_API_TOKEN is not set" in capsys.readouterr().err


def test_capacity_errors_are_classified(fly_api):
    fly_api.capacity["iad"] = 0
    client = MachinesClient(fly_api.url, FLY_TOKEN, APP)
    with pytest.raises(InsufficientCapacity) as err:
        client.create_machine({"image": "x"}, region="iad")
    assert err.value.code == "insufficient_capacity"
    fly_api.add_machine(state="stopped")
    fly_api.inject(
        "POST",
        r"/start$",
        409,
        "aborted: could not reserve resource for machine: insufficient memory available "
        "to fulfill request",
    )
    machine = next(iter(fly_api.machines))
    with pytest.raises(InsufficientCapacity):
        client.start(machine)


def test_app_name_follows_flyctl_order(tmp_path: Path):
    toml = tmp_path / "fly.toml"
    toml.write_text('app = "from-toml"\n')
    assert app_name("flag", "env", toml) == "flag"
    assert app_name(None, "env", toml) == "env"
    assert app_name(None, None, toml) == "from-toml"
    with pytest.raises(OpsError, match="no app name"):
        app_name(None, None, tmp_path / "missing.toml")
