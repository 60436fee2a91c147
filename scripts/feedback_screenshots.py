#!/usr/bin/env python3
"""Screenshots of the review queue and the feedback report, in headless Chromium behind Airflow's login.

Two steps, two Pythons:

1. `--prepare` (the project's venv): fills a catalogue for the pages to show — renders the debug
   release (a real master to listen to), runs 10 nights of the planning simulation into the same
   catalogue (tracks, plays, posteriors), imports a play log for the rendered track and puts it
   in the review queue:

       export SONGMILL_VAR_DIR=/tmp/fb-ui/var SONGMILL_OUT_DIR=/tmp/fb-ui/dist AIRFLOW_HOME=/tmp/fb-ui/home
       .venv/bin/python scripts/feedback_screenshots.py --prepare
       setsid .venv/bin/python scripts/airflow_local.py --port 8091 > /tmp/fb-ui/airflow.log 2>&1 &

2. the shots (a Python with Playwright, driving the system Chromium; see ui_screenshots.py):

       /tmp/pw/bin/python scripts/feedback_screenshots.py --url http://127.0.0.1:8091 --password "$(…passwords.json…)"

   writes docs/screenshots/5-review-queue.png, 5a-review-rejected.png, 6-feedback-report.png and
   7-logged-out-review-login.png, and exits 1 when a page is not as described (the rejection
   not recorded under the logged-in user, the report without its tables and plots, a
   logged-out browser not sent to the login page).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def prepare() -> None:
    sys.path.insert(0, str(PROJECT))
    import datetime as dt

    from sqlalchemy import select

    from songmill.catalogue import Catalogue
    from songmill.catalogue.schema import Track
    from songmill.engine.runner import render
    from songmill.feedback.ingest import import_file
    from songmill.feedback.review import enqueue_least_certain
    from songmill.feedback.simulate import Population, plays, simulate_nights, write_play_log

    out = Path(__import__("os").environ.get("SONGMILL_OUT_DIR", "/tmp/fb-ui/dist"))
    render(PROJECT / "config" / "releases" / "debug.yaml", out_dir=out, seed=11)
    catalogue = Catalogue.open()
    curve = simulate_nights(10, tracks=12, start=dt.date(2026, 11, 1), catalogue=catalogue)
    with catalogue.session() as s:
        isrc = s.scalar(select(Track.isrc).where(Track.release_id == "debug-single"))
    rng = __import__("numpy").random.default_rng(1)
    rows = plays(Population(), 0.55, rng, isrc=isrc, day=dt.date(2026, 11, 30), duration_s=24.0)
    import_file(write_play_log(rows, out / "debug-plays.csv"), catalogue)
    queued = enqueue_least_certain(catalogue, "debug-single", 1)
    print(f"prepared: preferred share {curve['prior_share']} → {curve['last_nights_share']}; queued {queued}")


def shoot(url: str, user: str, password: str, out: Path) -> int:
    from playwright.sync_api import expect, sync_playwright

    sys.path.insert(0, str(Path(__file__).parent))
    from ui_screenshots import login, new_context

    problems = []
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        context = new_context(browser, url)
        page = login(context, user, password)
        page.goto("/songmill/review")
        expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
        item = page.locator(".item").first
        page.screenshot(path=str(out / "5-review-queue.png"), full_page=True)
        item.locator(".rating").select_option("2")
        item.locator(".comment").fill("the chorus never lifts")
        item.locator(".reject").click()
        expect(item.locator(".result")).to_contain_text("recorded: reject by")
        if user not in item.locator(".result").inner_text():
            problems.append(f"the verdict was not recorded under {user}: {item.locator('.result').inner_text()}")
        page.screenshot(path=str(out / "5a-review-rejected.png"), full_page=True)
        page.goto("/songmill/feedback/report.html")
        expect(page.get_by_role("heading", name="Listener feedback")).to_be_visible()
        plots = page.locator("svg").count()
        if plots < 5:
            problems.append(f"the feedback report shows {plots} plots, fewer than one per attribute")
        page.screenshot(path=str(out / "6-feedback-report.png"), full_page=True)
        stranger = new_context(browser, url).new_page()
        stranger.goto("/songmill/review")
        stranger.wait_for_url(re.compile(r"/auth/login"))
        stranger.screenshot(path=str(out / "7-logged-out-review-login.png"))
        browser.close()
    for problem in problems:
        print(f"problem: {problem}")
    print("\n".join(str(p) for p in sorted(out.glob("[5-7]*.png"))))
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare", action="store_true", help="fill the catalogue (the project's venv)")
    parser.add_argument("--url", default="http://127.0.0.1:8091")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password")
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "screenshots")
    args = parser.parse_args()
    if args.prepare:
        prepare()
        return 0
    if not args.password:
        parser.error("--password is admin's, from $AIRFLOW_HOME/passwords.json")
    return shoot(args.url, args.user, args.password, args.out)


if __name__ == "__main__":
    sys.exit(main())
