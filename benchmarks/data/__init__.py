"""Seeded generators of benchmark inputs (meal-plan requests, receipt photos)."""
