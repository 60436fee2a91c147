"""Operators of the feedback loop: the inbox import and the weekly model refinement."""

from __future__ import annotations

import shutil
from pathlib import Path

from operators.hooks import SongmillOperator, engine_errors


class ImportFeedbackInboxOperator(SongmillOperator):
    """Imports every analytics export in the inbox folder (`config/airflow.yaml` `feedback_inbox`).

    A file imported whole moves to `done/`; one with rejected rows moves to `rejected/` beside a
    `<file>.txt` that lists each rejected line and why (its good rows are counted); a file in no
    known layout moves to `rejected/` with the reason and fails nothing else. Returns the
    summaries. Re-dropping a file counts nothing twice (the import is by sha256)."""

    ui_color = "#fdf3e1"

    def __init__(self, *, inbox: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.inbox = inbox

    def execute(self, context) -> list[dict]:
        from operators.settings import load_airflow_settings
        from songmill.catalogue import Catalogue
        from songmill.feedback.ingest import rematch_unknown

        folder = Path(self.inbox) if self.inbox else load_airflow_settings().inbox_path
        folder.mkdir(parents=True, exist_ok=True)
        self.hook.configure_engine()
        with engine_errors():
            catalogue = Catalogue.open()
            try:
                summaries = [
                    self._import_one(path, folder, catalogue) for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
                ]
                rematch_unknown(catalogue)
            finally:
                catalogue.close()
        return summaries

    def _import_one(self, path: Path, folder: Path, catalogue) -> dict:
        """Import one dropped file and move it to done/ or rejected/; its summary."""
        from songmill.core.errors import SongmillError
        from songmill.feedback.ingest import import_file

        try:
            result = import_file(path, catalogue)
        except SongmillError as err:
            self.log.warning("%s", err)
            self._move(path, folder / "rejected", str(err))
            return {"file": path.name, "error": str(err)}
        self.log.info("%s", result.summary())
        self._move(path, folder / ("rejected" if result.rejected_count else "done"), result.summary() if result.rejected_count else None)
        return result.to_dict()

    @staticmethod
    def _move(path: Path, target: Path, why: str | None) -> None:
        target.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(target / path.name))
        if why:
            (target / f"{path.name}.txt").write_text(why + "\n", encoding="utf-8")


class RefineModelOperator(SongmillOperator):
    """Refines a model from the catalogue's feedback (songmill.feedback.refinement): trains a
    candidate, evaluates it against the version in use, registers it with its lineage, and
    promotes it only if it wins on preference without regressing a gate figure.

    :param model: the registry name (the melody model, or a lyrics LM of backend transformers).
    :param method: full or lora (the melody model).
    """

    ui_color = "#ede7f6"
    template_fields = (*SongmillOperator.template_fields, "model", "method")

    def __init__(self, *, model: str = "melody-gru-celtic", method: str = "full", **kwargs):
        super().__init__(**kwargs)
        self.model, self.method = model, method

    def execute(self, context) -> dict:
        from songmill.catalogue import Catalogue
        from songmill.feedback.refinement import MELODY_MODEL, refine_from_feedback, refine_lyrics_from_feedback

        self.hook.configure_engine()
        with engine_errors():
            catalogue = Catalogue.open()
            by = f"DAG {context['dag'].dag_id} run {context['run_id']}"
            try:
                if self.model == MELODY_MODEL:
                    result = refine_from_feedback(catalogue, method=self.method, by=by)
                else:
                    result = refine_lyrics_from_feedback(catalogue, self.model, by=by)
            finally:
                catalogue.close()
        self.log.info("%s %s: %s%s", result["name"], result["version"], result["verdict"], f" ({'; '.join(result['reasons'])})" if result["reasons"] else "")
        return {k: result[k] for k in ("name", "version", "base_version", "verdict", "reasons", "promoted")}
