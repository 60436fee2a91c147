"""Shared fixtures. Every test gets its own var/ (store, catalogue) so tests never share state."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests import servers

PROJECT = Path(__file__).resolve().parents[1]
DEBUG = PROJECT / "config" / "releases" / "debug.yaml"  # the shortest real song: every stage, a few seconds
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Airflow reads its home and settings once, when first imported: every test process gets one
# throwaway home (SQLite metadata, this project's DAGs and plugin) before anything imports it.
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="songmill-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "false",
    }
)
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
# Derived data that every test may share (the parsed corpus tunes of a refinement): one folder a session.
CACHE = Path(tempfile.mkdtemp(prefix="songmill-cache-"))
os.environ["SONGMILL_CACHE_DIR"] = str(CACHE)
atexit.register(shutil.rmtree, CACHE, ignore_errors=True)


# Test-only delivery identity (the ISRC prefix is the ISRC Agency's made-up example, as in config/demo-identity.yaml): the DDEX Party IDs and ISRC registrant a label gets from DDEX and its
# ISRC agency. The repository's config/ ships none (a render there delivers without DDEX).
TEST_SENDER = {"name": "Songmill Test Label", "dpid": "PADPIDA0000000000T"}
TEST_RECIPIENTS = {
    name: {"name": f"{name.title()} Test Distributor", "dpid": f"PADPIDA000000000{i}T"}
    for i, name in enumerate(("streaming", "apple", "hires", "preview"), start=1)
}


@pytest.fixture(scope="session", autouse=True)
def test_config_dir(tmp_path_factory):
    """The project's config/ with a test sender, ISRC registrant, distributor recipients and a
    throw-away C2PA signing key added, as SONGMILL_CONFIG_DIR for the whole session (module fixtures render with it too)."""
    import shutil

    import yaml

    from songmill.release.credentials import write_test_credentials

    folder = tmp_path_factory.mktemp("config") / "config"
    shutil.copytree(PROJECT / "config", folder)
    profiles = yaml.safe_load((folder / "profiles.yaml").read_text())
    for name, recipient in TEST_RECIPIENTS.items():
        profiles["profiles"][name]["recipient"] = recipient
        # The watermark costs a render about 3 s (marking, the gate's and the delivery's readings):
        # off here, on in `watermarked_config_dir`, which the provenance tests use.
        profiles["profiles"][name]["watermark"] = False
    (folder / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    delivery = yaml.safe_load((folder / "delivery.yaml").read_text())
    delivery["sender"] = TEST_SENDER
    delivery["identifiers"].update({"isrc_country": "AA", "isrc_registrant": "6Q7"})
    # a throw-away CA and signing certificate: every test delivery carries Content Credentials
    credentials = write_test_credentials(folder.parent / "signing")
    delivery["signing"] = {"certificate_chain": str(credentials["chain"]), "private_key": str(credentials["key"])}
    (folder / "delivery.yaml").write_text(yaml.safe_dump(delivery, sort_keys=False))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SONGMILL_CONFIG_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def watermarked_config_dir(test_config_dir, tmp_path_factory):
    """The test config with every profile's watermark on, as shipped (config/profiles.yaml)."""
    import shutil

    import yaml

    folder = tmp_path_factory.mktemp("config-watermarked") / "config"
    shutil.copytree(test_config_dir, folder)
    profiles = yaml.safe_load((folder / "profiles.yaml").read_text())
    for profile in profiles["profiles"].values():
        profile["watermark"] = True
    (folder / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    return folder


@pytest.fixture
def unsigned_delivery(test_config_dir, tmp_path, monkeypatch):
    """Deliveries without Content Credentials, for tests that compare delivered bytes between runs:
    a C2PA signature differs every time (a random instance id, an ECDSA nonce), all else must not."""
    import yaml

    delivery = yaml.safe_load((test_config_dir / "delivery.yaml").read_text())
    delivery.pop("signing")
    path = tmp_path / "delivery-unsigned.yaml"
    path.write_text(yaml.safe_dump(delivery, sort_keys=False))
    monkeypatch.setenv("SONGMILL_DELIVERY_CONFIG", str(path))
    return path


@pytest.fixture(autouse=True)
def isolated_var(tmp_path, monkeypatch):
    """Point the store and the SQLite catalogue at a per-test folder."""
    var = tmp_path / "var"
    monkeypatch.setenv("SONGMILL_VAR_DIR", str(var))
    monkeypatch.delenv("SONGMILL_STORE", raising=False)
    monkeypatch.delenv("SONGMILL_DATABASE_URL", raising=False)
    return var


def write_registry_with(extra: dict[str, dict], path: Path, identities: dict[str, dict] | None = None) -> Path:
    """A model registry file: the shipped entries (paths made absolute) plus `extra` entries,
    each given as {name: {backend, path, …}} with the folder's tree hash filled in; the shipped
    voice identities plus `identities`."""
    import yaml

    from models.registry import DEFAULT_REGISTRY, ModelRegistry, tree_sha256

    shipped_file = yaml.safe_load(DEFAULT_REGISTRY.read_text())
    entries = shipped_file["models"]
    shipped = ModelRegistry.load(DEFAULT_REGISTRY)
    for name, entry in entries.items():
        entry["path"] = str(shipped.local_path(shipped.get(name)))
    for name, entry in extra.items():
        entries[name] = {"version": "test", "licence": "Apache-2.0", "commercial_use": True, "sha256": tree_sha256(Path(entry["path"])), **entry}
    path.write_text(yaml.safe_dump({"models": entries, "identities": {**shipped_file["identities"], **(identities or {})}}))
    return path


TINY_LM_VOCABULARY = """
the a and of to in on my your we I you our night light bright sight flight tight white right
river summer love lantern over drift fire glow slow go know show below home alone stone bone
day way stay grey away say play rain again remain pain chain heart apart start dark spark
sea free me be see tree believe leave breathe sky high fly why try sun run one done gold hold
cold told old world water morning golden silver quiet gentle burning falling waiting dreaming
""".split()


def build_tiny_lm(folder: Path) -> Path:
    """A tiny, randomly initialised GPT-2 with a word-level tokenizer over TINY_LM_VOCABULARY,
    saved in `folder` as a transformers model (no download)."""
    import torch
    from tokenizers import Regex, Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[UNK]", "<eos>", "\n"] + list(dict.fromkeys(TINY_LM_VOCABULARY))
    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"[ \t]+"), behavior="removed"), pre_tokenizers.Split("\n", behavior="isolated")]
    )
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", eos_token="<eos>", pad_token="<eos>").save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(words), n_positions=256, n_embd=32, n_layer=2, n_head=2, bos_token_id=1, eos_token_id=1)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def build_tiny_command_lm(folder: Path) -> Path:
    """A tiny, randomly initialised GPT-2 over single characters (so any operation's JSON spells
    out), saved in `folder` as a transformers model with its tokenizer (no download)."""
    import string

    import torch
    from tokenizers import Regex, Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    symbols = list(dict.fromkeys(["[UNK]", "<eos>", *string.printable, "–"]))
    tokenizer = Tokenizer(WordLevel({c: i for i, c in enumerate(symbols)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", eos_token="<eos>", pad_token="<eos>").save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(symbols), n_positions=256, n_embd=64, n_layer=2, n_head=2, bos_token_id=1, eos_token_id=1)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def render_release_text(text: str, folder: Path, *, config_dir: Path | None = None) -> dict:
    """Write a release config into `folder`, render it with its own var/ there (and `config_dir`
    as the config folder, when given), return the report (for module fixtures: one render shared
    by a file's tests)."""
    import json

    from songmill.engine.runner import render

    config = folder / "release.yaml"
    config.write_text(text)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SONGMILL_VAR_DIR", str(folder / "var"))
        if config_dir is not None:
            env.setenv("SONGMILL_CONFIG_DIR", str(config_dir))
        report = json.loads(render(config, out_dir=folder / "dist").read_text())
    assert report["status"] == "succeeded", report.get("delivery_error")
    return report


@pytest.fixture(scope="session")
def postgres_server_url():
    """SONGMILL_TEST_DATABASE_URL (a server you run), else an embedded PostgreSQL we start."""
    configured = os.environ.get("SONGMILL_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with servers.embedded_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url, request):
    """A fresh, empty database on the test server for one test."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    name = "songmill_" + request.node.name.lower().translate(str.maketrans("[]-.", "____"))[:40]
    admin = sqlalchemy.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def s3_server():
    with servers.seaweedfs() as server:
        yield server


def writable(blob: Path) -> Path:
    """A store's blob made writable by its owner, for a test to damage it: the store keeps blobs
    read-only (root writes them anyway; a user running the tests does not)."""
    blob.chmod(blob.stat().st_mode | 0o200)
    return blob


def debug_release(folder: Path, *, tracks: int = 1) -> Path:
    """The debug release (config/releases/debug.yaml) written into `folder`; with `tracks=2` a
    second track, an instrumental in another key, tempo and seed, for multi-track runs."""
    import yaml

    config = yaml.safe_load(DEBUG.read_text())
    second = {key: value for key, value in config["tracks"][0].items() if key != "voice"}
    second.update(title="River Lights", mood="calm", tempo=96, key="D major", seed=12)
    config["tracks"] = [config["tracks"][0], second][:tracks]
    path = folder / f"debug-{tracks}.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# The longest files first: with two xdist workers taking a file at a time, the run ends when the
# last file does, so a long file left to the end would keep one worker busy while the other idles.
LONGEST_FIRST = (
    "test_soak.py",
    "test_release.py",
    "test_provenance.py",
    "test_production.py",
    "test_editor.py",
    "test_faults.py",
    "test_render.py",
    "test_qc.py",
    "test_singing.py",
    "test_qc_musical.py",
    "test_airflow.py",
    "test_diffusion.py",
    "test_security.py",
    "test_feedback.py",
    "test_refinement.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order
