"""Base of driftline's named exceptions: each stage raises a subclass naming the failure class."""


class DriftlineError(Exception):
    """Base class: the message says what is wrong, where the evidence is, and the fix."""
