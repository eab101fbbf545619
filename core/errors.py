"""Errors a user can fix. The CLI prints their message and exits with status 2."""

from __future__ import annotations


class AdvxError(Exception):
    """Base class: bad input from the user (config, names, data, files)."""


class ConfigError(AdvxError):
    """A config value is wrong; the message names its TOML path."""


class UnknownComponentError(AdvxError):
    """A component name is not registered."""


class ComponentParameterError(AdvxError):
    """A component got an unknown or ill-typed parameter."""


class PluginError(AdvxError):
    """A plugin registers something that breaks the registry's rules."""


class DatasetNotFoundError(AdvxError):
    """Data files are missing; the message says where they were looked for and how to get them."""


class ThreatModelError(AdvxError):
    """An attack returned points outside its declared threat model (norm ball or pixel bounds):
    no number is stored for it."""


class StoreError(AdvxError):
    """The HDF5 run file is locked, foreign, corrupted or written by a different config."""


class StoreWriteError(StoreError):
    """Writing the run file failed (disk full, a file-size limit): the file may be damaged past
    its last finished cell. The next run of the same command repairs it and resumes."""


class AdvxWarning(UserWarning):
    """The run goes on but the user should know (an image folder without a split, an unreadable
    cached checkpoint being retrained). The CLI prints it as one ``warning:`` line."""


class DefenseError(AdvxError):
    """A defence cannot be evaluated as configured (e.g. it breaks the gradient an adaptive attack
    follows without declaring ``differentiable = False``); the message names it and its file."""
