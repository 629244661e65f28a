"""Airflow-side glue for driftline: operator links to MLflow and the runtime of DAG tasks.

Lives in ``plugins/`` because Airflow puts this folder on ``sys.path`` in every component
(scheduler, DAG processor, workers, API server). ``pipeline/`` stays free of Airflow.
"""
