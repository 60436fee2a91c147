"""The worker name Airflow records in each task instance (`[core] hostname_callable`).

Several Celery workers on one machine share its host name; setting SONGMILL_WORKER_NAME on each
(docker-compose.yaml does: `cpu-worker`, `gpu-worker`) shows in the UI which one ran a task.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    return os.environ.get("SONGMILL_WORKER_NAME") or socket.getfqdn()
