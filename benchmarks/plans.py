"""Meal-plan benchmark: this server's solver vs OR-Tools CP-SAT on the same instances.

Run ``python -m benchmarks.plans [--quick] [--timeout S] [--seeds 0-11]``:
7 days x 3 meals with 20, 50, 100 and 200 recipes (benchmarks.data.plan_data, seeded), time,
status and objective for each solver; prints a table and writes
``benchmarks/results/<timestamp>/plans.json``.

CP-SAT runs in its own virtual environment, ``benchmarks/.venv-ortools`` (created on first use
with ``pip install ortools==9.15.6755``): OR-Tools needs protobuf 6, Ray needs protobuf 7, so
they cannot share the server's venv. Both solvers get the same integer model (exported from the
server's own validation, so the same exact scaling of quantities and prices).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from benchmarks.data.plan_data import week_request
from benchmarks.harness.loadgen import print_table, write_json
from serve_app.solver.problem import Limits, exact, scaled, validate
from serve_app.solver.protocol import PlanRequest
from serve_app.solver.search import solve

ROOT = Path(__file__).resolve().parent.parent
ORTOOLS_VENV = ROOT / "benchmarks" / ".venv-ortools"
ORTOOLS = "ortools==9.15.6755"


def ortools_python() -> Path:
    python = ORTOOLS_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {ORTOOLS_VENV} with {ORTOOLS} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(ORTOOLS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", ORTOOLS], check=True)
    return python


def integer_model(req: PlanRequest) -> tuple[dict[str, Any], int]:
    """The request as integers, exactly as the Z3 model scales it; returns the money factor."""
    p = validate(req, Limits(max_timeout_ms=10**9))
    c = req.constraints
    banned = []
    for meal in p.meals:
        for r in p.candidates[meal]:
            recipe = p.recipes[r]
            if not set(c.require_tags) <= set(recipe.tags) or set(c.exclude_items) & set(
                p.needs[r]
            ):
                banned.append(r)
    daily = []
    for nutrient, bound in c.daily.items():
        recipes = [r for meal in p.meals for r in p.candidates[meal]]
        values = [p.nutrition[r].get(nutrient, Fraction(0)) for r in recipes]
        limits = [exact(v) for v in (bound.min, bound.max) if v is not None]
        ints, _ = scaled(values + limits)
        coef = {str(r): v for r, v in zip(recipes, ints, strict=False) if v}
        rest = iter(ints[len(values) :])
        daily.append(
            {
                "coef": coef,
                "min": next(rest) if bound.min is not None else None,
                "max": next(rest) if bound.max is not None else None,
            }
        )
    price_int, budget_int, factor = p.money()
    items = []
    for item in p.price:
        users = [r for meal in p.meals for r in p.candidates[meal] if item in p.needs[r]]
        if not users:
            continue
        quantities, have, package = p.quantities(item, users)
        items.append(
            {
                "name": item,
                "q": {str(r): q for r, q in zip(users, quantities, strict=True)},
                "have": have,
                "package": package,
                "price": price_int[item],
                "upper": p.package_upper_bound(item),
            }
        )
    data = {
        "days": p.days,
        "candidates": {m: p.candidates[m] for m in p.meals},
        "banned": banned,
        "max_repeats": c.max_repeats,
        "daily": daily,
        "items": items,
        "budget": budget_int,
    }
    return data, factor


def seeds_of(spec: str | None, size: int) -> list[int]:
    """``--seeds``: "0-11", "1,5" or both mixed; None: the size itself (the benchmark's weeks)."""
    if not spec:
        return [size]
    seeds: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 and 50 recipes only")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per solve")
    parser.add_argument("--sizes", default="20,50,100,200")
    parser.add_argument("--no-cpsat", action="store_true")
    parser.add_argument(
        "--seeds",
        help="data seeds per size, e.g. 0-11 or 1,5 (default: the size itself, 200 -> seed 200)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sizes = [20, 50] if args.quick else [int(s) for s in args.sizes.split(",")]
    out = args.out or ROOT / "benchmarks" / "results" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    python = None if args.no_cpsat else ortools_python()
    timeout_ms = int(args.timeout * 1000)
    rows, report = [], {"timeout_s": args.timeout, "instances": []}
    for n, seed in [(size, seed) for size in sizes for seed in seeds_of(args.seeds, size)]:
        req = PlanRequest.model_validate(week_request(n, seed=seed, timeout_ms=timeout_ms))
        started = time.perf_counter()
        z = solve(req, Limits(max_timeout_ms=timeout_ms))
        z_seconds = time.perf_counter() - started
        entry: dict[str, Any] = {
            "recipes": n,
            "seed": seed,
            "server": {"status": z.status, "seconds": z_seconds, "cost": z.total_cost},
        }
        name = f"{n} recipes (seed {seed})"
        print(f"{name}: server {z.status} {z.total_cost} in {z_seconds:.2f} s", flush=True)
        if python is not None:
            data, factor = integer_model(req)
            path = out / f"plan-{n}-{seed}.json"
            path.write_text(json.dumps(data))
            script = ROOT / "benchmarks" / "cpsat_plans.py"
            done = subprocess.run(
                [str(python), str(script), str(path), str(args.timeout)],
                capture_output=True,
                text=True,
                check=True,
            )
            cp = json.loads(done.stdout.strip().splitlines()[-1])
            cost = round(cp["objective"] / factor, 2) if cp["objective"] is not None else None
            entry["cpsat"] = {"status": cp["status"], "seconds": cp["seconds"], "cost": cost}
            print(f"{name}: CP-SAT {cp['status']} {cost} in {cp['seconds']:.2f} s", flush=True)
        report["instances"].append(entry)
        cp_entry = entry.get("cpsat", {})
        rows.append(
            [
                str(n),
                str(seed),
                entry["server"]["status"],
                f"{z_seconds:.2f}",
                str(z.total_cost),
                cp_entry.get("status", "-"),
                f"{cp_entry['seconds']:.2f}" if cp_entry else "-",
                str(cp_entry.get("cost", "-")),
            ]
        )
    print()
    header = [
        "recipes",
        "seed",
        "server status",
        "s",
        "cost",
        "CP-SAT status",
        "CP-SAT s",
        "CP-SAT cost",
    ]
    table = print_table(rows, header)
    write_json(out / "plans.json", report)
    (out / "plans.md").write_text(f"7 days x 3 meals\n\n```\n{table}\n```\n")
    print(f"\nwrote {out / 'plans.json'}")


if __name__ == "__main__":
    main()
