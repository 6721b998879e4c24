"""Request and response bodies of POST /v1/plans (API.md: Meal plans)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ingredient(_Strict):
    item: Name
    quantity: NonNegative
    unit: Name


class Recipe(_Strict):
    id: Name
    name: str = ""
    meal: Name
    servings: int = Field(1, ge=1, description="Servings the recipe makes (informational).")
    nutrition: dict[str, NonNegative] = Field(
        default_factory=dict, description="Per serving eaten; a missing nutrient counts as 0."
    )
    ingredients: list[Ingredient] = Field(default_factory=list, max_length=100)
    tags: list[Name] = Field(default_factory=list, max_length=50)


class Price(_Strict):
    item: Name
    unit: Name
    package_quantity: Positive
    package_price: NonNegative


class PantryItem(_Strict):
    item: Name
    quantity: NonNegative
    unit: Name


class Bound(_Strict):
    min: NonNegative | None = None
    max: NonNegative | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class Constraints(_Strict):
    budget: NonNegative | None = Field(None, description="Most the shopping may cost.")
    daily: dict[str, Bound] = Field(default_factory=dict, max_length=50)
    max_repeats: int | None = Field(None, ge=1, description="Most times one recipe is planned.")
    require_tags: list[Name] = Field(default_factory=list, max_length=20)
    exclude_items: list[Name] = Field(default_factory=list, max_length=200)


class PlanRequest(_Strict):
    days: int = Field(..., ge=1)
    meals: list[Name] = Field(..., min_length=1)
    recipes: list[Recipe] = Field(..., min_length=1)
    prices: list[Price] = Field(default_factory=list)
    pantry: list[PantryItem] = Field(default_factory=list)
    constraints: Constraints = Field(default_factory=Constraints)
    timeout_ms: int = Field(5000, ge=1, description="Capped by SERVE_APP_PLANS_MAX_TIMEOUT_MS.")


class PlanSlot(BaseModel):
    day: int
    meal: str
    recipe_id: str


class ShoppingItem(BaseModel):
    item: str
    packages: int
    quantity: float
    unit: str
    cost: float


class PlanResponse(BaseModel):
    status: Literal["optimal", "feasible", "infeasible", "timeout"]
    plan: list[PlanSlot]
    shopping_list: list[ShoppingItem]
    total_cost: float | None
    daily_nutrition: list[dict[str, float]]
    explanation: list[str]
