#!/usr/bin/env python3
"""Screenshots of songmill in the Airflow 3 UI, taken in headless Chromium as a logged-in user.

It proves four behaviours and writes these PNGs into --out (docs/screenshots/ by default):

1. manual    `songmill_manual_release`'s Trigger form with its defaults (1-manual-form-defaults.png,
             and 1a-manual-form-conf.png: the JSON it submits), submitted with only "Length
             (seconds)" changed (--length, 30 s by default); then the finished run's page
             (1b-manual-run-rendered.png).
2. partial   a run of --partial-dag (a release with `allow_partial: true` whose second track the
             gate quarantines): the grid with that track's `track.qc` red while the run is green,
             and the run's note with the quarantine reason (2-quarantined-track-not-green.png,
             taken 1920 px wide so the grid shows beside the note's dialog; 2a-quarantined-run-
             page.png: the run page at 1440 px; 2b-qc-mapped-instances.png: track.qc per track).
3. older     a second run of the same DAG, then the FIRST run's "QC report of this run" link from
             its note: the report must name the first run's songmill run number
             (3-older-run-qc-report.png).
4. logged-out  a fresh browser without a login opens that QC report URL and must land on
             Airflow's login page (4-logged-out-report-login.png).

It does not start Airflow. Start it first, with its own home, config and output folders and the
partial release's config (PARTIAL_RELEASE_YAML below; `--write-partial-config FILE` writes it):

    mkdir -p /tmp/ui-airflow && cp -r config /tmp/ui-airflow/config
    /tmp/pw/bin/python scripts/ui_screenshots.py --write-partial-config /tmp/ui-airflow/config/releases/partial.yaml
    SONGMILL_CONFIG_DIR=/tmp/ui-airflow/config .venv/bin/songmill validate /tmp/ui-airflow/config/releases/partial.yaml
    .venv/bin/songmill credentials test-ca /tmp/ui-airflow/signing      # throw-away C2PA signer
    export AIRFLOW_HOME=/tmp/ui-airflow/home SONGMILL_CONFIG_DIR=/tmp/ui-airflow/config \\
           SONGMILL_OUT_DIR=/tmp/ui-airflow/dist SONGMILL_VAR_DIR=/tmp/ui-airflow/var \\
           SONGMILL_DEMO_SIGNING_CHAIN=/tmp/ui-airflow/signing/chain.pem \\
           SONGMILL_DEMO_SIGNING_KEY=/tmp/ui-airflow/signing/signer.key
    setsid .venv/bin/python scripts/airflow_local.py --port 8089 > /tmp/ui-airflow/airflow.log 2>&1 &
    # wait for "Airflow is up" in the log; stop it later with: kill -TERM <its PID>

and run this with a Python that has Playwright (not the project's venv; no `playwright install`
needed, it drives the system Chromium):

    python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright==1.63.0
    apt-get install -y chromium
    /tmp/pw/bin/python scripts/ui_screenshots.py --url http://127.0.0.1:8089 \\
        --password "$(python3 -c 'import json;print(json.load(open("/tmp/ui-airflow/home/passwords.json"))["admin"])')"

--steps picks some of manual,partial,older,logged-out. --first-run RUN_ID makes `partial`, `older`
and `logged-out` use a finished partial run instead of triggering one; --second-run RUN_ID does the
same for `older`'s second run. It prints what it saw (run ids, states, the note, the report's
header, the redirects and final URL) and exits 1 when a behaviour is not as described.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

MANUAL_DAG = "songmill_manual_release"
# The two-track EP of tests/data/partial-release.yaml; as config/releases/partial.yaml it is
# DAG `songmill_release_partial`.
PARTIAL_RELEASE_YAML = (Path(__file__).resolve().parents[1] / "tests" / "data" / "partial-release.yaml").read_text(encoding="utf-8")
VIEWPORT = {"width": 1440, "height": 900}
# Airflow's note dialog is 1000 px wide and centred: at 1440 px it covers the grid, at 1920 px the
# grid stays visible (dimmed) on its left. Used for the one screenshot that needs both.
WIDE_VIEWPORT = {"width": 1920, "height": 1000}
UI_TIMEOUT_MS = 30_000  # a React page of the Airflow UI; much longer means something is wrong
FINISHED = ("success", "failed")


class Problem(Exception):
    """A behaviour that is not as described (the script stops and says what it saw)."""


# --- Airflow's REST API, with the logged-in browser's own token -------------------------------


class Api:
    """Reads run and task states from /api/v2 with the JWT the login left in the `_token` cookie
    (the same token the UI itself uses)."""

    def __init__(self, base_url: str, context: BrowserContext):
        self.base = base_url.rstrip("/")
        token = next((c["value"] for c in context.cookies() if c["name"] == "_token"), None)
        if not token:
            raise Problem("no `_token` cookie after logging in")
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def get(self, path: str) -> dict:
        request = urllib.request.Request(self.base + path, headers=self.headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def run_ids(self, dag_id: str) -> list[str]:
        runs = self.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=100")["dag_runs"]
        return [run["dag_run_id"] for run in runs]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        quoted = urllib.parse.quote(run_id, safe="")
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=200")["task_instances"]

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120) -> dict:
        """The DAG, once the dag-processor has parsed it (a fresh Airflow needs a moment)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.get(f"/api/v2/dags/{dag_id}")
            except urllib.error.HTTPError as err:
                if err.code != 404 or time.monotonic() > deadline:
                    raise Problem(f"Airflow has no DAG {dag_id} ({err.code}); is its config in the SONGMILL_CONFIG_DIR Airflow reads?") from err
            time.sleep(2)

    def wait_for_new_run(self, dag_id: str, known: set[str], timeout_s: float = 60) -> str:
        """The run a trigger just created (the one id not in `known`)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            new = [run_id for run_id in self.run_ids(dag_id) if run_id not in known]
            if new:
                return new[0]
            time.sleep(1)
        raise Problem(f"no new run of {dag_id} appeared within {timeout_s:.0f} s of the trigger")

    def wait_until_finished(self, dag_id: str, run_id: str, timeout_s: float) -> dict:
        """Polls the run until it is success or failed; prints its state when it changes."""
        started, last = time.monotonic(), None
        while time.monotonic() - started < timeout_s:
            run = self.run(dag_id, run_id)
            if run["state"] != last:
                last = run["state"]
                log(f"  {dag_id} {run_id}: {last} after {time.monotonic() - started:.0f} s")
            if last in FINISHED:
                return run
            time.sleep(5)
        raise Problem(f"{dag_id} {run_id} did not finish within {timeout_s:.0f} s (state {last})")


def log(message: str) -> None:
    print(message, flush=True)


# --- the browser --------------------------------------------------------------------------------


def new_context(browser, base_url: str) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT, base_url=base_url)
    context.set_default_timeout(UI_TIMEOUT_MS)
    return context


def login(context: BrowserContext, user: str, password: str) -> Page:
    """Signs in through Airflow's login page (simple auth manager), as a person would."""
    page = context.new_page()
    page.goto("/")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    expect(page.get_by_role("link", name="Dags", exact=True).first).to_be_visible()  # the nav bar
    return page


def unpause(page: Page, api: Api, dag_id: str) -> None:
    """Switches the DAG on with the toggle beside its name, when it is paused.

    Done before triggering, not with the dialog's "Unpause ... on trigger" box: that box sends
    its PATCH at the same moment as the trigger's POST, and on SQLite the two writes collided (the
    PATCH answered 500 after 5.1 s, SQLite's lock wait, with "Error ... INSERT INTO log" in the
    api-server's log): the run was created but stayed queued on a still-paused DAG."""
    if not api.wait_for_dag(dag_id)["is_paused"]:
        return
    page.goto(f"/dags/{dag_id}")
    expect(page.get_by_role("heading", name=dag_id)).to_be_visible()
    page.locator("label[data-scope='switch']").first.click()
    deadline = time.monotonic() + 30
    while api.get(f"/api/v2/dags/{dag_id}")["is_paused"]:
        if time.monotonic() > deadline:
            raise Problem(f"{dag_id} is still paused 30 s after clicking its toggle")
        time.sleep(1)
    log(f"  unpaused {dag_id} with its toggle")


def shoot(page: Page, path: Path) -> None:
    """A screenshot with CSS animations run to their end (dialogs fade and slide in)."""
    page.screenshot(path=path, animations="disabled")
    log(f"  wrote {path}")


def open_trigger_form(page: Page, api: Api, dag_id: str):
    """The DAG's page, its "Trigger" button, and the dialog it opens (the DAG unpaused first)."""
    unpause(page, api, dag_id)
    page.goto(f"/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=re.compile(f"Trigger Dag - {re.escape(dag_id)}"))).to_be_visible()
    return dialog


def submit_trigger_form(page: Page, api: Api, dialog, dag_id: str) -> str:
    """Clicks the dialog's Trigger button; returns the new run's id."""
    known = set(api.run_ids(dag_id))
    dialog.get_by_test_id("trigger-dag-submit").click()
    expect(dialog).to_be_hidden()
    run_id = api.wait_for_new_run(dag_id, known)
    log(f"  triggered {dag_id}: {run_id}")
    return run_id


def open_run_page(page: Page, dag_id: str, run_id: str, state: str) -> None:
    """The run's page (grid on the left, the run's details on the right), all task groups
    expanded, once the UI shows the run's final state."""
    page.goto(f"/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}")
    expect(page.get_by_role("heading", name=run_id)).to_be_visible()
    expect(page.get_by_test_id("state-badge").first).to_have_text(re.compile(state, re.I))
    # Its label is sometimes the untranslated i18n key (Airflow's UI before its strings load).
    expand = page.get_by_role("button", name=re.compile(r"^(Expand all task groups|taskGroups\.expandAll)$"))
    expect(expand).to_be_visible()
    if expand.is_enabled():  # disabled when the UI remembers the groups as open already
        expand.click()
    expect(page.get_by_role("link", name="qc [ ]")).to_be_visible()


def open_note(page: Page):
    """The run's note in full: the header shows its first line only; "Edit note" opens a dialog
    that renders the whole Markdown note (with its links)."""
    page.get_by_role("button", name="Edit note").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Dag Run Note")).to_be_visible()
    expect(dialog.get_by_role("link", name="QC report of this run")).to_be_visible()
    return dialog


# --- 1. the manual DAG's form -------------------------------------------------------------------


def step_manual(page: Page, api: Api, out: Path, length_s: int, timeout_s: float) -> dict:
    dialog = open_trigger_form(page, api, MANUAL_DAG)
    dialog.get_by_role("button", name="Music", exact=True).click()
    length = dialog.get_by_label("Length (seconds)")
    expect(length).to_have_value("180")  # the form's default, as opened
    shoot(page, out / "1-manual-form-defaults.png")

    if length_s != 180:
        length.fill(str(length_s))
        length.press("Tab")
        expect(length).to_have_value(str(length_s))
    dialog.get_by_role("button", name="Advanced Options").click()
    # The JSON the form will submit (a code editor): its line with the one changed field, centred.
    changed = dialog.get_by_text(re.compile(rf'"target_duration_s":\s+{length_s}\b')).last  # Monaco: nbsp between tokens
    expect(changed).to_be_visible()
    changed.evaluate("line => line.scrollIntoView({block: 'center'})")
    shoot(page, out / "1a-manual-form-conf.png")

    run_id = submit_trigger_form(page, api, dialog, MANUAL_DAG)
    run = api.wait_until_finished(MANUAL_DAG, run_id, timeout_s)
    open_run_page(page, MANUAL_DAG, run_id, run["state"])
    shoot(page, out / "1b-manual-run-rendered.png")
    log(f"  conf submitted: {json.dumps(run['conf'])}")
    if run["state"] != "success":
        raise Problem(f"{MANUAL_DAG} {run_id} ended {run['state']}")
    return run


# --- 2. a run with a quarantined track -----------------------------------------------------------


def qc_states(api: Api, dag_id: str, run_id: str) -> dict[int, str]:
    """map index -> state of the mapped `track.qc` task instances."""
    return {ti["map_index"]: ti["state"] for ti in api.task_instances(dag_id, run_id) if ti["task_id"] == "track.qc"}


def step_partial(page: Page, api: Api, out: Path, dag_id: str, timeout_s: float, run_id: str | None = None) -> dict:
    """Triggers a run (unless `run_id` names one made before) and screenshots it when it ends."""
    if run_id is None:
        dialog = open_trigger_form(page, api, dag_id)
        run_id = submit_trigger_form(page, api, dialog, dag_id)
    run = api.wait_until_finished(dag_id, run_id, timeout_s)
    states = qc_states(api, dag_id, run_id)
    log(f"  run state {run['state']}; track.qc by map index: {states}")
    log(f"  note:\n{indent(run.get('note') or '(none)')}")

    # The run page: green run badge, the grid with `qc [ ]` red, the task table (newest first:
    # track.qc map index 1 Failed near the top), the note's first line.
    open_run_page(page, dag_id, run_id, run["state"])
    expect(page.get_by_role("row", name=re.compile(r"^track\.qc 1 Failed"))).to_be_visible()
    shoot(page, out / "2a-quarantined-run-page.png")
    # The same page, wider, with the whole note open: the grid stays visible beside it.
    page.set_viewport_size(WIDE_VIEWPORT)
    open_run_page(page, dag_id, run_id, run["state"])
    dialog = open_note(page)
    expect(dialog.get_by_text("quarantined", exact=True)).to_be_visible()
    shoot(page, out / "2-quarantined-track-not-green.png")
    page.keyboard.press("Escape")
    page.set_viewport_size(VIEWPORT)
    # The mapped task's own page: one row per track, map index 1 Failed, 0 Success.
    page.goto(f"/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/track.qc/mapped")
    expect(page.get_by_role("heading", name="2 Task Instances")).to_be_visible()
    shoot(page, out / "2b-qc-mapped-instances.png")

    if run["state"] != "success" or states.get(0) != "success" or states.get(1) != "failed":
        raise Problem(f"expected a green run with track.qc[0] success and [1] failed; got {run['state']}, {states}")
    if not run.get("note") or "quarantin" not in run["note"].lower():
        raise Problem("the run's note does not name the quarantine")
    return run


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# --- 3. the older run's QC report ---------------------------------------------------------------


def songmill_run_number(note: str) -> int:
    """The songmill run number the note's QC report link names ("(songmill run N)")."""
    found = re.search(r"\(songmill run (\d+)\)", note or "")
    if not found:
        raise Problem(f"the note names no songmill run: {note!r}")
    return int(found.group(1))


def note_report_path(note: str) -> str:
    """The path of the QC report the note links to ("[QC report of this run](PATH)")."""
    found = re.search(r"\[QC report of this run\]\(([^)]+)\)", note or "")
    if not found:
        raise Problem(f"the note has no QC report link: {note!r}")
    return found.group(1)


def step_older_report(page: Page, api: Api, out: Path, dag_id: str, first_run_id: str, timeout_s: float, second_run_id: str | None = None) -> str:
    """Triggers a second run (unless `second_run_id` names one), then opens the first run's report."""
    first = api.run(dag_id, first_run_id)
    first_number = songmill_run_number(first["note"])
    if second_run_id is None:
        dialog = open_trigger_form(page, api, dag_id)
        second_run_id = submit_trigger_form(page, api, dialog, dag_id)
    second = api.wait_until_finished(dag_id, second_run_id, timeout_s)
    log(f"  second run {second_run_id}: {second['state']}, songmill run {songmill_run_number(second.get('note'))}")

    # The FIRST run's page, its note, and the note's "QC report of this run" link (a new tab).
    open_run_page(page, dag_id, first_run_id, first["state"])
    link = open_note(page).get_by_role("link", name="QC report of this run")
    log(f"  first run's note links to {link.get_attribute('href')}")
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    header = report.locator("p").filter(has_text=re.compile(r"^release \S+, run \d+,")).first
    expect(header).to_be_visible()
    header_text = header.inner_text()
    shoot(report, out / "3-older-run-qc-report.png")
    page.keyboard.press("Escape")
    log(f"  report URL {report.url}\n  header: {header_text}")
    # The track.qc task's "QC report" extra link (each mapped instance) must name the same report.
    for map_index in (0, 1):
        quoted = urllib.parse.quote(first_run_id, safe="")
        links = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances/track.qc/links?map_index={map_index}")["extra_links"]
        log(f"  track.qc[{map_index}] extra link: {links.get('QC report')}")
        if not report.url.endswith(links.get("QC report") or "<none>"):
            raise Problem(f"track.qc[{map_index}]'s QC report link {links} is not the note's {report.url}")
    if not re.search(rf"\brun {first_number}\b", header_text):
        raise Problem(f"the first run's QC report names another run: {header_text!r} (expected run {first_number})")
    url = report.url
    report.close()
    return url


# --- 4. a report without a login -----------------------------------------------------------------


def step_logged_out(browser, base_url: str, out: Path, report_url: str, user: str, password: str) -> str:
    """A fresh context (no cookies) opens the report URL; Airflow must answer with its login page,
    and signing in there must lead back to the report."""
    context = new_context(browser, base_url)
    page = context.new_page()
    response = page.goto(report_url)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shoot(page, out / "4-logged-out-report-login.png")
    for request in redirect_chain(response.request):
        log(f"  {request.url} -> {request.response().status}")
    log(f"  final URL: {page.url}")
    final = page.url
    if "/auth/login" not in urllib.parse.urlparse(final).path:
        raise Problem(f"a logged-out visit to {report_url} ended on {final}, not the login page")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(report_url)
    expect(page.get_by_role("heading", name=re.compile("^QC report"))).to_be_visible()
    log(f"  after signing in there: {page.url}")
    context.close()
    return final


def redirect_chain(request) -> list:
    """The requests that led to this one, first first (each redirect is a request of its own)."""
    chain = []
    while request is not None:
        chain.insert(0, request)
        request = request.redirected_from
    return chain


# --- the whole flow ------------------------------------------------------------------------------


def main() -> int:
    expect.set_options(timeout=UI_TIMEOUT_MS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8089", help="the Airflow api-server")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", help="admin's, from $AIRFLOW_HOME/passwords.json")
    parser.add_argument("--write-partial-config", type=Path, metavar="FILE", help="write PARTIAL_RELEASE_YAML to FILE and exit")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "screenshots")
    parser.add_argument("--steps", default="manual,partial,older,logged-out")
    parser.add_argument("--length", type=int, default=30, help="the manual run's Length (seconds); 180 is the form's default")
    parser.add_argument("--partial-dag", default="songmill_release_partial")
    parser.add_argument("--first-run", help="a finished run of --partial-dag to use instead of triggering one")
    parser.add_argument("--second-run", help="a later finished run of --partial-dag to use instead of triggering one")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--run-timeout", type=float, default=1800, help="seconds one DAG run may take")
    args = parser.parse_args()
    if args.write_partial_config:
        args.write_partial_config.parent.mkdir(parents=True, exist_ok=True)
        args.write_partial_config.write_text(PARTIAL_RELEASE_YAML, encoding="utf-8")
        log(f"wrote {args.write_partial_config}")
        return 0
    if not args.password:
        parser.error("--password is required")
    steps = set(args.steps.split(","))
    args.out.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
        try:
            context = new_context(browser, args.url)
            page = login(context, args.user, args.password)
            api = Api(args.url, context)
            first_run, report_url = args.first_run, None
            if "manual" in steps:
                timed("1. manual form", step_manual, page, api, args.out, args.length, args.run_timeout)
            if "partial" in steps:
                first_run = timed("2. partial run", step_partial, page, api, args.out, args.partial_dag, args.run_timeout, first_run)["dag_run_id"]
            if "older" in steps:
                report_url = timed(
                    "3. older run's report", step_older_report, page, api, args.out, args.partial_dag, first_run, args.run_timeout, args.second_run
                )
            if "logged-out" in steps:
                if report_url is None:  # the first run's report: the link in its note
                    report_url = args.url + note_report_path(api.run(args.partial_dag, first_run)["note"])
                timed("4. logged out", step_logged_out, browser, args.url, args.out, report_url, args.user, args.password)
        except Problem as problem:
            log(f"PROBLEM: {problem}")
            return 1
        finally:
            browser.close()
    log(f"screenshots in {args.out}")
    return 0


def timed(title: str, step, *args):
    log(f"{title} ...")
    started = time.monotonic()
    result = step(*args)
    log(f"{title}: done in {time.monotonic() - started:.0f} s")
    return result


if __name__ == "__main__":
    sys.exit(main())
