"""Audit the pinned requirements against a vulnerability database that installs from the package
registry, offline: `safety-db` (PyUp's free database, pinned in requirements.txt).

    python scripts/audit_dependencies.py [--requirements FILE] [--json]

Policy (what fails CI): any pinned `name==version` that an advisory in the database covers,
unless scripts/audit-allowlist.yaml names that advisory for that package with a reason and a
review date not yet passed. Exit 0 clean, 1 a failing advisory, 2 the database or the file
cannot be read.

The limit, said plainly: the newest safety-db on PyPI is 2021.7.17, so this finds what was known
by July 2021. Live databases (OSV, PyPI's JSON API behind pip-audit) are not reachable from
these machines; where they are, run `pip-audit -r requirements.txt` as well (README, Reliability).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import re
import sys
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PROJECT = Path(__file__).resolve().parent.parent
ALLOWLIST = PROJECT / "scripts/audit-allowlist.yaml"
PIN = re.compile(r"^\s*([A-Za-z0-9._-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def pinned(requirements: Path) -> dict[str, str]:
    """{canonical name: version} of every `name==version` line (other lines are not pins)."""
    pins = {}
    for line in requirements.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def load_database() -> tuple[dict[str, list[dict]], dict]:
    spec = importlib.util.find_spec("safety_db")  # found, not imported: its __init__ opens a path relative to the working folder
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("safety-db is not installed")
    data = json.loads((Path(spec.origin).parent / "insecure_full.json").read_text())
    meta = data.pop("$meta", {})
    return {canonicalize_name(name): advisories for name, advisories in data.items()}, meta


def findings(pins: dict[str, str], database: dict[str, list[dict]]) -> list[dict]:
    found = []
    for name, version in sorted(pins.items()):
        try:
            parsed = Version(version)
        except InvalidVersion:
            continue
        for advisory in database.get(name, []):
            for spec in advisory.get("specs", []):
                try:
                    covered = parsed in SpecifierSet(spec)
                except InvalidSpecifier:
                    continue
                if covered:
                    found.append(
                        {
                            "package": name,
                            "version": version,
                            "id": advisory["id"],
                            "cve": advisory.get("cve"),
                            "spec": spec,
                            "advisory": advisory["advisory"][:300],
                        }
                    )
                    break
    return found


def allowed(finding: dict, allowlist: list[dict], today: dt.date) -> bool:
    return any(
        entry["package"] == finding["package"] and entry["id"] == finding["id"] and dt.date.fromisoformat(str(entry["review_by"])) >= today
        for entry in allowlist
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, default=PROJECT / "requirements.txt")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)
    try:
        pins = pinned(args.requirements)
        database, meta = load_database()
    except (OSError, ModuleNotFoundError, ValueError) as err:
        print(f"error: the audit cannot run ({err}); `make setup` installs safety-db from requirements.txt", file=sys.stderr)
        return 2
    import yaml

    allowlist = (yaml.safe_load(ALLOWLIST.read_text()) or []) if ALLOWLIST.is_file() else []
    today = dt.date.today()
    found = findings(pins, database)
    failing = [f for f in found if not allowed(f, allowlist, today)]
    report = {
        "requirements": str(args.requirements),
        "packages": len(pins),
        "database": {
            "name": "safety-db",
            "as_of": dt.datetime.fromtimestamp(meta.get("timestamp", 0), dt.UTC).date().isoformat(),
            "advisories": sum(map(len, database.values())),
        },
        "findings": found,
        "failing": failing,
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{len(pins)} pinned packages against {report['database']['advisories']} advisories (safety-db as of {report['database']['as_of']})")
        for f in found:
            state = "FAIL" if f in failing else "allowed"
            print(f"  {state} {f['package']} {f['version']}: {f['id']} ({f['cve'] or 'no CVE'}, affects {f['spec']})")
        print(
            "clean" if not failing else f"{len(failing)} advisories fail the audit; upgrade the pin or add a reviewed entry to {ALLOWLIST.relative_to(PROJECT)}"
        )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
