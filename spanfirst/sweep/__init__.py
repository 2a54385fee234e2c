"""Hyperparameter sweeps: Ray Tune (ASHA) over Ray Train trials, tracked in MLflow.

``space`` reads and validates search-space files, ``runner`` runs a sweep, ``trial`` is what
one Tune trial executes, ``summary`` turns finished trials into a table and a plot.
"""
