"""Realistic synthetic meal-plan requests, seeded (benchmarks and tests share them)."""

from __future__ import annotations

import random
from typing import Any

# item -> (unit, package quantity, package price, typical quantity per recipe)
ITEMS: dict[str, tuple[str, float, float, float]] = {
    "rice": ("g", 1000, 2.49, 150),
    "pasta": ("g", 500, 1.29, 200),
    "oats": ("g", 1000, 1.99, 80),
    "bread": ("slice", 20, 1.75, 4),
    "eggs": ("pc", 12, 3.49, 2),
    "milk": ("ml", 1000, 1.15, 250),
    "oat milk": ("ml", 1000, 2.25, 250),
    "yoghurt": ("g", 500, 1.89, 150),
    "cheddar": ("g", 400, 4.20, 60),
    "chicken": ("g", 1000, 8.99, 250),
    "salmon": ("g", 500, 9.50, 200),
    "tofu": ("g", 400, 2.60, 200),
    "chickpeas": ("g", 400, 0.89, 240),
    "lentils": ("g", 500, 1.60, 120),
    "spinach": ("g", 200, 1.50, 80),
    "tomatoes": ("g", 500, 1.80, 200),
    "onion": ("pc", 6, 1.20, 1),
    "garlic": ("pc", 3, 0.90, 1),
    "peppers": ("pc", 3, 1.95, 1),
    "bananas": ("pc", 6, 1.10, 1),
    "apples": ("pc", 6, 2.10, 1),
    "peanut butter": ("g", 340, 2.79, 30),
    "olive oil": ("ml", 500, 4.99, 15),
    "potatoes": ("g", 2500, 2.30, 300),
    "broccoli": ("g", 350, 0.99, 150),
    "beef mince": ("g", 500, 4.75, 250),
    "coconut milk": ("ml", 400, 1.35, 200),
    "tortillas": ("pc", 8, 1.65, 2),
}
MEAT = {"chicken", "salmon", "beef mince"}
MEALS = {
    "breakfast": ["porridge", "omelette", "toast", "smoothie", "yoghurt bowl", "pancakes"],
    "lunch": ["salad", "wrap", "soup", "sandwich", "grain bowl", "frittata"],
    "dinner": ["curry", "stir fry", "pasta", "traybake", "stew", "tacos", "risotto"],
}


def recipe(rng: random.Random, rid: str, meal: str) -> dict[str, Any]:
    items = rng.sample(sorted(ITEMS), rng.randint(2, 5))
    ingredients = []
    for item in items:
        unit, _, _, typical = ITEMS[item]
        quantity = max(1, round(typical * rng.uniform(0.5, 1.5)))
        ingredients.append({"item": item, "quantity": quantity, "unit": unit})
    base = {"breakfast": 400, "lunch": 600, "dinner": 750}[meal]
    tags = []
    if not MEAT & set(items):
        tags.append("vegetarian")
    if rng.random() < 0.3:
        tags.append("quick")
    return {
        "id": rid,
        "name": f"{rng.choice(MEALS[meal])} with {' and '.join(items[:2])}",
        "meal": meal,
        "servings": rng.choice([1, 2, 4]),
        "nutrition": {
            "calories": round(base * rng.uniform(0.7, 1.3)),
            "protein_g": round(rng.uniform(8, 45), 1),
        },
        "ingredients": ingredients,
        "tags": tags,
    }


def week_request(
    n_recipes: int, seed: int = 0, days: int = 7, timeout_ms: int = 30_000
) -> dict[str, Any]:
    """``days`` x breakfast/lunch/dinner over ``n_recipes`` recipes, with a pantry, daily
    calorie and protein bounds, max_repeats 2, and prices for every item."""
    rng = random.Random(seed)
    meals = ["breakfast", "lunch", "dinner"]
    recipes = [recipe(rng, f"r{i}", meals[i % 3]) for i in range(n_recipes)]
    prices = [
        {"item": item, "unit": unit, "package_quantity": pq, "package_price": price}
        for item, (unit, pq, price, _) in ITEMS.items()
    ]
    pantry = [
        {
            "item": item,
            "quantity": round(ITEMS[item][1] * rng.uniform(0.1, 0.8)),
            "unit": ITEMS[item][0],
        }
        for item in rng.sample(sorted(ITEMS), 6)
    ]
    return {
        "days": days,
        "meals": meals,
        "recipes": recipes,
        "prices": prices,
        "pantry": pantry,
        "constraints": {
            "daily": {"calories": {"min": 1500, "max": 2400}, "protein_g": {"min": 60}},
            "max_repeats": 2,
        },
        "timeout_ms": timeout_ms,
    }
