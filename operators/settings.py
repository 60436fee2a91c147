"""`config/airflow.yaml`: where runs write, how tasks retry, which Connections hold the services."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from songmill.core.config import load_config
from songmill.core.errors import SongmillError
from songmill.core.paths import PROJECT_ROOT, config_dir, config_file


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
    gpu_executor: str | None = None  # e.g. KubernetesExecutor: the gpu stages run there (deploy/kubernetes). Env: SONGMILL_GPU_EXECUTOR
    gpu_pod_template: str | None = None  # the pod override the gpu stages' pods get under the KubernetesExecutor. Env: SONGMILL_GPU_POD_TEMPLATE
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

    def gpu_routing(self) -> dict:
        """What a gpu stage's operator is given: its queue and pool, and where `gpu_executor` is set,
        that executor and the pod override read from `gpu_pod_template` (a v1 Pod, container `base`).

        Raises
        ------
        SongmillError : the pod template is not a readable file, or is given without an executor.
        """
        routing: dict = {"queue": self.gpu_queue, "pool": self.gpu_pool}
        executor = os.environ.get("SONGMILL_GPU_EXECUTOR") or self.gpu_executor
        template = os.environ.get("SONGMILL_GPU_POD_TEMPLATE") or self.gpu_pod_template
        if template and not executor:
            raise SongmillError(
                f"{config_file('airflow.yaml')}: gpu_pod_template {template} is set but gpu_executor is not; set gpu_executor: KubernetesExecutor"
            )
        if executor:
            routing["executor"] = executor
        if template:
            routing["executor_config"] = {"pod_override": load_pod_override(Path(template) if Path(template).is_absolute() else PROJECT_ROOT / template)}
        return routing

    def default_args(self) -> dict:
        """Every task: retries with exponential backoff (a dead service gets time to come back)."""
        return {
            "retries": self.retries,
            "retry_delay": dt.timedelta(seconds=self.retry_delay_s),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": dt.timedelta(seconds=self.max_retry_delay_s),
        }


def load_pod_override(path: Path):
    """A pod template file as the cncf-kubernetes provider reads it (a kubernetes.client V1Pod)."""
    import yaml

    if not path.is_file():
        raise SongmillError(
            f"the gpu pod template {path} does not exist; set gpu_pod_template (SONGMILL_GPU_POD_TEMPLATE) to deploy/kubernetes/gpu-pod-template.yaml or your own"
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: {getattr(err, 'problem', '')}" if mark else " ".join(str(err).split())
        raise SongmillError(
            f"the gpu pod template {path} is not one readable YAML document ({where}); fix it or point SONGMILL_GPU_POD_TEMPLATE at another"
        ) from None
    if not isinstance(document, dict) or document.get("kind") != "Pod":
        raise SongmillError(f"the gpu pod template {path} is not a Kubernetes Pod (kind: Pod)")
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    return PodGenerator.deserialize_model_dict(document)


def load_airflow_settings(path: Path | None = None) -> AirflowSettings:
    path = path or config_dir() / "airflow.yaml"
    if not path.is_file():
        return AirflowSettings()
    return load_config(path, AirflowSettings)


def web_path(path: str) -> str:
    """`path` (from the web server's root, "/songmill/…" or "/api/v2/…") as a browser asks for it:
    behind the path of Airflow's `[api] base_url` where Airflow is served under one
    ("https://example.com/airflow/" → "/airflow/songmill/…"), as the api-server mounts its apps."""
    from urllib.parse import urlsplit

    from airflow.configuration import conf

    prefix = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return prefix + path
