"""The plugin's feedback pages and endpoint, behind Airflow's login (added to the plugin's app).

- `GET /songmill/feedback/report.html` — `songmill feedback report --html`, live;
- `GET /songmill/review` — the review queue: each queued track's master to listen to, a rating,
  approve and reject (the page posts to the endpoint below with the user's login);
- `GET /songmill/review/tracks/<track id>/audio` — a queued track's newest master (WAV);
- `POST /songmill/api/feedback/verdicts` — JSON `{"track": ISRC or id, "rating": 1–5,
  "verdict": "approve" | "reject", "comment": "…"}`; the user is the logged-in one. Only JSON is
  taken (a form on another site cannot send it without the browser asking first), so a
  logged-in browser cannot be made to post a verdict by another page;
- `GET /songmill/api/feedback/queue` — the queue as JSON.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.
import html
import json

FEEDBACK_DAG_ID = "songmill_feedback_inbox"  # a verdict changes what this DAG's feedback feeds: editing it is the permission


def add_feedback_routes(app, current_user) -> None:
    """`current_user(request, changes=None)` (async) returns the logged-in user's name, or raises
    401/403 when there is no login or the user may not read runs (or change `changes`' runs)."""
    from fastapi import HTTPException, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    from songmill.catalogue import Catalogue, shared_catalogue
    from songmill.core.errors import SongmillError

    def catalogue() -> Catalogue:
        """The catalogue the tasks write to (its Airflow Connection, as in a task), kept open."""
        from operators.hooks import hook_from_settings
        from operators.settings import load_airflow_settings

        hook_from_settings(load_airflow_settings()).configure_engine()
        return shared_catalogue()

    @app.get("/feedback/report.html")
    def feedback_report_page():
        from songmill.engine.planning import load_catalogue_plan
        from songmill.feedback.report import feedback_report, report_html

        return HTMLResponse(report_html(feedback_report(catalogue(), prior_plays=load_catalogue_plan().feedback.prior_plays)))

    @app.get("/api/feedback/queue")
    def queue_json():
        from songmill.feedback.review import review_queue

        return JSONResponse(review_queue(catalogue()))

    @app.post("/api/feedback/verdicts")
    async def post_verdict(request: Request):
        from songmill.feedback.review import record_verdict

        user = await current_user(request, changes=FEEDBACK_DAG_ID)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(status_code=415, detail="send the verdict as JSON (Content-Type: application/json)")
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise HTTPException(status_code=400, detail='the body is not JSON; send {"track": ISRC, "rating": 1-5, "verdict": "approve"|"reject"}') from None
        if not isinstance(body, dict) or "track" not in body:
            raise HTTPException(status_code=400, detail='the verdict names no track; send {"track": ISRC or id, ...}')
        unknown = sorted(set(body) - {"track", "rating", "verdict", "comment"})
        if unknown:
            raise HTTPException(status_code=400, detail=f"a verdict has no field {', '.join(unknown)}; its fields are track, rating, verdict, comment")
        try:
            row = record_verdict(catalogue(), body["track"], user=user, rating=body.get("rating"), verdict=body.get("verdict"), comment=body.get("comment"))
        except SongmillError as err:
            raise HTTPException(status_code=404 if str(err).startswith("no track") else 400, detail=str(err)) from None
        return JSONResponse(row, status_code=201)

    @app.get("/review/tracks/{track_id}/audio")
    def review_audio(track_id: int):
        from sqlalchemy import select

        from songmill.catalogue.schema import Artifact, ReviewItem
        from songmill.core.paths import cache_dir
        from songmill.core.store import ArtifactRef, open_store

        with catalogue().session() as s:
            if s.scalar(select(ReviewItem).where(ReviewItem.track_id == track_id)) is None:
                raise HTTPException(status_code=404, detail=f"track {track_id} is not in the review queue")
            artifact = s.scalar(select(Artifact).where(Artifact.track_id == track_id, Artifact.name.like("master-%.wav")).order_by(Artifact.id.desc()))
        if artifact is None:
            raise HTTPException(status_code=404, detail=f"track {track_id} has no master in the artifact store")
        cached = cache_dir() / "review" / f"{artifact.sha256}.wav"
        if not cached.is_file():
            open_store().get_file(ArtifactRef(artifact.name, artifact.sha256, artifact.bytes, artifact.uri), cached)
        return FileResponse(cached, media_type="audio/wav")

    @app.get("/review")
    def review_page():
        from songmill.feedback.review import review_queue

        return HTMLResponse(review_html(review_queue(catalogue())))


def review_html(rows: list[dict]) -> str:
    from operators.settings import web_path

    root = web_path("/songmill")  # behind Airflow's base path, where it has one
    items = []
    for r in rows:
        status = html.escape(r["status"])
        items.append(
            f"""<section class="item" data-track="{r["track_id"]}">
<h3>{html.escape(r["title"])} <small>{html.escape(r["release_id"])} #{r["number"]} · {html.escape(r["isrc"] or "no ISRC yet")}</small></h3>
<p>{html.escape(r["reason"])} · status <b class="status">{status}</b></p>
<audio controls preload="none" src="{html.escape(root)}/review/tracks/{r["track_id"]}/audio"></audio>
<div class="actions">
<label>rating <select class="rating"><option value="">—</option>{"".join(f"<option>{n}</option>" for n in range(1, 6))}</select></label>
<label>comment (optional) <input class="comment" size="40"></label>
<button class="approve">Approve</button> <button class="reject">Reject (withhold from delivery)</button>
<span class="result"></span></div></section>"""
        )
    script = """
const ROOT = __ROOT__;
document.querySelectorAll('.item').forEach(item => {
  const send = async verdict => {
    const rating = item.querySelector('.rating').value;
    const body = {track: Number(item.dataset.track), verdict, comment: item.querySelector('.comment').value || null};
    if (rating) body.rating = Number(rating);
    const res = await fetch(`${ROOT}/api/feedback/verdicts`, {method: 'POST', headers: {'Content-Type': 'application/json'}, credentials: 'same-origin', body: JSON.stringify(body)});
    const out = await res.json();
    item.querySelector('.result').textContent = res.ok ? `recorded: ${out.verdict} by ${out.user}` : `not recorded: ${out.detail}`;
    if (res.ok) item.querySelector('.status').textContent = verdict === 'approve' ? 'approved' : 'rejected';
  };
  item.querySelector('.approve').onclick = () => send('approve');
  item.querySelector('.reject').onclick = () => send('reject');
});""".replace("__ROOT__", json.dumps(root))
    style = "body{font-family:sans-serif;margin:2em;max-width:900px}.item{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:1em 0}small{color:#666;font-weight:normal}.result{margin-left:1em;color:#264}"
    empty = "<p>The queue is empty: no nightly track is waiting for a person's ear.</p>" if not rows else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>songmill — review queue</title><style>{style}</style></head><body>"
        f"<h1>Review queue</h1><p>The tracks of each nightly batch whose appeal the line is least sure of. A rejected track is withheld from delivery; every verdict feeds the feedback store. <a href='{html.escape(root)}/feedback/report.html'>Feedback report</a></p>"
        f"{empty}{''.join(items)}<script>{script}</script></body></html>"
    )
