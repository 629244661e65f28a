"""The environment of one run, as plain values: what every step of a DAG (or the CLI) needs.

Contract: a :class:`RunEnv` is built once per task -- by ``plugins/driftline_airflow/runtime.py``
from the Airflow context and connections, or by :meth:`RunEnv.local` for the CLI and tests --
and passed to the step functions of :mod:`pipeline.retrain` and :mod:`pipeline.monitor`.
Nothing in it reads the environment after construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from pipeline.artifacts import date_prefix, day_key, monitor_prefix, new_run_id, run_prefix
from pipeline.config import ModelSpec, Settings
from pipeline.storage import FrameHandoff, Store


def log_text_artifacts(client: Any, run_id: str, files: dict[str, str]) -> None:
    """Attach small text files (name -> content) to an MLflow run's artifact root."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            path = Path(tmp) / name
            path.write_text(text)
            client.log_artifact(run_id, str(path))


def to_as_of(day: date | datetime | str) -> datetime:
    """Midnight UTC of ``day``: the exclusive end of the data a run may read."""
    if isinstance(day, str):
        day = datetime.strptime(day[:10], "%Y-%m-%d")
    if isinstance(day, datetime):
        day = day.astimezone(timezone.utc) if day.tzinfo else day
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


@dataclass(frozen=True)
class RunEnv:
    """One run's spec, instant, clients and intent.

    Attributes:
        spec: the model spec (with any window overrides applied).
        settings: resolved runtime settings.
        as_of: exclusive end of readable data (midnight UTC).
        artifact_s3_client / source_s3_client: boto3 clients when those live on S3.
        pg_uri: Postgres URI when the source is Postgres.
        trigger: what started the run (kind schedule/manual/backfill/asset/drift, by, reason, ...).
        lineage: tags put on the MLflow runs (orchestrator ids).
        dry_run: evaluate and register, never move the champion.
        force_promote: skip promotion gates 2-6 (not validation, not the floor); needs ``reason``.
        reason: a person's reason for a manual/forced run.
        run_id: this run's identity (its immutable artifact prefix; see :mod:`pipeline.artifacts`).
        handoff: frames handed between steps in this process (:class:`pipeline.storage.FrameHandoff`;
            set by :func:`pipeline.retrain.run_all`); None = every step reads the files.
        dask_scheduler: the Dask scheduler address a spec with ``training.engine: dask`` trains on
            (from the spec's ``training.conn_id`` connection under Airflow; ``--dask-scheduler`` or
            ``DRIFTLINE_DASK_SCHEDULER`` otherwise); None when training is local.
    """

    spec: ModelSpec
    settings: Settings
    as_of: datetime
    artifact_s3_client: Any = None
    source_s3_client: Any = None
    pg_uri: str | None = None
    trigger: dict[str, Any] = field(default_factory=lambda: {"kind": "manual"})
    lineage: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    force_promote: bool = False
    reason: str | None = None
    run_id: str = field(default_factory=new_run_id)
    handoff: FrameHandoff | None = field(default=None, compare=False, repr=False)
    dask_scheduler: str | None = None

    @classmethod
    def local(cls, spec: ModelSpec, as_of: date | datetime | str, *, settings: Settings | None = None,
              **kwargs: Any) -> "RunEnv":
        """A run outside Airflow (CLI, tests): S3 clients default to boto3's from the environment,
        the Dask scheduler to ``settings.dask_scheduler``."""
        from pipeline.storage import default_s3_client, is_s3

        settings = settings or Settings.from_env()
        if is_s3(settings.artifact_root):
            kwargs.setdefault("artifact_s3_client", default_s3_client())
        if spec.source.kind == "lake" and is_s3(spec.source.uri or ""):
            kwargs.setdefault("source_s3_client", default_s3_client())
        if not kwargs.get("dask_scheduler"):
            kwargs["dask_scheduler"] = settings.dask_scheduler or None
        return cls(spec=spec, settings=settings, as_of=to_as_of(as_of), **kwargs)

    @property
    def day(self) -> str:
        return day_key(self.as_of)

    @property
    def labelled_end(self) -> datetime:
        """Rows stamped before this have their label (``as_of - spec.label_delay_days``)."""
        from datetime import timedelta

        return self.as_of - timedelta(days=self.spec.label_delay_days)

    @property
    def store(self) -> Store:
        return Store.for_uri(self.settings.artifact_root, self.artifact_s3_client, handoff=self.handoff)

    @property
    def run_prefix(self) -> str:
        """This retrain run's own, immutable prefix."""
        return run_prefix(self.settings.artifact_root, self.spec.name, self.day, self.run_id)

    @property
    def monitor_prefix(self) -> str:
        """This monitor run's own, immutable prefix."""
        return monitor_prefix(self.settings.artifact_root, self.spec.name, self.day, self.run_id)

    def date_prefix(self, kind: str = "runs") -> str:
        """Where every run of this model and date lives (``runs`` or ``monitor``)."""
        return date_prefix(self.settings.artifact_root, self.spec.name, self.day, kind)

    def bind_mlflow(self) -> None:
        """Point MLflow's *global* tracking and registry URIs at this run's store.

        ``runs:/`` and ``models:/`` URIs (model loading, and registering a logged model as a
        version) resolve against the global URIs, not the client's: without this a fresh task
        process would look in MLflow's default store and find no such model.
        """
        import mlflow

        from pipeline import prewarm
        from pipeline.tracking import fail_fast

        prewarm.wait()  # a prewarm may still be creating a fresh store's tables
        fail_fast()
        mlflow.set_tracking_uri(self.settings.mlflow_tracking_uri)
        mlflow.set_registry_uri(self.settings.mlflow_tracking_uri)

    def load_model(self, model_uri: str, *, sha256: str | None) -> Any:
        """Load a logged or registered model from this run's tracking server, only if it verifies
        against the digest recorded when it was logged (:func:`pipeline.models.load_model`)."""
        from pipeline.models import load_model

        self.bind_mlflow()
        return load_model(model_uri, expected_sha256=sha256)

    def mlflow_client(self) -> Any:
        """An MlflowClient on this run's store (MLflow's global URIs bound to it as well)."""
        from mlflow import MlflowClient

        self.bind_mlflow()
        uri = self.settings.mlflow_tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
