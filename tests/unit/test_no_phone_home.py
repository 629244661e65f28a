"""A pipeline process sends no usage telemetry: its only traffic is to its own stores."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# MLflow also stays quiet when it believes it runs in CI or under pytest: drop those signals so
# the check sees what a user's nightly run sees.
_CI_SIGNS = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "BUILDKITE")


def test_importing_pipeline_turns_off_mlflow_and_gx_telemetry():
    env = {k: v for k, v in os.environ.items()
           if k not in _CI_SIGNS and k not in ("MLFLOW_DISABLE_TELEMETRY", "GX_ANALYTICS_ENABLED", "DO_NOT_TRACK")}
    env["PYTHONPATH"] = str(REPO)
    code = ("import pipeline, os; import mlflow.telemetry.utils as u; "
            "print(u.is_telemetry_disabled(), os.environ['GX_ANALYTICS_ENABLED'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "false"]
    # A user who opts in keeps their choice.
    env["MLFLOW_DISABLE_TELEMETRY"] = "false"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"
