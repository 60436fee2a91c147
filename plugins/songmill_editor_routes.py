"""The song editor's page and endpoints, behind Airflow's login (added to the plugin's app).

- `GET /songmill/editor/<release>/<track>` — the page: the song's sections over its waveform, the
  lyrics, players for the current and the previous version, a command box, a record button (the
  browser's microphone, recognised on the server), the suggestions with an apply button, the
  history with undo, redo, any version made current again or compared with the current one (or with any other)
  (A/B of the changed section, loudness-matched). Applying starts a run of the DAG
  `songmill_edit` through Airflow's own REST API (with the user's login) and the page follows
  the run until the new version is there.
- `GET /songmill/api/editor/<release>/<track>` — what the page shows, as JSON;
- `GET /songmill/api/editor/<release>/<track>/versions/<n>/audio` — a version's master (WAV),
  and `…/versions/<n>/listen` the same as Opus, what the page's players play (a seventeenth of the size);
- `GET /songmill/api/editor/<release>/<track>/auditions/<n>` — whether the edit making version
  n has written its audition yet (`{"ready": true|false}`), `…/auditions/<n>/audio` the
  audition (WAV) and `…/auditions/<n>/listen` the same as Opus, what the page plays while that
  edit's master and gate finish;
- `GET /songmill/api/editor/<release>/<track>/ab/<a>/<b>` — versions a and b compared
  (`songmill preview`): the section that changed, 20–30 s of each matched by the loudness meter,
  as `…/previews/<name>` (Opus; `?listen=false` the WAV), and what `songmill diff` says differs
  (the sections whose notes changed, the measures);
- `POST /songmill/api/editor/<release>/<track>/check` — a command (or typed operations) read
  against the track as an edit would read it: the operations in words, or the one sentence why
  not (the page asks before it starts a run, so a command that cannot apply starts none);
- `POST /songmill/api/editor/<release>/<track>/undo` — the previous version current again;
  `…/redo` the version the last undo set aside; `…/versions/<n>/current` any version (its files
  from the store, nothing rendered);
- `POST /songmill/api/editor/<release>/<track>/hear` — a recording (any format ffmpeg reads) →
  the command heard and its operations, or why none was.
Reading needs read access to DAG runs; check, undo, redo, switching and hear need edit access
to `songmill_edit`.
A failed edit run's sentence is its task's XCom `error` (operators/editing.py), which the page reads.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.
import html
import json
from pathlib import Path

EDIT_DAG_ID = "songmill_edit"
WAVEFORM_POINTS = 800
COMMAND_MAX_CHARS = 500  # the DAG's Param allows no more


def add_editor_routes(app, current_user) -> None:  # app: the FastAPI app or an APIRouter
    from fastapi import HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool  # the engine's work off the api-server's event loop

    from songmill.core.errors import SongmillError

    def config_of(release: str) -> str:
        """The release's config, from the catalogue the tasks write to (every route asks this first)."""
        from operators.hooks import hook_from_settings
        from operators.settings import load_airflow_settings
        from songmill.engine.editing import config_of_release

        hook_from_settings(load_airflow_settings()).configure_engine()  # its Airflow Connections, as in a task
        try:
            return config_of_release(release)
        except SongmillError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None

    def failed(err: SongmillError):
        from songmill.engine.editing import UnknownVersion

        raise HTTPException(status_code=404 if isinstance(err, UnknownVersion) else 400, detail=str(err)) from None

    def track_of(release: str, track: int) -> str:
        """The release's config, once the track is known to be one of its tracks."""
        from songmill.core.errors import tracks_it_has
        from songmill.engine.editing import track_count

        config = config_of(release)
        try:
            count = track_count(config)
        except SongmillError as err:
            raise HTTPException(status_code=400, detail=str(err)) from None
        if not 1 <= track <= count:
            raise HTTPException(status_code=404, detail=f"release {release} has no track {track} ({tracks_it_has(count)})")
        return config

    @app.get("/api/editor/{release}/{track}")
    def editor_state(release: str, track: int):
        try:
            return JSONResponse(editor_data(config_of(release), track))
        except SongmillError as err:
            failed(err)

    @app.get("/api/editor/{release}/{track}/versions/{number}/audio")
    def version_audio(release: str, track: int, number: int):
        from songmill.engine import editing

        try:
            path = editing.version_master(config_of(release), track=track, version=number)
        except SongmillError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None
        return FileResponse(path, media_type="audio/wav")

    @app.get("/api/editor/{release}/{track}/versions/{number}/listen")
    def version_listening(release: str, track: int, number: int):
        from songmill.engine import editing

        config = config_of(release)
        try:
            master = editing.version_master(config, track=track, version=number)
        except SongmillError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None
        try:
            path = editing.listening_copy(master)
        except SongmillError as err:  # the master is there: this is the encoder's failure, not a missing version
            raise HTTPException(status_code=500, detail=str(err)) from None
        return FileResponse(path, media_type="audio/ogg")

    def audition_of(release: str, track: int, number: int):
        from operators.settings import load_airflow_settings
        from songmill.engine import editing

        try:
            return editing.audition_file(config_of(release), track=track, version=number, out_dir=load_airflow_settings().out_path)
        except SongmillError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None

    def audition_there(release: str, track: int, number: int):
        path = audition_of(release, track, number)
        if path is None:
            raise HTTPException(status_code=404, detail=f"version {number} of track {track} has no audition yet: an edit writes one once its new mix is made")
        return path

    def rewritten_as_opus(path):
        """A file written again under the same name (an audition, an A/B excerpt) as Opus; never
        cached by the browser, since the name's next file is another's."""
        from songmill.engine import editing

        try:
            listening = editing.listening_copy_by_contents(path)
        except SongmillError as err:  # the file is there: this is the encoder's failure
            raise HTTPException(status_code=500, detail=str(err)) from None
        return FileResponse(listening, media_type="audio/ogg", headers={"Cache-Control": "no-store"})

    @app.get("/api/editor/{release}/{track}/auditions/{number}")
    def audition_ready(release: str, track: int, number: int):
        return JSONResponse({"ready": audition_of(release, track, number) is not None})

    @app.get("/api/editor/{release}/{track}/auditions/{number}/audio")
    def audition_audio(release: str, track: int, number: int):
        path = audition_there(release, track, number)
        return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})  # the same number is another edit's after a failed one

    @app.get("/api/editor/{release}/{track}/auditions/{number}/listen")
    def audition_listening(release: str, track: int, number: int):
        return rewritten_as_opus(audition_there(release, track, number))

    @app.get("/api/editor/{release}/{track}/ab/{a}/{b}")
    async def compare(release: str, track: int, a: int, b: int):
        from operators.settings import load_airflow_settings, web_path
        from songmill.engine import editing

        config = await run_in_threadpool(track_of, release, track)
        try:
            made = await run_in_threadpool(lambda: editing.ab_preview(config, track=track, a=a, b=b, out_dir=load_airflow_settings().out_path))
        except SongmillError as err:  # a version the track lacks (404), one silent there, its files gone from the store
            failed(err)
        differs = made["differs"]
        base = web_path(f"/songmill/api/editor/{release}/{track}/previews")
        return JSONResponse(
            {
                "section": made["section"],
                "seconds": made["seconds"],
                "lufs": made["lufs"],
                "players": [f"{base}/{Path(file).name}" for file in made["files"]],
                "spec": differs["spec"],  # what was asked for: the track spec's fields, [a's, b's]
                "notes_changed_in": differs["score_sections_changed"],  # as `songmill diff` says
                "measures": differs["measures"],  # name → [a's, b's], where they differ
            }
        )

    @app.get("/api/editor/{release}/{track}/previews/{name}")
    def preview_audio(release: str, track: int, name: str, listen: bool = True):
        from operators.settings import load_airflow_settings
        from songmill.engine import editing

        try:
            path = editing.preview_file(config_of(release), track=track, name=name, out_dir=load_airflow_settings().out_path)
        except SongmillError as err:
            raise HTTPException(status_code=404, detail=str(err)) from None
        if not listen:
            return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})  # remade under its name by a later comparison
        return rewritten_as_opus(path)

    @app.post("/api/editor/{release}/{track}/check")
    async def check(request: Request, release: str, track: int):
        from songmill.editor.operations import operations_from_json
        from songmill.engine import editing

        await current_user(request, changes=EDIT_DAG_ID)
        try:
            asked = await request.json()
        except ValueError:
            asked = None
        if not isinstance(asked, dict):
            raise HTTPException(status_code=400, detail='send {"command": "…"} or {"operations": […]} as JSON')
        command, operations = str(asked.get("command") or "").strip(), asked.get("operations") or None
        if command and operations:
            raise HTTPException(status_code=400, detail="give only one of command (English words) or operations (typed JSON) for the edit")
        if len(command) > COMMAND_MAX_CHARS:
            raise HTTPException(
                status_code=400, detail=f"the command is {len(command)} characters long; say one change at a time (at most {COMMAND_MAX_CHARS})"
            )
        config = await run_in_threadpool(track_of, release, track)
        try:
            typed = operations_from_json(operations) if operations else None
            parsed = await run_in_threadpool(lambda: editing.check_edit(config, track, command=None if typed else command, operations=typed))
        except SongmillError as err:
            failed(err)
        return JSONResponse({"operations": [op.describe() for op in parsed]})

    async def made_current(request: Request, release: str, track: int, move) -> JSONResponse:
        """Another version current (`move(config, out_dir)`: undo, redo or switch), its files put
        in the track's `current/` from the store; nothing is rendered. A version the track lacks is 404."""
        from operators.settings import load_airflow_settings

        await current_user(request, changes=EDIT_DAG_ID)
        config = await run_in_threadpool(track_of, release, track)
        try:
            moved = await run_in_threadpool(move, config, load_airflow_settings().out_path)
        except SongmillError as err:
            failed(err)
        return JSONResponse({"current": moved["current"]})

    @app.post("/api/editor/{release}/{track}/undo")
    async def undo(request: Request, release: str, track: int):
        from songmill.engine import editing

        return await made_current(request, release, track, lambda config, out: editing.undo(config, track=track, out_dir=out))

    @app.post("/api/editor/{release}/{track}/redo")
    async def redo(request: Request, release: str, track: int):
        from songmill.engine import editing

        return await made_current(request, release, track, lambda config, out: editing.redo(config, track=track, out_dir=out))

    @app.post("/api/editor/{release}/{track}/versions/{number}/current")
    async def switch(request: Request, release: str, track: int, number: int):
        from songmill.engine import editing

        return await made_current(request, release, track, lambda config, out: editing.switch(config, track=track, version=number, out_dir=out))

    @app.post("/api/editor/{release}/{track}/hear")
    async def hear(request: Request, release: str, track: int):
        from songmill.engine import editing

        await current_user(request, changes=EDIT_DAG_ID)
        data = await request.body()
        if not data:
            raise HTTPException(status_code=400, detail="the recording is empty; press record, say the command, then press stop")
        if len(data) > 20 * 2**20:
            raise HTTPException(status_code=413, detail="the recording is longer than a command (over 20 MiB); say one command at a time")
        try:
            config = await run_in_threadpool(config_of, release)
            words, operations = await run_in_threadpool(editing.hear_bytes, config, track, data)
        except SongmillError as err:
            raise HTTPException(status_code=422, detail=str(err)) from None
        return JSONResponse({"words": words, "operations": operations})

    @app.get("/editor/{release}/{track}")
    def editor_page(release: str, track: str):
        # a page, so its errors are pages too: a release never rendered, a track it does not have
        if not (track.isascii() and track.isdigit()):
            return HTMLResponse(error_html(f"the track is a number (1, 2, …), not '{track}'"), status_code=404)
        try:
            track_of(release, int(track))
        except HTTPException as err:
            return HTMLResponse(error_html(str(err.detail)), status_code=err.status_code)
        return HTMLResponse(editor_html(release, int(track)))


def error_html(sentence: str) -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'><title>songmill editor</title></head><body style='font-family:sans-serif;margin:1.5em'><h1>songmill editor</h1><p>{html.escape(sentence)}</p></body></html>"


def editor_data(config: str, track: int) -> dict:
    """The page's data: the track's versions, its sections and lyrics, the current master's
    waveform, the suggestions."""
    from operators.settings import load_airflow_settings
    from songmill.engine import editing

    return editing.editor_state(config, track=track, waveform_points=WAVEFORM_POINTS, out_dir=load_airflow_settings().out_path)


def editor_html(release: str, track: int) -> str:
    """The page: plain HTML and a small script over the JSON endpoints and Airflow's REST API."""
    from operators.settings import web_path

    title = f"songmill editor — {html.escape(release)} track {track}"
    base = web_path(f"/songmill/api/editor/{release}/{track}")  # behind Airflow's base path, where it has one
    script = (
        """
const BASE = __BASE__, AIRFLOW_API = __AIRFLOW_API__, RELEASE = __RELEASE__, TRACK = __TRACK__;
const $ = id => document.getElementById(id);
let state = null, shownCurrent = null;
async function load() {
  const res = await fetch(BASE, {credentials: 'same-origin'});
  const loaded = await res.json();
  if (!res.ok) { say(detail(loaded), true); return false; }  // what was shown stays, and so does `state`
  state = loaded;
  $('title').textContent = state.title;
  play('current', `${BASE}/versions/${state.current}/${LISTEN}`);
  $('current-label').textContent = `version ${state.current}`;
  const previous = state.previous;
  if (previous) { play('previous', `${BASE}/versions/${previous}/${LISTEN}`); } else { $('previous').removeAttribute('src'); }
  $('previous-label').textContent = previous ? `version ${previous}` : '(no earlier version)';
  drawWaveform();
  $('lyrics').innerHTML = state.lyrics.map(s => `<h4>${esc(s.label)}</h4><p>${s.lines.map(esc).join('<br>')}</p>`).join('');
  if (state.current !== shownCurrent) { $('ab-box').hidden = true; comparing++; shownCurrent = state.current; if (against === state.current) against = null; }  // its B was the old "now"
  if (against !== null && !state.versions.some(v => v.number === against)) against = null;
  $('ab-against').innerHTML = `<option value="">now (version ${state.current})</option>`
    + state.versions.filter(v => v.number !== state.current).map(v => `<option value="${v.number}">version ${v.number}</option>`).join('');
  $('ab-against').value = against === null ? '' : String(against);
  drawHistory();
  $('undo').title = state.previous ? `version ${state.previous} again` : 'nothing to undo: this is the track as its config renders it';
  $('redo').title = state.redo ? `version ${state.redo} again (the last undo set it aside)` : 'nothing to redo: no version was undone since the last edit';
  $('suggestions').innerHTML = state.suggestions.map((s, i) => `<li>${esc(s.reason)} <button data-i="${i}" class="apply">apply</button></li>`).join('') || '<li>nothing to suggest</li>';
  $('suggestions').innerHTML += (state.tried_in_vain || []).map(t => `<li class="tried">${esc(t)}</li>`).join('');
  document.querySelectorAll('.apply').forEach(b => { b.onclick = () => apply({operations: [state.suggestions[b.dataset.i].operation], reason: state.suggestions[b.dataset.i].reason}); });
  setBusy(busy);  // the buttons just drawn, Undo and Redo as busy and the new state allow
  return true;
}
// a player's source set again reloads it (and stops it): only when it is another file
function play(id, url) { if ($(id).getAttribute('src') !== url) $(id).src = url; }
let against = null;  // the version the history's A/B buttons compare with: null is the current one ("now")
function drawHistory() {
  const other = against === null ? state.current : against, name = against === null ? 'now' : `version ${against}`;
  $('history').innerHTML = state.versions.map(v => `<li class="${v.number === state.current ? 'current' : ''}">v${v.number} · ${esc(v.what)}${v.read_as ? ` <small class="read-as">(read as ${esc(v.read_as)})</small>` : ''}${v.why ? ` (why: ${esc(v.why)})` : ''} · ${esc(v.author)} · recomputed ${esc(v.recomputed.join(', ') || 'nothing')}`
    + (v.number === state.current ? '' : ` <button class="make-current" data-v="${v.number}">make current</button>`)
    + (v.number === other ? '' : ` <button class="compare" data-v="${v.number}">A/B with ${name}</button>`) + '</li>').join('');
  document.querySelectorAll('.compare').forEach(b => { b.disabled = busy; b.onclick = () => compare(Number(b.dataset.v), other); });
  document.querySelectorAll('.make-current').forEach(b => { b.disabled = busy; b.onclick = () => move(`versions/${b.dataset.v}/current`, n => `version ${n} is current`, 'switching', b.dataset.v); });
}
$('ab-against').onchange = () => { against = $('ab-against').value === '' ? null : Number($('ab-against').value); if (state) drawHistory(); };
// Opus where the browser plays it (a seventeenth of the WAV), else the master itself
const LISTEN = document.createElement('audio').canPlayType('audio/ogg; codecs=opus') ? 'listen' : 'audio';
function detail(out) { const d = out && out.detail; return Array.isArray(d) ? d.map(e => e.msg || JSON.stringify(e)).join('; ') : (d && d.message) || d || 'no answer'; }
let busy = false;  // one edit at a time from this page: a second click would make a second version
function setBusy(on) {  // record stays usable while a recording is on, so it can always be stopped
  busy = on; $('send').disabled = on; $('record').disabled = on && !recorder;
  $('undo').disabled = on || !(state && state.previous); $('redo').disabled = on || !(state && state.redo);
  document.querySelectorAll('.apply, .make-current, .compare').forEach(b => b.disabled = on);
}
function say(text, error) { $('status').textContent = text; $('status').className = error ? 'error' : ''; }
function esc(t) { const d = document.createElement('div'); d.textContent = t; return d.innerHTML; }
function drawWaveform() {
  const c = $('wave'), g = c.getContext('2d'), w = c.width, h = c.height, peaks = state.waveform, total = state.duration_s;
  g.clearRect(0, 0, w, h);
  state.sections.forEach((s, i) => { const x = s.start_s / total * w, width = (s.end_s - s.start_s) / total * w;
    g.fillStyle = i % 2 ? '#eef3fb' : '#f8f8f8'; g.fillRect(x, 0, width, h);
    g.fillStyle = '#345'; g.font = '11px sans-serif'; let label = s.label;  // shortened to fit its section ("pre-ch…")
    while (label.length > 1 && g.measureText(label).width > width - 5) label = label.slice(0, label.length - 2) + '…';
    g.fillText(label, x + 3, 12); });
  g.fillStyle = '#4a6fa5';
  peaks.forEach((p, i) => { const x = i / peaks.length * w, y = p * (h - 16) / 2; g.fillRect(x, h / 2 + 8 - y, Math.max(w / peaks.length, 1), 2 * y); });
}
async function apply(conf) {
  if (busy) return;
  setBusy(true);
  try { await start(conf); }
  catch (err) { say(`the edit could not be started (${err.message}); try again`, true); setBusy(false); }
}
async function start(conf) {
  say('reading the command…');
  const asked = {command: (conf.command || '').trim(), operations: conf.operations || []};
  const checked = await fetch(`${BASE}/check`, {method: 'POST', credentials: 'same-origin', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(asked)});
  const read = await checked.json();
  if (!checked.ok) { say(detail(read), true); setBusy(false); return; }  // nothing started, nothing changed
  const upcoming = Math.max(...state.versions.map(v => v.number)) + 1;
  say(`starting an edit run: ${read.operations.join('; ')}`);
  const res = await fetch(`${AIRFLOW_API}/dags/songmill_edit/dagRuns`, {method: 'POST', credentials: 'same-origin', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({logical_date: null, conf: {release: RELEASE, track: TRACK, ...asked, reason: conf.reason || $('reason').value || '', deliver: $('deliver').checked}})});
  const run = await res.json();
  if (!res.ok) { say(`not started: ${detail(run)}`, true); setBusy(false); return; }
  hideAudition(); $('reason').value = '';  // the reason went with this edit: the next one gives its own
  follow(run.dag_run_id, upcoming);
}
async function follow(runId, upcoming) {
  try { await followed(runId, upcoming); }
  catch (err) { say(`lost sight of edit run ${runId} (${err.message}); looking again`, true); setTimeout(() => follow(runId, upcoming), 2000); }
}
async function followed(runId, upcoming) {
  const res = await fetch(`${AIRFLOW_API}/dags/songmill_edit/dagRuns/${encodeURIComponent(runId)}`, {credentials: 'same-origin'});
  const run = await res.json();
  if ([401, 403, 404].includes(res.status)) {  // logged out, no longer allowed, or the run is gone: asking again will not help
    say(`cannot follow edit run ${runId}: ${detail(run)}; reload the page`, true); setBusy(false); return;
  }
  if (!res.ok) throw new Error(detail(run));
  const waits = run.state === 'queued' && await paused();
  say(waits ? 'the edit waits: the DAG songmill_edit is paused in Airflow; unpause it (Dags → songmill_edit) and the edit starts' : `edit run ${run.state}`, waits);
  if (run.state === 'success') { doneWithAudition(); setBusy(false);
    if (await load()) say(`version ${state.current} is ready` + (run.conf && run.conf.deliver ? ' and delivered' : '')); return; }
  if (run.state === 'failed') { say(`the edit failed: ${await failure(runId)}`, true); setBusy(false);
    $('audition-label').textContent = 'the edit that failed (not a version)'; return; }
  if ($('audition-box').hidden) { await showAudition(upcoming, runId); }
  setTimeout(() => follow(runId, upcoming), 2000);
}
async function paused() {
  const res = await fetch(`${AIRFLOW_API}/dags/songmill_edit`, {credentials: 'same-origin'});
  return res.ok && (await res.json()).is_paused;
}
async function failure(runId) {  // the failed task's one sentence (its XCom `error`), else where to look
  for (const task of ['parse', 'render', 'deliver']) {
    const res = await fetch(`${AIRFLOW_API}/dags/songmill_edit/dagRuns/${encodeURIComponent(runId)}/taskInstances/${task}/xcomEntries/error?deserialize=true`, {credentials: 'same-origin'});
    const said = res.ok ? (await res.json()).value : '';
    if (said) return said;
  }
  return `see the logs of run ${runId} of songmill_edit in Airflow`;
}
async function showAudition(upcoming, runId) {  // the new mix, mastered before the gate: heard while the version is finished
  const res = await fetch(`${BASE}/auditions/${upcoming}`, {credentials: 'same-origin'});
  if (!res.ok || !(await res.json()).ready) return;
  $('audition').src = `${BASE}/auditions/${upcoming}/${LISTEN}?run=${encodeURIComponent(runId)}`;
  $('audition-label').textContent = `version ${upcoming}, before the gate and the watermark`;
  $('audition-box').hidden = false;
}
$('send').onclick = () => apply({command: $('command').value});
async function move(path, done, what, target) {  // another version current: its files from the store, nothing rendered
  if (busy) return;
  setBusy(true);
  say(`making version ${target} current…`);
  let out = null, asked = false;
  try { const res = await fetch(`${BASE}/${path}`, {method: 'POST', credentials: 'same-origin'}); asked = true; out = await res.json();
    if (!res.ok) { say(detail(out), true); out = null; } }
  catch (err) { if (!asked) say(`${what} could not be asked (${err.message}); try again`, true); else say(`${what} was asked, but its answer was lost (${err.message}); reload the page before asking again`, true); }
  try { if (await load() && out) say(done(out.current)); }  // after a refusal too: another page may have moved the track
  catch (err) { say(`${out ? done(out.current) : what + ' refused'}; the page could not be brought up to date (${err.message}): reload it`, true); }
  finally { setBusy(false); }
}
let comparing = 0;  // the latest comparison asked for: an earlier one answering later is dropped
async function compare(a, b) {  // the changed section of two versions, matched by the loudness meter (`songmill preview`)
  const asked = ++comparing;
  say(`comparing version ${a} with version ${b}…`);
  try { const res = await fetch(`${BASE}/ab/${a}/${b}`, {credentials: 'same-origin'}); const out = await res.json();
    if (asked !== comparing) return;
    if (!res.ok) { say(detail(out), true); return; }
    const listen = LISTEN === 'listen' ? '' : '?listen=false';
    [[a, 'ab-a'], [b, 'ab-b']].forEach(([number, id], i) => { $(id).src = out.players[i] + listen;
      $(`${id}-label`).textContent = `version ${number}, ${out.seconds[i][0]}–${out.seconds[i][1]} s`; });
    $('ab-title').textContent = `A/B: ${out.section}, both at ${out.lufs} LUFS`; $('ab-box').hidden = false;
    const changes = entries => Object.entries(entries).map(([name, [was, now]]) => `${name.replace(/[._]/g, ' ')} ${JSON.stringify(was)} → ${JSON.stringify(now)}`);
    $('ab-differs').textContent = `asked: ${changes(out.spec).join('; ') || 'nothing'}; notes changed in: ${out.notes_changed_in.join(', ') || 'no section'}; measured: ${changes(out.measures).join('; ') || 'the same'}`;
    say(`version ${a} against version ${b}: ${out.section}, matched in loudness`); }
  catch (err) { if (asked === comparing) say(`the comparison could not be asked (${err.message}); try again`, true); }
}
$('undo').onclick = () => move('undo', n => `version ${n} is current again`, 'undo', state.previous);
$('redo').onclick = () => move('redo', n => `version ${n} is current again`, 'redo', state.redo);
$('command').onkeydown = e => { if (e.key === 'Enter' && !busy) $('send').click(); };
// one player at a time: A/B, now and before are heard in turn, never over each other
document.querySelectorAll('audio').forEach(player => player.addEventListener('play', () =>
  document.querySelectorAll('audio').forEach(other => { if (other !== player) other.pause(); })));
function hideAudition() { const a = $('audition'); a.onended = a.onpause = null; a.pause(); a.removeAttribute('src'); a.load(); $('audition-box').hidden = true; }
function doneWithAudition() {  // the version is ready: an audition someone is listening to plays on until it ends or is paused
  const a = $('audition');
  if (a.paused || $('audition-box').hidden) { hideAudition(); return; }
  $('audition-label').textContent = '(the version is ready: "Now" plays it)'; a.onended = a.onpause = hideAudition;
}
let recorder = null;
$('record').onclick = async () => {
  if (recorder) { recorder.stop(); return; }
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({audio: true}); }
  catch (err) {  // none there, or there and refused: each its own remedy
    const remedy = err.name === 'NotFoundError' ? 'connect one' : err.name === 'NotAllowedError' ? 'allow this page the microphone' : 'check its connection and settings';
    say(`no microphone could be opened (${err.name}): ${remedy}, or type the command`, true); return;
  }
  const chunks = []; recorder = new MediaRecorder(stream);
  recorder.ondataavailable = e => chunks.push(e.data);
  recorder.onstop = async () => { stream.getTracks().forEach(t => t.stop()); recorder = null; $('record').textContent = '● record'; $('record').disabled = busy;
    try { const res = await fetch(`${BASE}/hear`, {method: 'POST', credentials: 'same-origin', body: new Blob(chunks)});
      const out = await res.json(); if (res.ok) { $('command').value = out.words; say(`heard: ${out.words}`); } else { say(detail(out), true); } }
    catch (err) { say(`the recording could not be sent (${err.message}); try again`, true); } };
  recorder.start(); $('record').textContent = '■ stop';
};
load();
""".replace("__BASE__", json.dumps(base))
        .replace("__AIRFLOW_API__", json.dumps(web_path("/api/v2")))
        .replace("__RELEASE__", json.dumps(release))
        .replace("__TRACK__", str(int(track)))
    )
    style = (
        "body{font-family:sans-serif;margin:1.5em;max-width:1000px}canvas{width:100%;border:1px solid #ccc;border-radius:4px}"
        ".row{display:flex;gap:2em;flex-wrap:wrap}.col{flex:1;min-width:280px}#command{width:60%}#reason{width:40%}li.current{font-weight:bold}#status{color:#264;margin:.5em 0}#status.error{color:#a22}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head><body>"
        f"<h1 id='title'>{html.escape(release)}</h1><canvas id='wave' width='1000' height='140'></canvas>"
        "<div class='row'><div class='col'><h3>Now <small id='current-label'></small></h3><audio id='current' controls preload='metadata'></audio>"
        "<h3>Before <small id='previous-label'></small></h3><audio id='previous' controls preload='metadata'></audio>"
        "<div id='audition-box' hidden><h3>Coming <small id='audition-label'></small></h3><audio id='audition' controls preload='none'></audio></div></div>"
        f"<div class='col'><h3>Change it</h3><label for='command'>Command</label> <small>(for example: the chorus should hit harder)</small><br>"
        f"<input id='command' maxlength='{COMMAND_MAX_CHARS}'> <button id='send'>Apply</button> "
        "<button id='record'>● record</button> <button id='undo' disabled>Undo</button> <button id='redo' disabled>Redo</button><br><label>why (kept in the history) <input id='reason' maxlength='500'></label><br>"
        "<label><input type='checkbox' id='deliver'> deliver the new version</label><div id='status'></div>"
        "<h3>Suggestions</h3><ul id='suggestions'></ul></div></div>"
        "<div id='ab-box' hidden><h3 id='ab-title'></h3><p id='ab-differs'></p><div class='row'><div class='col'>A <small id='ab-a-label'></small><br><audio id='ab-a' controls preload='none'></audio></div>"
        "<div class='col'>B <small id='ab-b-label'></small><br><audio id='ab-b' controls preload='none'></audio></div></div></div>"
        "<div class='row'><div class='col'><h3>Lyrics</h3><div id='lyrics'></div></div><div class='col'><h3>History</h3><label>A/B against <select id='ab-against'></select></label><ul id='history'></ul></div></div>"
        f"<script>{script}</script></body></html>"
    )
