"""Fly Machines: the Machines API client, machine operations and the autoscaler."""
