"""The slot model of a meal plan in Z3: a Boolean ``x[d, m, r]`` per day, meal and recipe.

Pseudo-Boolean constraints over exact integers (``problem.scaled``), one ``z3.Context`` per
``Encoding``. Named constraint groups ("budget 20.00", ...) stay apart so that the search can
track them with assumption literals: their unsat core explains an infeasible request.
"""

from __future__ import annotations

from fractions import Fraction

import z3

from serve_app.solver.problem import Problem, exact, fmt, fmt_tags, scaled


class Encoding:
    """The Z3 variables and constraint groups of one problem, in one context."""

    def __init__(self, problem: Problem):
        self.ctx = ctx = z3.Context()
        p = problem
        c = p.request.constraints
        self.x: dict[tuple[int, str, int], z3.BoolRef] = {}
        for d in range(p.days):
            for meal in p.meals:
                for r in p.candidates[meal]:
                    self.x[d, meal, r] = z3.Bool(f"x_{d}_{meal}_{r}", ctx)
        self.groups: list[tuple[str, list[z3.BoolRef]]] = []
        # Exactly one recipe per slot.
        self.hard: list[z3.BoolRef] = [
            z3.PbEq([(self.x[d, meal, r], 1) for r in p.candidates[meal]], 1)
            for d in range(p.days)
            for meal in p.meals
        ]
        # Days are interchangeable: order them by the first meal's recipe (symmetry breaking).
        first = p.meals[0]
        if p.days > 1 and len(p.candidates[first]) > 1:
            order = list(enumerate(p.candidates[first]))
            index = [
                z3.Sum([z3.If(self.x[d, first, r], k, 0) for k, r in order]) for d in range(p.days)
            ]
            self.hard += [index[d] <= index[d + 1] for d in range(p.days - 1)]

        if c.max_repeats is not None:
            repeats = [
                z3.PbLe([(self.x[d, meal, r], 1) for d in range(p.days)], c.max_repeats)
                for meal in p.meals
                for r in p.candidates[meal]
                if p.days > c.max_repeats
            ]
            self.groups.append((f"max_repeats {c.max_repeats}", repeats))
        if c.require_tags:
            banned = [
                z3.Not(v)
                for (d, meal, r), v in self.x.items()
                if not set(c.require_tags) <= set(p.recipes[r].tags)
            ]
            self.groups.append((f"require_tags {fmt_tags(c.require_tags)}", banned))
        if c.exclude_items:
            excluded = set(c.exclude_items)
            banned = [z3.Not(v) for (d, meal, r), v in self.x.items() if excluded & set(p.needs[r])]
            self.groups.append((f"exclude_items {fmt_tags(c.exclude_items)}", banned))
        for nutrient, bound in c.daily.items():
            for side, limit in (("min", bound.min), ("max", bound.max)):
                if limit is None:
                    continue
                group = []
                for d in range(p.days):
                    terms = [
                        (v, p.nutrition[r].get(nutrient, Fraction(0)))
                        for (dd, meal, r), v in self.x.items()
                        if dd == d
                    ]
                    ints, _ = scaled([w for _, w in terms] + [exact(limit)])
                    pairs = [(v, w) for (v, _), w in zip(terms, ints[:-1], strict=True) if w]
                    bound_int = ints[-1]
                    if not pairs:  # no recipe of the day has this nutrient: the sum is 0
                        group.append(z3.BoolVal(side == "max" or bound_int <= 0, ctx))
                    elif side == "min":
                        group.append(z3.PbGe(pairs, bound_int))
                    else:
                        group.append(z3.PbLe(pairs, bound_int))
                self.groups.append((f"daily {nutrient} {side} {fmt(limit)}", group))

        # Shopping: packages per item cover the plan's need beyond the pantry.
        price_int, budget_int, _ = p.money()
        cost_terms = []
        for k, item in enumerate(p.price):
            users = [(key, v) for key, v in self.x.items() if item in p.needs[key[2]]]
            if not users:
                continue
            quantities, have, package = p.quantities(item, [r for (_, _, r), _ in users])
            need = z3.Sum([z3.If(v, q, 0) for (_, v), q in zip(users, quantities, strict=True)])
            count = z3.Int(f"packages_{k}", ctx)
            upper = p.package_upper_bound(item)
            self.hard += [count >= 0, count <= upper, count * package >= need - have]
            if price_int[item]:
                cost_terms.append(count * price_int[item])
        cost = z3.Sum(cost_terms) if cost_terms else z3.IntVal(0, ctx)
        if budget_int is not None:
            self.groups.append((f"budget {float(c.budget):.2f}", [cost <= budget_int]))

    def plan_of(self, model: z3.ModelRef) -> dict[tuple[int, str], int]:
        return {
            (d, meal): r
            for (d, meal, r), v in self.x.items()
            if z3.is_true(model.eval(v, model_completion=True))
        }
