"""Warm Airflow's execution API before the first task calls it.

    python -m operators.execution_api http://localhost:8080 --wait 240   # a pod's postStart hook

The execution API (the one task processes call) is a Cadwyn app that builds its versioned
routes on its first request: about 2.8 s on 2 cores, once per api-server process. Unwarmed,
that first request is the first task's, and every run's first task after a start waits for it.
One request to `/execution/health` builds them. `make airflow` asks once its api-server answers;
the compose stack's health check asks; the Kubernetes values run this module as the api-server
container's postStart hook (deploy/kubernetes/airflow-values.yaml).

A warm-up only: whatever happens, the module exits 0 (a failing postStart hook would have
Kubernetes kill the container) and says in one sentence on stderr when it could not warm.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import time
import urllib.error
import urllib.request

HEALTH_PATH = "/execution/health"
REQUEST_TIMEOUT_S = 30.0  # the first request builds the routes: seconds, not milliseconds
POLL_S = 1.0


def warm(url: str, *, wait_s: float = 0.0) -> bool:
    """Request `url`'s execution API health once it answers, trying for up to `wait_s` seconds
    while nothing listens yet (an api-server still starting). True once any answer came back —
    an error status too: answering means the routes are built. False, with one sentence on
    stderr, when no answer came within the wait."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(url.rstrip("/") + HEALTH_PATH, timeout=REQUEST_TIMEOUT_S) as response:
                response.read()
            return True
        except urllib.error.HTTPError:
            return True
        except (OSError, http.client.HTTPException) as err:  # refused, reset, timed out, a garbled answer: not up yet, or not there at all
            if time.monotonic() + POLL_S > deadline:
                print(
                    f"the Airflow execution API at {url} did not answer its warm-up within {wait_s:g} s ({err}); the first task will wait for it instead",
                    file=sys.stderr,
                )
                return False
            time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://localhost:8080", help="the api-server's address (default http://localhost:8080)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="how long to wait for the api-server to start answering (default 0)")
    args = parser.parse_args(argv)
    try:
        warm(args.url, wait_s=args.wait)
    except Exception as err:  # noqa: BLE001 - a warm-up never fails its caller (a bad address, say)
        print(f"the Airflow execution API at {args.url} could not be warmed ({err}); the first task will wait for it instead", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
