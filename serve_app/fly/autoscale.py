"""`serve-app fly autoscale`: start and stop Fly Machines from the server's own metrics.

Ray Serve's autoscaler adds replicas inside the machines there are; this loop decides how many
machines there should be, and never outside ``[min_machines, max_machines]`` (docs/fly.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from serve_app.fly.ops import FlyOps
from serve_app.net import join_host_port


@dataclass(frozen=True)
class MachineLoad:
    """What one machine's /metrics says."""

    inflight: float  # API requests inside the ingress (serve_app_http_inflight)
    model_inflight: float  # calls waiting on or running in models (serve_app_model_inflight)
    pending_replicas: int  # replicas not running yet (serve_app_replicas{state="STARTING"})

    @property
    def load(self) -> float:
        return max(self.inflight, self.model_inflight)


def parse_metrics(text: str) -> MachineLoad:
    """The autoscaler's signals from a Prometheus text scrape of the ingress."""
    inflight = model_inflight = 0.0
    pending = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "serve_app_http_inflight":
                inflight += sample.value
            elif sample.name == "serve_app_model_inflight":
                model_inflight += sample.value
            elif sample.name == "serve_app_replicas" and sample.labels.get("state") == "STARTING":
                pending += int(sample.value)
    return MachineLoad(inflight, model_inflight, pending)


@dataclass(frozen=True)
class Observation:
    started: int  # machines started now
    loads: list[MachineLoad]  # from the machines that answered
    unreachable: int = 0  # started machines whose /metrics did not answer


@dataclass(frozen=True)
class Policy:
    """How ``serve-app fly autoscale`` decides; its defaults are the command's."""

    min_machines: int = 0  # as fly.toml's min_machines_running: Fly's proxy wakes the first
    max_machines: int = 4
    target_inflight: float = 64.0  # requests in flight one machine serves well
    down_ratio: float = 0.5  # scale down when load < (n-1) * target * down_ratio ...
    down_after_s: float = 300.0  # ... for this long
    up_cooldown_s: float = 30.0  # after any change, before scaling up again
    cooldown_s: float = 120.0  # after any change, before scaling down
    pending_after_s: float = 90.0  # unplaced replicas for this long -> one more machine

    def __post_init__(self) -> None:
        if not 0 <= self.min_machines <= self.max_machines:
            raise ValueError("need 0 <= --min <= --max")
        if self.target_inflight <= 0 or not 0 < self.down_ratio <= 1:
            raise ValueError("need --target-inflight > 0 and 0 < --down-ratio <= 1")


@dataclass(frozen=True)
class Decision:
    current: int
    target: int
    reason: str


class Autoscaler:
    """The decision rule, with its memory (last change, how long conditions held)."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.last_change: float | None = None
        self.low_since: float | None = None
        self.pending_since: float | None = None

    def _since_change(self, now: float) -> float:
        return math.inf if self.last_change is None else now - self.last_change

    def decide(self, now: float, obs: Observation) -> Decision:
        p, current = self.policy, obs.started
        decision = self._decide(now, obs)
        target = min(p.max_machines, max(p.min_machines, decision.target))
        if target != decision.target:
            decision = Decision(current, target, decision.reason + f" (bounded to {target})")
        if decision.target != current:
            self.last_change = now
            self.low_since = None
        return decision

    def _decide(self, now: float, obs: Observation) -> Decision:
        p, current = self.policy, obs.started
        if current < p.min_machines:
            return Decision(current, p.min_machines, f"below --min {p.min_machines}")
        if current > p.max_machines:
            return Decision(current, p.max_machines, f"above --max {p.max_machines}")
        if not obs.loads:
            self.low_since = None
            return Decision(current, current, "hold: no metrics from any started machine")
        load = sum(m.load for m in obs.loads)
        pending = sum(m.pending_replicas for m in obs.loads)
        wanted = math.ceil(load / p.target_inflight)
        reason = f"load {load:g} -> {wanted} machine(s) at {p.target_inflight:g} each"
        if pending:
            self.pending_since = self.pending_since if self.pending_since is not None else now
            if now - self.pending_since >= p.pending_after_s:
                wanted = max(wanted, current + 1)
                reason = (
                    f"{pending} replica(s) unplaced for "
                    f"{now - self.pending_since:.0f} s -> one more machine"
                )
        else:
            self.pending_since = None
        if wanted > current:
            self.low_since = None
            if self._since_change(now) < p.up_cooldown_s:
                return Decision(current, current, f"hold: {reason}, but in up-cooldown")
            return Decision(current, wanted, f"up: {reason}")
        threshold = (current - 1) * p.target_inflight * p.down_ratio
        if current > p.min_machines and load < threshold and not obs.unreachable:
            self.low_since = self.low_since if self.low_since is not None else now
            low_for = now - self.low_since
            if low_for < p.down_after_s:
                return Decision(
                    current, current, f"hold: load {load:g} < {threshold:g} for {low_for:.0f} s"
                )
            if self._since_change(now) < p.cooldown_s:
                return Decision(current, current, f"hold: load {load:g} low, but in cooldown")
            return Decision(
                current, current - 1, f"down: load {load:g} < {threshold:g} for {low_for:.0f} s"
            )
        self.low_since = None
        return Decision(current, current, f"hold: {reason}")


def scrape(urls: list[str], timeout_s: float = 5.0) -> tuple[list[MachineLoad], int]:
    """(loads of the machines that answered, how many did not)."""
    loads, failed = [], 0
    for url in urls:
        try:
            response = httpx.get(url, timeout=timeout_s)
            response.raise_for_status()
            loads.append(parse_metrics(response.text))
        except (httpx.HTTPError, ValueError):
            failed += 1
    return loads, failed


def run(
    ops: FlyOps,
    policy: Policy,
    interval_s: float = 15.0,
    port: int = 8000,
    metrics_urls: list[str] | None = None,
    dry_run: bool = False,
    rounds: int | None = None,
) -> None:
    """The control loop; ``rounds`` (None: forever) bounds it for tests and cron use."""
    scaler = Autoscaler(policy)
    done = 0
    while rounds is None or done < rounds:
        machines = ops.machines()
        started = [m for m in machines if m.state == "started"]
        # each machine's /metrics over Fly's private network (6PN, IPv6)
        urls = metrics_urls or [
            f"http://{join_host_port(m.private_ip, port)}/metrics" for m in started
        ]
        loads, failed = scrape(urls)
        obs = Observation(started=len(started), loads=loads, unreachable=failed)
        decision = scaler.decide(time.monotonic(), obs)
        prefix = "[dry-run] " if dry_run else ""
        print(
            f"{prefix}machines started {decision.current}/{len(machines)}, "
            f"target {decision.target}: {decision.reason}"
        )
        if decision.target != decision.current and not dry_run:
            ops.set_started(decision.target)
        done += 1
        if rounds is None or done < rounds:
            time.sleep(interval_s)
