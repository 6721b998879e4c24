"""Shared by the solver tests: random instances, an exhaustive search written here (independently
of the solver), and a small request (``base_request``)."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

ITEMS = ["rice", "beans", "milk", "eggs"]
UNITS = {"rice": "g", "beans": "g", "milk": "ml", "eggs": "pc"}


def dec(value: float) -> Fraction:
    return Fraction(repr(float(value)))


def random_instance(rng: random.Random) -> dict:
    days = rng.choice([2, 3])
    meals = ["breakfast", "dinner"][: rng.choice([1, 2])]
    per_meal = rng.choice([3, 4, 5, 6])
    while per_meal ** (days * len(meals)) > 4096:
        per_meal -= 1
    recipes = []
    for meal in meals:
        for k in range(per_meal):
            items = rng.sample(ITEMS, rng.randint(1, 3))
            recipes.append(
                {
                    "id": f"{meal[0]}{k}",
                    "meal": meal,
                    "nutrition": {
                        "calories": rng.choice([300, 450, 500.5, 650, 800]),
                        "protein_g": rng.choice([5, 12.5, 20, 35]),
                    },
                    "ingredients": [
                        {"item": i, "quantity": rng.choice([50, 100, 150.5, 250]), "unit": UNITS[i]}
                        for i in items
                    ],
                    "tags": rng.sample(["veg", "quick"], rng.randint(0, 2)),
                }
            )
    prices = [
        {
            "item": i,
            "unit": UNITS[i],
            "package_quantity": rng.choice([100, 250, 400, 1000]),
            "package_price": rng.choice([0.99, 1.49, 2.25, 3.10]),
        }
        for i in ITEMS
    ]
    pantry = [
        {"item": i, "quantity": rng.choice([0, 60, 200]), "unit": UNITS[i]}
        for i in rng.sample(ITEMS, 2)
    ]
    constraints: dict = {}
    if rng.random() < 0.5:
        constraints["max_repeats"] = rng.choice([1, 2])
    if rng.random() < 0.5:
        constraints["budget"] = rng.choice([3.0, 6.5, 10.0, 20.0])
    if rng.random() < 0.5:
        low = rng.choice([300, 500, 900])
        constraints["daily"] = {"calories": {"min": low, "max": low + rng.choice([300, 800])}}
    if rng.random() < 0.3:
        constraints.setdefault("daily", {})["protein_g"] = {"min": rng.choice([10, 25, 40])}
    if rng.random() < 0.2:
        constraints["require_tags"] = ["veg"]
    if rng.random() < 0.2:
        constraints["exclude_items"] = [rng.choice(ITEMS)]
    return {
        "days": days,
        "meals": meals,
        "recipes": recipes,
        "prices": prices,
        "pantry": pantry,
        "constraints": constraints,
        "timeout_ms": 20_000,
    }


def shopping_cost(req: dict, counts: dict[str, int]) -> Fraction:
    need: dict[str, Fraction] = {}
    by_id = {r["id"]: r for r in req["recipes"]}
    for rid, n in counts.items():
        for ing in by_id[rid]["ingredients"]:
            need[ing["item"]] = need.get(ing["item"], Fraction(0)) + dec(ing["quantity"]) * n
    pantry = {p["item"]: dec(p["quantity"]) for p in req["pantry"]}
    prices = {p["item"]: p for p in req["prices"]}
    total = Fraction(0)
    for item, q in need.items():
        missing = q - pantry.get(item, Fraction(0))
        if missing > 0:
            package, price = prices[item]["package_quantity"], prices[item]["package_price"]
            total += math.ceil(missing / dec(package)) * dec(price)
    return total


def violations(req: dict, plan: dict[tuple[int, str], str]) -> list[str]:
    """Every constraint the plan breaks (empty when it is valid)."""
    c = req["constraints"]
    by_id = {r["id"]: r for r in req["recipes"]}
    broken = []
    counts: dict[str, int] = {}
    for (_day, meal), rid in plan.items():
        r = by_id[rid]
        counts[rid] = counts.get(rid, 0) + 1
        if r["meal"] != meal:
            broken.append(f"{rid} is not a {meal}")
        if not set(c.get("require_tags", [])) <= set(r["tags"]):
            broken.append(f"{rid} lacks tags")
        if set(c.get("exclude_items", [])) & {i["item"] for i in r["ingredients"]}:
            broken.append(f"{rid} has an excluded item")
    if len(plan) != req["days"] * len(req["meals"]):
        broken.append("slots missing")
    if "max_repeats" in c and max(counts.values()) > c["max_repeats"]:
        broken.append("max_repeats")
    for day in range(req["days"]):
        for nutrient, bound in c.get("daily", {}).items():
            total = sum(
                dec(by_id[plan[day, m]]["nutrition"].get(nutrient, 0)) for m in req["meals"]
            )
            if "min" in bound and total < dec(bound["min"]):
                broken.append(f"day {day} {nutrient} min")
            if "max" in bound and total > dec(bound["max"]):
                broken.append(f"day {day} {nutrient} max")
    if "budget" in c and shopping_cost(req, counts) > dec(c["budget"]):
        broken.append("budget")
    return broken


def brute_force(req: dict) -> Fraction | None:
    """The least cost over every possible plan, or None when none is valid."""
    slots = [(d, m) for d in range(req["days"]) for m in req["meals"]]
    options = [[r["id"] for r in req["recipes"] if r["meal"] == m] for _, m in slots]
    best = None
    for choice in itertools.product(*options):
        plan = dict(zip(slots, choice, strict=True))
        if violations(req, plan):
            continue
        counts: dict[str, int] = {}
        for rid in choice:
            counts[rid] = counts.get(rid, 0) + 1
        cost = shopping_cost(req, counts)
        if best is None or cost < best:
            best = cost
    return best


def base_request(**constraints) -> dict:
    recipes = [
        {"id": "oats", "meal": "breakfast", "nutrition": {"calories": 350, "protein_g": 12},
         "ingredients": [{"item": "oats", "quantity": 80, "unit": "g"}], "tags": ["vegetarian"]},
        {"id": "eggs", "meal": "breakfast", "nutrition": {"calories": 300, "protein_g": 20},
         "ingredients": [{"item": "eggs", "quantity": 2, "unit": "pc"}], "tags": ["vegetarian"]},
        {"id": "curry", "meal": "dinner", "nutrition": {"calories": 700, "protein_g": 25},
         "ingredients": [{"item": "chickpeas", "quantity": 240, "unit": "g"},
                         {"item": "rice", "quantity": 150, "unit": "g"}], "tags": ["vegetarian"]},
        {"id": "chicken", "meal": "dinner", "nutrition": {"calories": 750, "protein_g": 45},
         "ingredients": [{"item": "chicken", "quantity": 250, "unit": "g"},
                         {"item": "rice", "quantity": 150, "unit": "g"}], "tags": []},
    ]  # fmt: skip
    prices = [
        {"item": "oats", "unit": "g", "package_quantity": 1000, "package_price": 1.99},
        {"item": "eggs", "unit": "pc", "package_quantity": 12, "package_price": 3.49},
        {"item": "chickpeas", "unit": "g", "package_quantity": 400, "package_price": 0.89},
        {"item": "rice", "unit": "g", "package_quantity": 1000, "package_price": 2.49},
        {"item": "chicken", "unit": "g", "package_quantity": 1000, "package_price": 8.99},
    ]
    return {
        "days": 3,
        "meals": ["breakfast", "dinner"],
        "recipes": recipes,
        "prices": prices,
        "pantry": [{"item": "rice", "quantity": 300, "unit": "g"}],
        "constraints": constraints,
    }
