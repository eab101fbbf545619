"""The evaluator: plan of cells, threat models, HDF5 store, resume, metrics, reports."""

from .cells import Cell
from .experiment import Experiment, resolve_device
from .plan import Plan, PlannedCell, make_plan
from .results import CellResult, MetricTable, RunResults

__all__ = ["Cell", "CellResult", "Experiment", "MetricTable", "Plan", "PlannedCell", "RunResults", "make_plan",
           "resolve_device"]
