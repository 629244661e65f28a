"""Base of driftline's named exceptions: each stage raises a subclass naming the failure class.

Two kinds of failure (house style 13): bad data, a failed gate, a conflict or a bad spec fails
fast with its reason (:class:`DriftlineError`); I/O that may succeed on a retry -- a storage or
source blip, a tracking server restarting, a lease another run holds -- raises a
:class:`RetryableError`, which the Airflow tasks let through to their retries.
"""


class DriftlineError(Exception):
    """Base class: the message says what is wrong, where the evidence is, and the fix."""

    #: Whether retrying the same call may succeed (the orchestrator retries only these).
    retryable: bool = False
    #: Nothing to do yet (no champion to monitor, no data for the date): the orchestrator skips
    #: the run with this message instead of failing it.
    skips_run: bool = False
    #: The run's outcome in one line when this error ends it (the Airflow run note), else None.
    headline: str | None = None


class RetryableError(DriftlineError):
    """Transient I/O: the same call may succeed on a retry."""

    retryable = True


def is_retryable(err: BaseException) -> bool:
    """True for errors a retry may fix (see the module docstring)."""
    return bool(getattr(err, "retryable", False))


class StepSkipped(DriftlineError):
    """Not a failure: the step has nothing to do for this run (an orchestrator marks it skipped)."""
