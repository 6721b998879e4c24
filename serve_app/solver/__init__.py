"""Meal plans and shopping lists with Z3 (POST /v1/plans)."""
