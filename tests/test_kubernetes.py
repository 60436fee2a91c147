"""The Kubernetes deployment (deploy/kubernetes), checked offline.

- The manifests validate against the Kubernetes schemas (kubernetes-validate, strict: an unknown
  field fails) for the oldest and newest versions the chart supports.
- The gpu pod template, loaded by the cncf-kubernetes provider as the KubernetesExecutor loads a
  pod override, merged by the provider onto a worker pod as the chart renders it: the pod that
  results lands on a GPU node, asks for one GPU, runs the CUDA image as a non-root user, and is
  itself a valid Pod.
- The release DAG built with the deployment's settings sends its gpu stages to that executor
  with that override, and nothing else.
- The Helm values: every Kubernetes object inside them (resources, volumes, node selectors, the
  api-server's postStart hook) validated by embedding it in a Pod; the chart's own rules that its schema does not catch at
  the top level (the executor string, env entries without valueFrom, secrets by reference).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT

KUBE = PROJECT / "deploy" / "kubernetes"
VERSIONS = ("1.30", "1.37")  # the chart's oldest supported Kubernetes, and the newest schema bundled
# The top-level keys of the Apache Airflow chart 1.22.0 that this deployment uses. The chart's
# values.schema.json rejects unknown nested keys but not unknown top-level ones (a typo such as
# `worker:` would be ignored silently), so this list is the check for those.
CHART_TOP_LEVEL = {
    "airflowVersion", "defaultAirflowTag", "images", "executor", "postgresql", "data", "fernetKeySecretName",
    "apiSecretKeySecretName", "jwtSecretName", "redis", "secret", "env", "config", "apiServer", "scheduler",
    "dagProcessor", "triggerer", "workers",
}  # fmt: skip
EXECUTOR_PATTERN = r"^(([a-zA-Z_][a-zA-Z0-9_]*\.)*[A-Z][a-zA-Z0-9]+Executor)(,(([a-zA-Z_][a-zA-Z0-9_]*\.)*[A-Z][a-zA-Z0-9]+Executor))*$"


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def validate_strict(obj: dict) -> None:
    import kubernetes_validate

    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def as_dict(pod) -> dict:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


def values() -> dict:
    return yaml.safe_load((KUBE / "airflow-values.yaml").read_text())


@pytest.mark.parametrize("name", ["volumes.yaml", "gpu-pod-template.yaml"])
def test_each_manifest_is_valid_for_kubernetes(name):
    for document in documents(KUBE / name):
        validate_strict(document)


def test_strict_validation_catches_a_misspelt_field():
    import kubernetes_validate

    pod = documents(KUBE / "gpu-pod-template.yaml")[0]
    broken = copy.deepcopy(pod)
    broken["spec"]["containers"][0]["imagePullPolcy"] = broken["spec"]["containers"][0].pop("imagePullPolicy")
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolcy"):
        validate_strict(broken)


def chart_worker_pod():
    """A worker pod as the chart's pod template renders it (trimmed to what the merge touches):
    container `base` with the Airflow image, the Secret-backed env values.yaml names, the config."""
    from kubernetes.client import models as k8s

    env = [k8s.V1EnvVar(name=e["name"], value=e["value"]) for e in values()["env"]]
    env += [
        k8s.V1EnvVar(name=s["envName"], value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name=s["secretName"], key=s["secretKey"])))
        for s in values()["secret"]
    ]
    # the chart's template adds workers.extraVolumes and extraVolumeMounts to the pod it renders
    workers = values()["workers"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "placeholder-name", "labels": {"tier": "airflow", "component": "worker", "release": "songmill"}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "songmill-airflow-worker",
            "nodeSelector": workers["nodeSelector"],
            "containers": [
                {
                    "name": "base",
                    "image": "registry.example.com/songmill-airflow:0.1.0",
                    "resources": workers["resources"],
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/opt/airflow/airflow.cfg", "subPath": "airflow.cfg", "readOnly": True},
                        *workers["extraVolumeMounts"],
                    ],
                }
            ],
            "volumes": [{"name": "config", "configMap": {"name": "songmill-config"}}, *workers["extraVolumes"]],
        },
    }
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    base = PodGenerator.deserialize_model_dict(pod)
    base.spec.containers[0].env = env
    return base


def test_the_provider_merges_the_gpu_template_into_a_valid_pod_on_a_gpu_node(monkeypatch):
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    from operators.settings import AirflowSettings

    monkeypatch.setenv("SONGMILL_GPU_EXECUTOR", "KubernetesExecutor")
    monkeypatch.setenv("SONGMILL_GPU_POD_TEMPLATE", "deploy/kubernetes/gpu-pod-template.yaml")
    routing = AirflowSettings().gpu_routing()
    override = routing["executor_config"]["pod_override"]
    assert as_dict(override) == as_dict(PodGenerator.deserialize_model_file(str(KUBE / "gpu-pod-template.yaml")))  # as the provider reads files
    pod = PodGenerator.construct_pod(
        dag_id="songmill_release_demo",
        task_id="track.vocals",
        pod_id="songmill-release-demo-track-vocals",
        try_number=1,
        kube_image="registry.example.com/songmill-airflow:0.1.0",
        date=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        args=["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}"],
        pod_override_object=override,
        base_worker_pod=chart_worker_pod(),
        namespace="songmill",
        scheduler_job_id="1",
        run_id="manual__2026-12-01",
        map_index=0,
    )
    merged = as_dict(pod)
    validate_strict(merged)
    spec, base = merged["spec"], merged["spec"]["containers"][0]
    assert base["name"] == "base" and base["image"].endswith("songmill-airflow-gpu:0.1.0")  # the CUDA image, from the override
    assert base["resources"]["limits"]["nvidia.com/gpu"] == "1" and base["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 50000
    env = {e["name"]: e for e in base["env"]}
    assert env["AIRFLOW_CONN_SONGMILL_STORE"]["valueFrom"]["secretKeyRef"] == {"name": "songmill-connections", "key": "store"}  # by reference
    assert env["HF_HUB_OFFLINE"]["value"] == "1"
    names, mounts = [v["name"] for v in spec["volumes"]], [m["mountPath"] for m in base["volumeMounts"]]
    assert sorted(names) == ["config", "dist", "models"] and len(set(mounts)) == len(
        mounts
    )  # the chart's volumes, each once (Kubernetes refuses a pod naming one twice)
    assert merged["metadata"]["labels"]["task_id"] == "track.vocals" and base["args"][-1] == "{}"


def test_the_release_dag_sends_only_the_gpu_stages_to_the_kubernetes_executor(monkeypatch, test_config_dir):
    monkeypatch.setenv("SONGMILL_CONFIG_DIR", str(test_config_dir))
    monkeypatch.setenv("SONGMILL_GPU_EXECUTOR", "KubernetesExecutor")
    monkeypatch.setenv("SONGMILL_GPU_POD_TEMPLATE", str(KUBE / "gpu-pod-template.yaml"))
    from dags.songmill_releases import build_release_dags

    dag = next(iter(build_release_dags().values()))
    tasks = {t.task_id: t for t in dag.tasks}
    vocals = tasks["track.vocals"]
    assert vocals.executor == "KubernetesExecutor" and vocals.queue == "gpu" and vocals.pool == "gpu"
    assert as_dict(vocals.executor_config["pod_override"])["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    others = [t for name, t in tasks.items() if name != "track.vocals"]
    assert others and all(t.executor is None and not t.executor_config for t in others)


@pytest.mark.parametrize(
    "env, expected",
    [
        (
            {"SONGMILL_GPU_POD_TEMPLATE": "deploy/kubernetes/gpu-pod-template.yaml"},
            "gpu_pod_template deploy/kubernetes/gpu-pod-template.yaml is set but gpu_executor is not",
        ),
        ({"SONGMILL_GPU_EXECUTOR": "KubernetesExecutor", "SONGMILL_GPU_POD_TEMPLATE": "deploy/kubernetes/nowhere.yaml"}, "nowhere.yaml does not exist"),
        (
            {"SONGMILL_GPU_EXECUTOR": "KubernetesExecutor", "SONGMILL_GPU_POD_TEMPLATE": "deploy/kubernetes/volumes.yaml"},
            "is not one readable YAML document (line 15: but found another document)",
        ),
        ({"SONGMILL_GPU_EXECUTOR": "KubernetesExecutor", "SONGMILL_GPU_POD_TEMPLATE": "SERVICE"}, "is not a Kubernetes Pod (kind: Pod)"),
    ],
)
def test_a_wrong_gpu_pod_setting_is_one_sentence(monkeypatch, tmp_path, env, expected):
    from operators.settings import AirflowSettings
    from songmill.core.errors import SongmillError

    service = tmp_path / "service.yaml"
    service.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: songmill}\n")
    for name, value in env.items():
        monkeypatch.setenv(name, str(service) if value == "SERVICE" else value)
    with pytest.raises(SongmillError, match=re.escape(expected)) as err:
        AirflowSettings().gpu_routing()
    assert "\n" not in str(err.value)


def test_the_helm_values_hold_valid_kubernetes_objects_and_follow_the_chart():
    from kubernetes.client import ApiClient  # noqa: F401 - the client the provider uses; validation below is schema-only

    v = values()
    assert set(v) <= CHART_TOP_LEVEL, set(v) - CHART_TOP_LEVEL
    assert re.match(EXECUTOR_PATTERN, v["executor"]) and v["executor"] == "CeleryExecutor,KubernetesExecutor"
    assert v["airflowVersion"] == v["defaultAirflowTag"] == "3.3.2"
    assert all(set(e) == {"name", "value"} and isinstance(e["value"], str) for e in v["env"])  # the chart refuses valueFrom in env
    assert all(set(s) == {"envName", "secretName", "secretKey"} for s in v["secret"])
    text = (KUBE / "airflow-values.yaml").read_text()
    assert not re.search(r"(?i)(password|secret|key)\s*:\s*['\"]?[A-Za-z0-9+/=]{16,}", text)  # no credential written in
    assert v["config"]["scheduler"]["task_instance_heartbeat_timeout"] <= 300
    # each component's Kubernetes objects, in a Pod, against the schemas
    for component in ("apiServer", "scheduler", "dagProcessor", "triggerer", "workers"):
        part = v[component]
        container = {"name": "base", "image": "songmill-airflow", "resources": part["resources"], "volumeMounts": part.get("extraVolumeMounts", [])}
        if "containerLifecycleHooks" in part:  # the chart writes them as the container's lifecycle
            container["lifecycle"] = part["containerLifecycleHooks"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": component.lower()},
            "spec": {
                "containers": [container],
                "volumes": part.get("extraVolumes", []),
                **({"nodeSelector": part["nodeSelector"]} if "nodeSelector" in part else {}),
            },
        }
        validate_strict(pod)
    claims = {d["metadata"]["name"] for d in documents(KUBE / "volumes.yaml") if d["kind"] == "PersistentVolumeClaim"}
    used = {vol["persistentVolumeClaim"]["claimName"] for c in ("apiServer", "workers") for vol in v[c]["extraVolumes"] if "persistentVolumeClaim" in vol}
    assert used <= claims
    path = next(e["value"] for e in v["env"] if e["name"] == "SONGMILL_GPU_POD_TEMPLATE")
    assert path == "/opt/songmill/deploy/kubernetes/gpu-pod-template.yaml" and "COPY --chown=airflow:0 deploy deploy" in (PROJECT / "Dockerfile").read_text()


class _Recorder:
    """An HTTP server on 127.0.0.1 that answers every GET with `status` and keeps the paths asked."""

    def __init__(self, status: int, port: int = 0):
        import http.server
        import threading

        paths = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                paths.append(self.path)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [200, 404])
def test_the_api_servers_post_start_hook_warms_the_execution_api(status):
    """The hook the values give the api-server, run as the pod would run it (its module from the
    image's PYTHONPATH, here the project), against a server that answers: one request to the
    execution API's health, and exit 0 whatever the answer (an answer means its routes are built)."""
    import subprocess
    import sys

    command = values()["apiServer"]["containerLifecycleHooks"]["postStart"]["exec"]["command"]
    assert command[:3] == ["python", "-m", "operators.execution_api"] and command[3] == "http://localhost:8080"
    server = _Recorder(status)
    try:
        done = subprocess.run([sys.executable, *command[1:3], server.url, *command[4:]], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    assert done.returncode == 0 and done.stderr == ""
    assert server.paths == ["/execution/health"]


def test_a_warm_up_with_nothing_listening_says_so_in_one_sentence_and_exits_0(capsys):
    """An api-server that never came up within the wait: the hook gives up, says why in one
    sentence, and exits 0 (a failing postStart hook would have Kubernetes kill the container)."""
    from operators.execution_api import main, warm
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert warm(url, wait_s=0) is False
    said = capsys.readouterr().err.strip()
    assert said.startswith(f"the Airflow execution API at {url} did not answer its warm-up within 0 s") and said.endswith(
        "the first task will wait for it instead"
    )
    assert "\n" not in said
    assert main([url, "--wait", "0"]) == 0
    capsys.readouterr()
    assert main(["localhost-without-a-scheme", "--wait", "0"]) == 0  # urllib refuses it outright (ValueError)
    said = capsys.readouterr().err.strip()
    assert said.startswith("the Airflow execution API at localhost-without-a-scheme could not be warmed (") and "\n" not in said


def test_the_warm_up_waits_for_an_api_server_that_is_still_starting():
    """postStart runs beside the container's entrypoint: the api-server may listen only seconds
    later. The warm-up keeps trying within its wait, then makes its one request."""
    import threading

    from operators.execution_api import warm
    from tests.servers import free_port

    port = free_port()
    started: list[_Recorder] = []
    later = threading.Timer(1.5, lambda: started.append(_Recorder(200, port)))
    later.start()
    try:
        assert warm(f"http://127.0.0.1:{port}", wait_s=30) is True
    finally:
        later.join()
        for server in started:
            server.close()
    assert started[0].paths == ["/execution/health"]
