"""The evaluator: grid of cells, HDF5 store, resume, metrics, reports."""

from .cells import Cell, expand_grid
from .experiment import Experiment, resolve_device
from .results import CellResult, MetricTable, RunResults

__all__ = ["Cell", "CellResult", "Experiment", "MetricTable", "RunResults", "expand_grid", "resolve_device"]
