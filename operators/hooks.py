"""The hook that hands Airflow Connections to the engine.

The engine reads its services from the environment (SONGMILL_STORE, SONGMILL_S3_*,
SONGMILL_DATABASE_URL); in a task, `SongmillHook.configure_engine()` sets those from the
Connections named in config/airflow.yaml, so no secret is written in a DAG file, a config, or
XCom. A Connection id that is named but not defined fails the task at once with a sentence
saying which one to add (retrying cannot help).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from functools import cached_property
from urllib.parse import quote

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from songmill.core.errors import ServiceError, SongmillError
from songmill.core.paths import config_file


class SongmillHook(BaseHook):
    """Resolves songmill's artifact store and catalogue from Airflow Connections."""

    conn_name_attr = "store_conn_id"
    hook_name = "songmill"

    def __init__(self, *, store_conn_id: str | None = None, catalogue_conn_id: str | None = None):
        super().__init__()
        self.store_conn_id, self.catalogue_conn_id = store_conn_id, catalogue_conn_id

    def engine_environment(self) -> dict[str, str]:
        """The environment variables the engine reads, from the Connections (only the ones named)."""
        env = {}
        if self.store_conn_id:
            conn = self._connection(self.store_conn_id, "the S3 artifact store (type aws)")
            extra = conn.extra_dejson
            bucket = extra.get("bucket") or conn.schema
            if not bucket or not conn.host:
                raise SongmillError(
                    f"Airflow Connection '{self.store_conn_id}' needs a host (the S3 endpoint) and extra {{\"bucket\": …}}; edit it under Admin → Connections"
                )
            prefix = str(extra.get("prefix") or "").strip("/")
            env["SONGMILL_STORE"] = f"s3://{bucket}/{prefix}".rstrip("/")
            env["SONGMILL_S3_ENDPOINT"] = f"{conn.host}:{conn.port}" if conn.port else conn.host
            env["SONGMILL_S3_SECURE"] = "true" if extra.get("secure") else "false"
            if conn.login:
                env["SONGMILL_S3_ACCESS_KEY"] = conn.login
            if conn.password:
                env["SONGMILL_S3_SECRET_KEY"] = conn.password
            if extra.get("region"):
                env["SONGMILL_S3_REGION"] = extra["region"]
        if self.catalogue_conn_id:
            conn = self._connection(self.catalogue_conn_id, "the catalogue database (type postgres)")
            auth = quote(conn.login or "", safe="") + (f":{quote(conn.password, safe='')}" if conn.password else "")
            netloc = f"{auth}@" if auth else ""
            netloc += f"{conn.host or 'localhost'}" + (f":{conn.port}" if conn.port else "")
            env["SONGMILL_DATABASE_URL"] = f"postgresql+psycopg2://{netloc}/{conn.schema or 'songmill'}"
        return env

    def configure_engine(self) -> None:
        """Export the Connections to this task process's environment, where the engine reads them."""
        os.environ.update(self.engine_environment())

    def _connection(self, conn_id: str, what: str):
        try:
            return self.get_connection(conn_id)
        except AirflowNotFoundException:
            raise SongmillError(
                f"Airflow Connection '{conn_id}' for {what} is not defined; add it under Admin → "
                f"Connections (or as AIRFLOW_CONN_{conn_id.upper()}), or set connections in "
                f"{config_file('airflow.yaml')} to null to use the engine's own settings"
            ) from None

    def get_conn(self) -> dict[str, str]:
        return self.engine_environment()

    def test_connection(self) -> tuple[bool, str]:
        """Open the store and the catalogue as the engine would (Airflow's "Test" button)."""
        from songmill.catalogue import Catalogue
        from songmill.core.store import open_store

        env = self.engine_environment()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            store, catalogue = open_store(), Catalogue.open()
            catalogue.close()
            return True, f"store {store.description}; catalogue reachable"
        except SongmillError as err:
            return False, str(err)
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@contextmanager
def engine_errors():
    """Map the engine's errors to Airflow's retry decision: a dead service (ServiceError) is
    retried with backoff; bad input or a bad config (any other SongmillError) fails the task at
    once, its message the first line of the log's error; anything else (a crash) is retried."""
    try:
        yield
    except ServiceError:
        raise
    except SongmillError as err:
        raise AirflowFailException(str(err)) from None


class SongmillOperator(BaseOperator):
    """The base of every songmill operator: the Connections it uses are templated parameters,
    and its hook is built once, when the task first needs it.

    :param store_conn_id: the Airflow Connection (type aws) of the S3 artifact store; None: the
        one config/airflow.yaml names (or SONGMILL_STORE_CONN_ID), else the local store.
    :param catalogue_conn_id: the Airflow Connection (type postgres) of the catalogue; None: the
        one config/airflow.yaml names (or SONGMILL_CATALOGUE_CONN_ID), else the SQLite file.
    """

    template_fields: Sequence[str] = ("store_conn_id", "catalogue_conn_id")

    def __init__(self, *, store_conn_id: str | None = None, catalogue_conn_id: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.store_conn_id, self.catalogue_conn_id = store_conn_id, catalogue_conn_id

    def pre_execute(self, context) -> None:  # noqa: ANN001 - Airflow's Context
        from songmill.engine.stage import flush_denormals

        flush_denormals()  # the task's own steps (a delivery's read-backs) as well as its stages
        super().pre_execute(context)

    @cached_property
    def hook(self) -> SongmillHook:
        from operators.settings import load_airflow_settings

        return hook_from_settings(load_airflow_settings(), store_conn_id=self.store_conn_id, catalogue_conn_id=self.catalogue_conn_id)


def hook_from_settings(settings, *, store_conn_id: str | None = None, catalogue_conn_id: str | None = None) -> SongmillHook:
    """The hook for the given Connection ids, else the ones config/airflow.yaml names (the
    plugin's listener passes none)."""
    return SongmillHook(store_conn_id=store_conn_id or settings.store_conn_id, catalogue_conn_id=catalogue_conn_id or settings.catalogue_conn_id)
