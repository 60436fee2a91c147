"""Airflow's Celery settings for songmill's workers (`[celery] celery_config_options =
operators.celery_config.CELERY_CONFIG`): Airflow's own, unchanged, and a worker that imports
this warms up first (operators/preload.py), so its tasks start without importing the stages'
libraries again."""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

from operators.preload import preload_if_worker

CELERY_CONFIG = DEFAULT_CELERY_CONFIG

preload_if_worker()
