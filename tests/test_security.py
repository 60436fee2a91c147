"""Security: the web surfaces locked down, secrets kept out of what songmill writes, models
loaded without pickle, XML parsed without external entities, the compose file closed by default,
and the pinned requirements audited. Each test is named in the README's Reliability section.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_airflow import migrated_airflow  # noqa: F401  (the fixture)

PROJECT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("songmill", "models", "qc", "operators", "plugins", "dags", "scripts", "benchmarks")
PATH_VALUES = {
    "release_id": "debug-single",
    "run_id": "1",
    "track_id": "1",
    "release": "debug-single",
    "track": "1",
    "number": "1",
    "a": "1",
    "b": "1",
    "name": "v0001-v0001-chorus-a-v0001.wav",
    "dag_id": "songmill_release_debug",
    "dag_run_id": "manual__2026-12-05T10:00:00+00:00",
}


# ------------------------------------------------------------------ the plugin's routes


def plugin_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the plugin serves under /songmill, path parameters filled:
    read from the app itself, so a route added later is tested without editing this list."""
    sys.path.insert(0, str(PROJECT / "plugins"))
    try:
        from songmill_plugin import _reports_app
    finally:
        sys.path.remove(str(PROJECT / "plugins"))
    routes = []
    for route in _reports_app().routes:
        if not hasattr(route, "methods") or route.path.startswith(("/docs", "/openapi", "/redoc")):
            continue
        path = re.sub(r"\{(\w+)(?::path)?\}", lambda m: PATH_VALUES[m.group(1)], route.path)  # {name} and {name:path}
        routes += [(method, "/songmill" + path) for method in sorted(route.methods - {"HEAD"})]
    return routes


@pytest.fixture()
def api(migrated_airflow, monkeypatch, tmp_path):  # noqa: F811
    """Airflow's API app in-process with the simple auth manager: `admin` (role admin) and
    `reader` (role viewer: reads, changes nothing); returns (client, tokens by kind)."""
    from starlette.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,reader:viewer")
    monkeypatch.setenv("SONGMILL_OUT_DIR", str(tmp_path / "dist"))
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    client = TestClient(create_app(), follow_redirects=False)
    passwords = json.loads((migrated_airflow / "simple_auth_manager_passwords.json.generated").read_text())

    def token(user: str) -> str:
        answer = client.post("/auth/token", json={"username": user, "password": passwords[user]})
        assert answer.status_code == 201, answer.text
        return answer.json()["access_token"]

    import jwt

    expired = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"), expiration_time_in_seconds=-3600)
    forged = jwt.encode({"sub": "admin", "role": "admin", "aud": "apache-airflow", "exp": 4102444800}, "not-the-server-secret-" * 4, algorithm="HS512")
    return client, {"admin": token("admin"), "reader": token("reader"), "expired": expired, "forged": forged}


def call(client, method: str, path: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"json": {"track": "QZSGM2600001", "rating": 4, "verdict": "approve"}} if method == "POST" else {}
    return client.request(method, path, headers=headers, **body)


@pytest.mark.long
def test_every_plugin_route_refuses_no_login_an_expired_or_forged_token_and_a_user_without_the_permission(api):
    client, tokens = api
    routes = plugin_routes()
    assert ("POST", "/songmill/api/feedback/verdicts") in routes and ("GET", "/songmill/releases/debug-single/run-report.json") in routes
    assert ("POST", "/songmill/api/editor/debug-single/1/undo") in routes and ("GET", "/songmill/editor/debug-single/1") in routes
    for method, path in routes:
        anonymous = call(client, method, path)
        if method == "GET":  # a browser: sent to the login page
            assert anonymous.status_code == 307 and anonymous.headers["location"].startswith("/auth/login"), (path, anonymous.status_code)
        else:
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
        assert call(client, method, path, tokens["expired"]).status_code == 401, (method, path)
        assert call(client, method, path, tokens["forged"]).status_code == 403, (method, path)
        for user in ("admin", "reader"):
            answer = call(client, method, path, tokens[user])
            changes = {"verdicts": "songmill_feedback_inbox", "/api/editor/": "songmill_edit"}
            changed = next((dag for part, dag in changes.items() if part in path), None) if method == "POST" else None
            if user == "reader" and changed:
                assert answer.status_code == 403 and f"reader may not change runs of {changed}" in answer.json()["detail"], (method, path)
            else:
                assert answer.status_code not in (401, 403), (user, method, path, answer.status_code)


def test_a_name_in_a_route_cannot_reach_outside_the_output_folder(api, tmp_path):
    """`..`, URL-encoded, doubly encoded, and a symlink planted in the output folder: each 404."""
    client, tokens = api
    secret = tmp_path / "outside" / "run-report.json"
    secret.parent.mkdir()
    secret.write_text('{"secret": "not for the web"}')
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "linked").symlink_to(secret.parent)
    (tmp_path / "dist" / "real").mkdir()
    (tmp_path / "dist" / "real" / "run-report.json").write_text("{}")
    auth = {"Authorization": f"Bearer {tokens['admin']}"}
    assert client.get("/songmill/releases/real/run-report.json", headers=auth).status_code == 200  # the control
    for attempt in [
        "/songmill/releases/linked/run-report.json",
        "/songmill/releases/..%2Foutside/run-report.json",
        "/songmill/releases/%2e%2e/outside/run-report.json",
        "/songmill/releases/%252e%252e%252foutside/run-report.json",
        "/songmill/releases/..%5Coutside/run-report.json",
        "/songmill/releases/real/runs/1/..%2F..%2F..%2Foutside/run-report.json",
        "/songmill/releases/%2e%2e%2f%2e%2e%2fetc/qc-report.html",
    ]:
        answer = client.get(attempt, headers=auth)
        assert answer.status_code == 404, (attempt, answer.status_code)
        assert "not for the web" not in answer.text
    # the review audio route takes a number: a name is refused before any lookup
    assert client.get("/songmill/review/tracks/..%2F1/audio", headers=auth).status_code in (404, 422)
    # an upload's name only picks its suffix: nothing is written where the name points
    target = tmp_path / "written-by-upload.wav"
    client.post(f"/songmill/verify?name={target}", content=b"RIFF0000WAVE", headers=auth)
    client.post("/songmill/verify?name=../../../../" + str(target).lstrip("/"), content=b"RIFF0000WAVE", headers=auth)
    assert not target.exists()


# ------------------------------------------------------------------ secrets

CANARY = "canary-7f3a9c2e51d84b06"


@pytest.mark.long
@pytest.mark.s3
def test_a_canary_secret_in_every_configured_place_never_reaches_a_log_report_message_or_tag(tmp_path, postgres_url):
    """The catalogue's password (PostgreSQL here trusts the local user, so any password opens
    it), the S3 secret key (the store is started with it) and the S3 access key all carry the
    canary; a whole render and its delivery are searched for it, bytes of every file included
    (tags live inside the audio files), and so are the command's output and its error for a dead
    database."""
    from sqlalchemy.engine import make_url

    from tests import servers

    database = make_url(postgres_url).set(password=CANARY).render_as_string(hide_password=False)
    with servers.seaweedfs(access_key=f"key-{CANARY}", secret_key=CANARY) as (endpoint, key, secret):
        env = {
            **os.environ,
            "SONGMILL_DATABASE_URL": database,
            "SONGMILL_STORE": "s3://songmill-canary/run",
            "SONGMILL_S3_ENDPOINT": endpoint,
            "SONGMILL_S3_ACCESS_KEY": key,
            "SONGMILL_S3_SECRET_KEY": secret,
            "SONGMILL_LOG_LEVEL": "DEBUG",
        }
        out = tmp_path / "dist"
        done = subprocess.run(
            [sys.executable, "-m", "songmill", "render", str(PROJECT / "config/releases/debug.yaml"), "--out", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        dead = subprocess.run(
            [sys.executable, "-m", "songmill", "catalogue", "ls"],
            env={**env, "SONGMILL_DATABASE_URL": f"postgresql+psycopg2://songmill:{CANARY}@127.0.0.1:9/x"},
            capture_output=True,
            text=True,
        )
    assert dead.returncode != 0 and "unreachable" in dead.stderr
    for where, text in {"render output": done.stdout + done.stderr, "dead-database error": dead.stdout + dead.stderr}.items():
        assert CANARY not in text, where
    searched = [p for p in out.rglob("*") if p.is_file()] + [p for p in (tmp_path / "var").rglob("*") if p.is_file()]
    kinds = {p.suffix for p in searched}
    assert {".json", ".html", ".xml", ".flac", ".lrc"} <= kinds, kinds  # run and QC reports, the DDEX message, tagged audio, lyrics
    leaks = [str(p) for p in searched if CANARY.encode() in p.read_bytes()]
    assert leaks == []


# ------------------------------------------------------------------ models and XML


def python_files() -> list[Path]:
    return [p for folder in SOURCE_FOLDERS for p in (PROJECT / folder).rglob("*.py")]


def test_models_load_only_from_safetensors_onnx_or_with_weights_only():
    """A scan of the code: torch.load always with weights_only=True, transformers and diffusers
    weights only from safetensors, and no pickle, joblib or np.load(allow_pickle=True) anywhere."""
    problems = []
    for path in python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(PROJECT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                if any(n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "cloudpickle") for n in names):
                    problems.append(f"{where}: imports a pickle loader")
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if name.endswith("torch.load") and keywords.get("weights_only") != "True":
                problems.append(f"{where}: torch.load without weights_only=True")
            if name.endswith(".load") and name.split(".")[0] in ("np", "numpy") and keywords.get("allow_pickle") == "True":
                problems.append(f"{where}: np.load(allow_pickle=True)")
            if name.endswith("from_pretrained") and "Tokenizer" not in name and keywords.get("use_safetensors") != "True":
                problems.append(f"{where}: {name} without use_safetensors=True")
    assert problems == []


def test_a_transformers_model_saved_as_pickle_is_refused(tmp_path):
    """What the scan enforces, seen working: a lyrics LM whose weights are a pickled .bin is
    refused in one sentence instead of being unpickled."""
    import numpy as np

    from models.lyrics.lm_writer import LMWriter
    from models.lyrics.writer import RuleWriter
    from songmill.core.errors import SongmillError
    from tests.conftest import build_tiny_lm

    folder = build_tiny_lm(tmp_path / "lm")
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(str(folder), use_safetensors=True)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    import torch

    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # the old format: a pickle, which could run code
    assert (folder / "pytorch_model.bin").is_file()
    with pytest.raises(SongmillError, match=r"lyrics model 'pickled' at .* cannot be loaded"):
        rules = RuleWriter(title="t", theme="the sea", mood="hopeful", genre="pop", rng=np.random.default_rng(0))
        LMWriter(folder, model_name="pickled", rule_writer=rules, theme="the sea", mood="hopeful", seed=1)


XXE = """<?xml version="1.0"?>
<!DOCTYPE NewReleaseMessage [<!ENTITY leak SYSTEM "file://{secret}">]>
<NewReleaseMessage><MessageHeader><MessageId>&leak;</MessageId></MessageHeader></NewReleaseMessage>
"""


def test_every_xml_parser_refuses_external_entities(tmp_path):
    """The XML songmill parses: a DDEX message it checks before delivery, and an XSD named by
    SONGMILL_DDEX_SCHEMA. An XXE payload naming a local file is refused, and the file's text
    appears nowhere."""
    from songmill.core.errors import SongmillError
    from songmill.release import ddex

    secret = tmp_path / "secret.txt"
    secret.write_text(CANARY)
    with pytest.raises(SongmillError) as refused:
        ddex.validate(XXE.format(secret=secret).encode())
    assert "DOCTYPE" in str(refused.value) and CANARY not in str(refused.value)
    schema = tmp_path / "evil.xsd"
    schema.write_text(
        f'<?xml version="1.0"?><!DOCTYPE xs:schema [<!ENTITY leak SYSTEM "file://{secret}">]>'
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="a" type="xs:string"/>'
        "<xs:annotation><xs:documentation>&leak;</xs:documentation></xs:annotation></xs:schema>"
    )
    with pytest.raises(SongmillError) as schema_refused:
        ddex._schema(str(schema))
    assert CANARY not in str(schema_refused.value)
    for path in python_files():  # and no other parser is used without the hardened one
        text = path.read_text()
        if path.name != "ddex.py" and re.search(r"etree\.(fromstring|parse|XML)\(|xml\.dom|xml\.sax|ElementTree", text):
            pytest.fail(f"{path.relative_to(PROJECT)} parses XML outside songmill/release/ddex.py's hardened parser")


# ------------------------------------------------------------------ deployment and dependencies


def test_the_compose_file_binds_to_localhost_unless_told_and_has_no_default_password():
    compose = yaml.safe_load((PROJECT / "docker-compose.yaml").read_text())
    text = (PROJECT / "docker-compose.yaml").read_text()
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("${SONGMILL_BIND_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port} beyond this machine"
    for match in re.finditer(r"^\s*([A-Z0-9_]*(PASSWORD|SECRET|_KEY)[A-Z0-9_]*):\s*(.+)$", text, re.M):
        if match.group(1).endswith(("_FILE", "_ID")):
            continue  # where a secret is kept, not the secret
        value = match.group(3).strip().strip("'\"")
        assert value.startswith("${") and ":?" in value, f"{match.group(1)} has a default ({value})"
    assert not re.search(r"\$\{[A-Z_]*(PASSWORD|SECRET)[A-Z_]*:-", text), "a secret with a default value"


def test_the_pinned_requirements_pass_the_dependency_audit():
    """scripts/audit_dependencies.py against the vulnerability database installed from the
    registry (safety-db); the policy is in the script and the README."""
    done = subprocess.run([sys.executable, str(PROJECT / "scripts/audit_dependencies.py"), "--json"], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout)
    assert report["packages"] > 150 and report["database"]["advisories"] > 1000
    assert done.returncode == 0, report["failing"]


def test_the_audit_fails_a_known_vulnerable_pin(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("jinja2==2.7.1\nrequests==2.31.0\n")
    done = subprocess.run([sys.executable, str(PROJECT / "scripts/audit_dependencies.py"), "--requirements", str(requirements)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "jinja2 2.7.1" in done.stdout and "pyup.io-25865" in done.stdout
