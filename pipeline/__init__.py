"""driftline: a retraining pipeline library. Pure Python: never imports airflow.

Importing it turns off the usage telemetry MLflow 3 and Great Expectations send to their vendors
(unless the environment already says otherwise): a pipeline run talks to its own stores only.
"""

import os as _os

__version__ = "0.1.0"

for _key, _value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("GX_ANALYTICS_ENABLED", "false")):
    _os.environ.setdefault(_key, _value)
