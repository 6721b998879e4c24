"""Operations on the app's Fly Machines: list, scale, start, stop, warm (used by the CLI and
the autoscaler). Every change holds the machine's lease and waits for the state it asked for.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve_app.fly.api import InsufficientCapacity, MachinesClient

# flyctl records a machine's process group (fly.toml [processes]) in this metadata key.
GROUP_KEY = "fly_process_group"
ACTIVE = ("created", "starting", "started", "stopping", "stopped", "suspended", "replacing")
IDLE = ("stopped", "created", "suspended")  # can be started


class OpsError(Exception):
    """An operation that cannot go on; the message says why and what to do."""


def app_name(explicit: str | None, from_env: str | None, fly_toml: Path) -> str:
    """The app as flyctl finds it: ``--app``, else FLY_APP_NAME, else fly.toml's ``app``."""
    name = explicit or from_env
    if not name and fly_toml.is_file():
        name = tomllib.loads(fly_toml.read_text()).get("app")
    if name:
        return str(name)
    raise OpsError(f"no app name: pass --app, set FLY_APP_NAME, or add `app` to {fly_toml}")


@dataclass(frozen=True)
class Machine:
    """What the CLI shows of a machine (the API's JSON stays in ``raw``)."""

    id: str
    state: str
    region: str
    size: str
    role: str
    private_ip: str
    raw: dict[str, Any]

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Machine:
        config = body.get("config") or {}
        guest = config.get("guest") or {}
        cpus, memory = guest.get("cpus", "?"), guest.get("memory_mb", "?")
        size = f"{guest.get('cpu_kind', '?')}-{cpus}x/{memory}MB"
        if guest.get("gpu_kind"):
            size += f"+{guest.get('gpus', 1)}x{guest['gpu_kind']}"
        group = (config.get("metadata") or {}).get(GROUP_KEY, "app")
        return cls(
            id=body["id"],
            state=body.get("state", "?"),
            region=body.get("region", "?"),
            size=size,
            role=role_of(group),
            private_ip=body.get("private_ip", ""),
            raw=body,
        )


def role_of(group: str) -> str:
    """The process group's part in the cluster: `app` machines run a Ray head that serves
    HTTP; `worker` machines join one (fly/fly.toml [processes])."""
    return {"app": "head", "worker": "worker"}.get(group, group)


def newest_first(machines: Iterable[Machine]) -> list[Machine]:
    """``machines`` by creation time, the newest first."""
    return sorted(machines, key=lambda m: m.raw.get("created_at", ""), reverse=True)


def format_table(machines: list[Machine]) -> str:
    rows = [("ID", "STATE", "REGION", "SIZE", "ROLE", "PRIVATE IP")]
    rows += [(m.id, m.state, m.region, m.size, m.role, m.private_ip) for m in machines]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


class FlyOps:
    """Machine operations for one process group of one app."""

    def __init__(self, client: MachinesClient, group: str = "app", wait_timeout_s: float = 180):
        self.client = client
        self.group = group
        self.wait_timeout_s = wait_timeout_s

    def machines(self, all_groups: bool = False) -> list[Machine]:
        found = [Machine.from_api(m) for m in self.client.list_machines()]
        found = [m for m in found if m.state in ACTIVE]
        if not all_groups:
            found = [m for m in found if m.role == role_of(self.group)]
        return sorted(found, key=lambda m: (m.region, m.id))

    # -- state changes (each under the machine's lease) ---------------------------------

    def start(self, machine: Machine) -> None:
        print(f"starting {machine.id} ({machine.region}) ...")
        with self.client.lease(machine.id, description="serve-app fly start") as nonce:
            self.client.start(machine.id, nonce=nonce)
            self.client.wait(machine.id, "started", self.wait_timeout_s)
        print(f"  {machine.id} started")

    def stop(self, machine: Machine) -> None:
        print(f"stopping {machine.id} ({machine.region}) ...")
        with self.client.lease(machine.id, description="serve-app fly stop") as nonce:
            self.client.stop(machine.id, nonce=nonce)
            self.client.wait(machine.id, "stopped", self.wait_timeout_s)
        print(f"  {machine.id} stopped")

    def destroy(self, machine: Machine) -> None:
        """Stop (so in-flight requests drain on SIGTERM), then destroy."""
        print(f"removing {machine.id} ({machine.region}, {machine.state}) ...")
        with self.client.lease(machine.id, description="serve-app fly scale") as nonce:
            if machine.state not in IDLE:
                self.client.stop(machine.id, nonce=nonce)
                self.client.wait(machine.id, "stopped", self.wait_timeout_s)
            self.client.destroy(machine.id, nonce=nonce)
            self.client.wait(machine.id, "destroyed", self.wait_timeout_s)
        print(f"  {machine.id} destroyed")

    def clone(self, template: Machine, regions: list[str]) -> Machine:
        """A new machine with ``template``'s config, in the first of ``regions`` with room."""
        config = copy.deepcopy(template.raw.get("config") or {})
        if config.get("mounts"):
            raise OpsError(
                f"{template.id} has volumes: cloning it needs new volumes, which this tool does "
                "not create (use `fly machine clone`)"
            )
        errors = []
        for region in regions:
            print(f"creating a machine in {region} (config of {template.id}) ...")
            try:
                body = self.client.create_machine(config, region=region)
            except InsufficientCapacity as exc:
                errors.append(f"{region}: {exc.message}")
                print(f"  insufficient_capacity in {region}: {exc.message}")
                continue
            machine = Machine.from_api(body)
            self.client.wait(
                machine.id, "started", self.wait_timeout_s, instance_id=body.get("instance_id")
            )
            print(f"  {machine.id} started in {region}")
            return machine
        raise OpsError(
            "insufficient_capacity: no room for a new machine in "
            + "; ".join(errors)
            + ". Try later or pass --fallback-region."
        )

    # -- commands ----------------------------------------------------------------------

    def scale(
        self, count: int, region: str | None = None, fallback_regions: list[str] | None = None
    ) -> list[Machine]:
        """Make ``count`` machines of the group exist (in ``region`` when given). New ones are
        clones of an existing machine; extra ones go stopped-first, then the newest."""
        if count < 0:
            raise OpsError("--count must be >= 0")
        everyone = self.machines()
        pool = [m for m in everyone if region is None or m.region == region]
        if len(pool) < count:
            template = (pool or everyone or [None])[0]
            if template is None:
                raise OpsError(
                    f"no {self.group} machine to clone: deploy once with `fly deploy` first"
                )
            regions = [region or template.region, *(fallback_regions or [])]
            for _ in range(count - len(pool)):
                pool.append(self.clone(template, regions))
        elif len(pool) > count:
            # stopped machines go first; among running ones, the newest first
            idle = [m for m in pool if m.state in IDLE]
            running = newest_first(m for m in pool if m.state not in IDLE)
            remove = (idle + running)[: len(pool) - count]
            for machine in remove:
                self.destroy(machine)
            pool = [m for m in pool if m not in remove]
        return pool

    def start_many(self, ids: list[str] | None) -> int:
        targets = self._select(ids, IDLE)
        for machine in targets:
            self.start(machine)
        return len(targets)

    def stop_many(self, ids: list[str] | None) -> int:
        targets = self._select(ids, ("started",))
        for machine in targets:
            self.stop(machine)
        return len(targets)

    def warm(self, count: int) -> int:
        """Have at least ``count`` machines started (starting stopped ones; creates none).
        Returns how many it started."""
        pool = self.machines()
        started = [m for m in pool if m.state in ("started", "starting")]
        stopped = [m for m in pool if m.state in IDLE]
        need = max(0, count - len(started))
        if need > len(stopped):
            print(
                f"only {len(started) + len(stopped)} machines exist; "
                f"`serve-app fly scale --count {count}` creates more"
            )
        for machine in stopped[:need]:
            self.start(machine)
        return min(need, len(stopped))

    def set_started(self, target: int) -> None:
        """Start or stop machines until ``target`` are started."""
        running = [m for m in self.machines() if m.state in ("started", "starting")]
        if target > len(running):
            self.warm(target)
            return
        # the newest running machines stop first: the oldest (often the head) keep serving
        for machine in newest_first(running)[: len(running) - target]:
            self.stop(machine)

    def _select(self, ids: list[str] | None, states: tuple[str, ...]) -> list[Machine]:
        pool = self.machines(all_groups=bool(ids))
        if not ids:
            return [m for m in pool if m.state in states]
        by_id = {m.id: m for m in pool}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise OpsError(f"no such machine(s) in {self.client.app}: {', '.join(missing)}")
        return [by_id[i] for i in ids if by_id[i].state in states]
