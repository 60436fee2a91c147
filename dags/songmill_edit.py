"""The song editor as a DAG: `songmill_edit`, triggered with Params (the UI's form, or the REST API).

    POST /api/v2/dags/songmill_edit/dagRuns  {"conf": {"release": "demo-single", "track": 1, "command": "less reverb on the voice"}}

`parse` reads the request against the track as it stands (typed operations, or one sentence why
not); `render` renders the new version through the stage graph, recomputing only the stages
whose inputs changed, and returns the version, the stages recomputed and its edit report;
`deliver` (when the Param asks) delivers the release again with it — an edited recording gets
its own ISRC and the DDEX message names the recording it edits. The
history, undo and the files are the CLI's (`songmill history|undo|diff`): every version is kept
in the catalogue and the store.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from operators.dag_builder import START_DATE
from operators.editing import DeliverEditOperator, ParseEditOperator, RenderEditOperator
from operators.settings import load_airflow_settings

_settings = load_airflow_settings()

with DAG(
    "songmill_edit",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # two edits of one track at once would race for the next version number's files
    is_paused_upon_creation=False,  # it runs only when asked (no schedule): paused, the editor page's edits would wait unseen
    tags=["songmill", "editor"],
    description="change a rendered track by a command or typed operations; a new version",
    doc_md=__doc__,
    default_args=_settings.default_args(),
    params={
        "release": Param("demo-single", type="string", minLength=1, maxLength=64, title="Release id", description="A release rendered before."),
        "track": Param(1, type="integer", minimum=1, maximum=40, title="Track", description="1-based."),
        "command": Param(
            "", type="string", maxLength=500, title="Command", description='English, e.g. "less reverb on the voice"; or leave empty and give operations.'
        ),
        "operations": Param(
            [], type="array", title="Operations", description="Typed operations (the JSON `songmill edit --dry-run` prints), instead of a command."
        ),
        "reason": Param("", type="string", maxLength=500, title="Why", description="Kept in the history."),
        "deliver": Param(
            False, type="boolean", title="Deliver", description="Deliver the release again with the new version (a new recording gets its own ISRC)."
        ),
    },
) as songmill_edit:
    request = ParseEditOperator(
        task_id="parse",
        release="{{ params.release }}",
        track="{{ params.track }}",
        command="{{ params.command }}",
        operations="{{ params.operations | tojson }}",
    )
    request >> RenderEditOperator(task_id="render", reason="{{ params.reason }}") >> DeliverEditOperator(task_id="deliver", deliver="{{ params.deliver }}")
