"""Sweeps: studies, workers, leases, storages, the launch of worker processes."""
