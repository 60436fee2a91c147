"""Airflow operators for songmill: one per stage (`stages.py`), the release-level ones
(`release.py`), the hook that hands Airflow Connections to the engine (`hooks.py`), and the
DAG shape they share (`dag_builder.py`). Nothing here does work at import: DAG files import
this package when the DAG processor parses them."""
