"""The exceptions a user of trl-reporter may catch, under one base class.

The callback never raises into the Trainer (:mod:`trl_reporter._guard` swallows everything there);
these reach users of the Python API (``add_evaluation``) and of the store, and the CLI turns them
into exit code 2.
"""

from __future__ import annotations


class TrlReporterError(Exception):
    """Base class of every error trl-reporter raises on purpose."""


class StoreError(TrlReporterError, RuntimeError):
    """The saved state cannot be used as asked: an unknown experiment or run, a name clash that
    cannot be resolved, a symlink where state should be, a value that would not load back."""


class RecordError(TrlReporterError, ValueError):
    """Saved state that is not what trl-reporter writes: a wrong type or an impossible value."""


class StatusError(TrlReporterError, ValueError):
    """A status change the run's state machine forbids, such as downgrading a final status."""


class EvaluationError(TrlReporterError, ValueError):
    """A score, link or results file that cannot be added as it is."""


class TemplateError(TrlReporterError, ValueError):
    """A report template that cannot be loaded or rendered, or that tried something unsafe."""


class DestinationError(TrlReporterError, ValueError):
    """A publish destination or pull source that cannot be one, or that cannot be reached."""
