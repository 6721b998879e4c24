"""Shared by the unit and end-to-end tests: test modules import helpers from here, never from
each other (fixtures stay in conftest.py files)."""
