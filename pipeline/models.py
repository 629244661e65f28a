"""Models on the artifact store: saved without code, loaded only when they verify.

Contract:
* :func:`log_model` logs a fitted pipeline to the active MLflow run in the ``skops`` format (a
  zip of JSON and arrays, no pickle), ships *no* code with it (the ``pipeline`` package must be
  installed where models are loaded: shipping code would let whoever can write the artifact store
  run it), and returns the model URI and the sha256 of the stored file, which the caller records
  in the tracking store (run and registered-version tags).
* :func:`load_model` downloads a model and loads it only if (1) it is stored in the skops format,
  (2) its sha256 equals the recorded one, and (3) it contains no type outside
  :data:`TRUSTED_TYPES` -- driftline's own list, never the list the model's ``MLmodel`` file
  carries (a crafted model could trust anything there). Otherwise it raises
  :class:`UnsafeModel` naming what failed and the fix.

So whoever can write the artifact store can make a run fail, but cannot make it run code.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import DriftlineError

#: Types beyond skops' defaults (NumPy, SciPy, scikit-learn) that a driftline model may contain.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "pipeline.features.DerivedFeatures",
    "pipeline.features.Encode",
    "pipeline.features._categories_as_text",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
)
MODEL_FILE = "model.skops"


class UnsafeModel(DriftlineError):
    """A stored model is not in the safe format, does not match its recorded digest, or holds
    a type driftline does not trust."""


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def log_model(model: Any, *, name: str, signature: Any, input_example: Any, pip_requirements: list[str],
              predict_fn: str) -> tuple[str, str]:
    """Log ``model`` to the active MLflow run in the skops format (no code); returns
    ``(model_uri, sha256 of the stored model file)``."""
    import mlflow

    info = mlflow.sklearn.log_model(
        model, name=name, signature=signature, input_example=input_example, pip_requirements=pip_requirements,
        serialization_format="skops", skops_trusted_types=list(TRUSTED_TYPES), pyfunc_predict_fn=predict_fn,
    )
    with tempfile.TemporaryDirectory(prefix="driftline-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=tmp))
        return info.model_uri, sha256_of(_model_file(local, info.model_uri))


def load_model(model_uri: str, *, expected_sha256: str | None) -> Any:
    """Download and verify a model, then load it with driftline's trusted types only.

    Args:
        model_uri: a ``models:/`` or ``runs:/`` URI (resolved against MLflow's global URIs).
        expected_sha256: the digest recorded when the model was logged; ``None`` is refused.

    Raises:
        UnsafeModel: no recorded digest, a digest mismatch, not the skops format, or an
            untrusted type; the message says which and how to fix it.
    """
    import mlflow

    if not expected_sha256:
        raise UnsafeModel(f"{model_uri}: no recorded sha256 for this model, so it cannot be verified (it predates "
                          "driftline's safe model format); retrain to replace it, or force-promote a new candidate "
                          "with a reason")
    with tempfile.TemporaryDirectory(prefix="driftline-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        path = _model_file(local, model_uri)
        found = sha256_of(path)
        if found != expected_sha256:
            raise UnsafeModel(f"{model_uri}: the stored model's sha256 is {found[:16]}..., not the "
                              f"{expected_sha256[:16]}... recorded when it was logged: the artifact was changed "
                              "after training; restore it from a backup or retrain")
        import skops.io
        from skops.io.exceptions import UntrustedTypesFoundException

        try:
            return skops.io.load(path, trusted=list(TRUSTED_TYPES))
        except UntrustedTypesFoundException as err:
            raise UnsafeModel(f"{model_uri}: the stored model contains types driftline does not trust ({err}); "
                              "it was not produced by driftline's train stage") from None


def _model_file(local: Path, model_uri: str) -> Path:
    """The serialized model inside a downloaded MLflow model directory, checking its format."""
    import yaml

    mlmodel = local / "MLmodel"
    if not mlmodel.is_file():
        raise UnsafeModel(f"{model_uri}: no MLmodel file in the downloaded model")
    flavor = (yaml.safe_load(mlmodel.read_text()).get("flavors") or {}).get("sklearn") or {}
    fmt = flavor.get("serialization_format")
    if fmt != "skops":
        raise UnsafeModel(f"{model_uri}: stored as {fmt!r}, which loads by running code from the artifact; "
                          "driftline loads only the skops format -- retrain to replace it")
    path = local / str(flavor.get("pickled_model") or MODEL_FILE)
    if not path.is_file():
        raise UnsafeModel(f"{model_uri}: the model file {path.name} is missing from the artifact")
    return path
