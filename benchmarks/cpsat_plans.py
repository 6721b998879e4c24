"""OR-Tools CP-SAT on the meal-plan model (the baseline of benchmarks/plans.py).

Runs in its own virtual environment (OR-Tools pins a protobuf that Ray's cannot share):
``python benchmarks/cpsat_plans.py problem.json timeout_s`` prints one JSON line. The input is
the integer model benchmarks/plans.py exports from the server's own validation, so both solvers
see the same numbers: slots x recipes Booleans, exactly one per slot, max_repeats, daily bounds,
whole packages beyond the pantry, least cost.
"""

import json
import sys
import time

from ortools.sat.python import cp_model


def main() -> None:
    with open(sys.argv[1]) as f:
        data = json.load(f)
    timeout_s = float(sys.argv[2])
    model = cp_model.CpModel()
    x = {}
    for d in range(data["days"]):
        for meal, recipes in data["candidates"].items():
            slot = []
            for r in recipes:
                x[d, meal, r] = model.NewBoolVar(f"x_{d}_{meal}_{r}")
                slot.append(x[d, meal, r])
            model.AddExactlyOne(slot)
    for (_, _, r), v in x.items():
        if r in data["banned"]:
            model.Add(v == 0)
    if data["max_repeats"] is not None:
        for meal, recipes in data["candidates"].items():
            for r in recipes:
                model.Add(sum(x[d, meal, r] for d in range(data["days"])) <= data["max_repeats"])
    for bound in data["daily"]:  # {"coef": {recipe: int}, "min": int|None, "max": int|None}
        for d in range(data["days"]):
            total = sum(v * bound["coef"].get(str(r), 0) for (dd, _, r), v in x.items() if dd == d)
            if bound["min"] is not None:
                model.Add(total >= bound["min"])
            if bound["max"] is not None:
                model.Add(total <= bound["max"])
    cost = []
    for item in data["items"]:  # {"q": {recipe: int}, "have": int, "package": int, "price": int}
        users = [(v, item["q"][str(r)]) for (_, _, r), v in x.items() if str(r) in item["q"]]
        if not users:
            continue
        k = model.NewIntVar(0, item["upper"], f"k_{item['name']}")
        model.Add(k * item["package"] >= sum(v * q for v, q in users) - item["have"])
        cost.append(k * item["price"])
    total_cost = sum(cost)
    if data["budget"] is not None:
        model.Add(total_cost <= data["budget"])
    model.Minimize(total_cost)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = timeout_s
    solver.parameters.num_workers = 2  # this machine's cores
    started = time.perf_counter()
    status = solver.Solve(model)
    seconds = time.perf_counter() - started
    name = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "timeout",
            cp_model.INFEASIBLE: "infeasible"}.get(status, "unknown")  # fmt: skip
    objective = solver.ObjectiveValue() if name in ("optimal", "timeout") else None
    print(json.dumps({"status": name, "seconds": seconds, "objective": objective}))


if __name__ == "__main__":
    main()
