"""driftline: a retraining pipeline library. Pure Python: never imports airflow."""

__version__ = "0.1.0"
