"""`config/airflow.yaml`: where runs write, how tasks retry, which Connections hold the services."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from songmill.core.config import load_config
from songmill.core.paths import PROJECT_ROOT, config_dir


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionIds(_Strict):
    store: str | None = None  # an Airflow Connection (type aws) for the S3 artifact store
    catalogue: str | None = None  # an Airflow Connection (type postgres) for the catalogue


class AirflowSettings(_Strict):
    out_dir: str = "dist"
    retries: Annotated[int, Field(ge=2, le=10)] = 3  # every task gets at least two retries
    retry_delay_s: Annotated[float, Field(gt=0, le=3600)] = 30
    max_retry_delay_s: Annotated[float, Field(gt=0, le=86400)] = 600
    gpu_pool: str = "gpu"
    gpu_queue: str = "gpu"  # set "default" where no worker serves a gpu queue
    connections: ConnectionIds = ConnectionIds()
    feedback_inbox: str = "var/feedback/inbox"  # analytics exports dropped here are imported (DAG songmill_feedback_inbox)
    feedback_schedule: str = "*/30 * * * *"  # how often the inbox is read (cron, UTC)
    refine_schedule: str = "0 4 * * 0"  # the weekly model refinement (cron, UTC)

    @property
    def inbox_path(self) -> Path:
        path = Path(os.environ.get("SONGMILL_FEEDBACK_INBOX") or self.feedback_inbox)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def out_path(self) -> Path:
        path = Path(os.environ.get("SONGMILL_OUT_DIR") or self.out_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def store_conn_id(self) -> str | None:
        return os.environ.get("SONGMILL_STORE_CONN_ID") or self.connections.store

    @property
    def catalogue_conn_id(self) -> str | None:
        return os.environ.get("SONGMILL_CATALOGUE_CONN_ID") or self.connections.catalogue

    def default_args(self) -> dict:
        """Every task: retries with exponential backoff (a dead service gets time to come back)."""
        return {
            "retries": self.retries,
            "retry_delay": dt.timedelta(seconds=self.retry_delay_s),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": dt.timedelta(seconds=self.max_retry_delay_s),
        }


def load_airflow_settings(path: Path | None = None) -> AirflowSettings:
    path = path or config_dir() / "airflow.yaml"
    if not path.is_file():
        return AirflowSettings()
    return load_config(path, AirflowSettings)
