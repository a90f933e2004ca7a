"""The deployment files, checked offline: compose and CI files against the JSON schemas that
check-jsonschema vendors, Kubernetes manifests against the schemas kubernetes-validate ships."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from engine.worker import STOP_SECONDS

ROOT = Path(__file__).resolve().parents[2]
K8S = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
TEST_COMMAND = "./bin/test --all"  # the slow tests too


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess:
    # --builtin-schema: the schema inside the installed package, so nothing is fetched.
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", f"vendor.{schema}", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("compose-spec", "docker-compose.yml"),
        ("github-workflows", ".github/workflows/ci.yml"),
        ("gitlab-ci", ".gitlab-ci.yml"),
    ],
)
def test_file_matches_its_schema(schema, path):
    run = check_jsonschema(schema, ROOT / path)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("schema", "path", "break_it"),
    [
        ("compose-spec", "docker-compose.yml", lambda d: d["services"]["web"].update(ports="8000")),
        ("github-workflows", ".github/workflows/ci.yml", lambda d: d["jobs"]["test"].pop("runs-on")),
        ("gitlab-ci", ".gitlab-ci.yml", lambda d: d["test"].update(script=42)),
    ],
)
def test_schema_check_catches_a_broken_file(tmp_path, schema, path, break_it):
    data = yaml.safe_load((ROOT / path).read_text())
    break_it(data)
    broken = tmp_path / Path(path).name
    broken.write_text(yaml.safe_dump(data))
    assert check_jsonschema(schema, broken).returncode != 0


def k8s_documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in K8S for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize(
    ("name", "doc"), k8s_documents(), ids=lambda v: v if isinstance(v, str) else v["kind"]
)
def test_kubernetes_manifest_is_valid(name, doc):
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_validation_catches_a_typo():
    web = next(doc for name, doc in k8s_documents() if doc["kind"] == "Deployment" and name == "web.yaml")
    container = web["spec"]["template"]["spec"]["containers"][0]
    broken = json.loads(json.dumps(web))
    broken["spec"]["template"]["spec"]["containers"][0] = {**container, "readinesProbe": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_has_what_the_service_needs():
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in k8s_documents()}
    assert {
        ("Deployment", "mailer-web"), ("Deployment", "mailer-worker"), ("Service", "mailer-web"),
        ("Ingress", "mailer"), ("ConfigMap", "mailer-config"), ("Secret", "mailer-secrets"),
        ("Job", "mailer-migrate"),
    } <= kinds  # fmt: skip
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in k8s_documents()}
    web = docs["Deployment", "mailer-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The kubelet's Host header must pass ALLOWED_HOSTS.
    allowed = docs["ConfigMap", "mailer-config"]["data"]["ALLOWED_HOSTS"].split(",")
    for probe in (web["livenessProbe"], web["readinessProbe"]):
        assert probe["httpGet"]["httpHeaders"] == [{"name": "Host", "value": "localhost"}]
    assert "localhost" in allowed
    worker = docs["Deployment", "mailer-worker"]["spec"]["template"]["spec"]["containers"]
    assert worker[0]["command"] == ["python", "manage.py", "run_worker"]
    # run_worker stops within worker.STOP_SECONDS of SIGTERM: the grace period covers it.
    grace = docs["Deployment", "mailer-worker"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert STOP_SECONDS < grace <= 30
    assert worker[0]["livenessProbe"]["exec"]["command"] == ["python", "manage.py", "check_ready"]
    # The metrics sidecar reads the same multiprocess directory as the worker.
    assert worker[0]["volumeMounts"] == worker[1]["volumeMounts"]
    assert docs["ConfigMap", "mailer-config"]["data"]["PROMETHEUS_MULTIPROC_DIR"] in {
        m["mountPath"] for m in worker[0]["volumeMounts"]
    }
    # Every setting the pods get is one the README documents.
    readme = (ROOT / "README.md").read_text()
    for source in (
        docs["ConfigMap", "mailer-config"]["data"],
        docs["Secret", "mailer-secrets"]["stringData"],
    ):
        for variable in source:
            assert f"`{variable}`" in readme, variable


def test_ci_runs_the_same_test_command_on_sqlite_and_postgresql():
    github = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    steps = github["jobs"]["test"]["steps"]
    runs = [(step["run"], step.get("env", {}).get("DATABASE_URL", "")) for step in steps if "run" in step]
    assert [cmd for cmd, _ in runs] == [TEST_COMMAND, TEST_COMMAND]
    assert runs[0][1] == "" and runs[1][1].startswith("postgres://")
    assert "postgres" in github["jobs"]["test"]["services"]

    gitlab = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    script = gitlab["test"]["script"]
    assert script[0] == TEST_COMMAND
    assert re.fullmatch(r"DATABASE_URL=postgres://\S+ \./bin/test --all", script[1])
    assert any(s["name"].startswith("postgres:") for s in gitlab["test"]["services"])


def seconds(duration: str) -> int:
    return int(duration.removesuffix("s"))


def test_compose_runs_migrate_once_before_web_and_worker():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"db", "migrate", "web", "worker", "provider"}
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["restart"] == "no"
    # The same worker command everywhere, with a grace period that covers its stop.
    assert services["worker"]["command"] == ["python", "manage.py", "run_worker"]
    assert STOP_SECONDS < seconds(services["worker"]["stop_grace_period"]) <= 30
    assert (ROOT / "Procfile").read_text().splitlines()[1] == "worker: python manage.py run_worker"
    # Web and worker count into one volume, so the web's /metrics shows both.
    mount = f"prometheus:{services['web']['environment']['PROMETHEUS_MULTIPROC_DIR']}"
    assert mount in services["web"]["volumes"] and mount in services["worker"]["volumes"]


def test_kubernetes_runs_what_compose_runs():
    """One image, the same commands and the same grace periods, in compose and in Kubernetes."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in k8s_documents()}
    kinds = {"web": "Deployment", "worker": "Deployment", "migrate": "Job"}
    pods = {name: docs[kind, f"mailer-{name}"]["spec"]["template"]["spec"] for name, kind in kinds.items()}
    assert {c["image"] for pod in pods.values() for c in pod["containers"]} == {
        "registry.example.com/mailer:latest"
    }
    assert {services[name]["image"] for name in ("web", "worker", "migrate", "provider")} == {"mailer:latest"}
    assert {services[name]["build"]["context"] for name in ("web", "worker", "migrate")} == {"."}
    main = {name: pod["containers"][0] for name, pod in pods.items()}
    # web: the image's own command (gunicorn) in both.
    assert "command" not in services["web"] and not {"command", "args"} & set(main["web"])
    assert services["worker"]["command"] == main["worker"]["command"] == ["python", "manage.py", "run_worker"]
    # migrate: compose empties the shared metrics volume first; a Job's volume starts empty.
    assert services["migrate"]["command"][-1].endswith(f"exec {' '.join(main['migrate']['command'])}")
    for name in ("web", "worker"):
        assert seconds(services[name]["stop_grace_period"]) == pods[name]["terminationGracePeriodSeconds"]
    graceful = re.search(r'"--graceful-timeout", "(\d+)"', (ROOT / "Dockerfile").read_text())
    assert int(graceful[1]) < seconds(services["web"]["stop_grace_period"])


def test_compose_publishes_the_buffering_proxy_not_gunicorn():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "ports" not in services["web"]
    assert services["proxy"]["ports"] == ["${WEB_PORT:-8000}:8080"]
    assert services["proxy"]["depends_on"] == {"web": {"condition": "service_healthy", "restart": True}}
    mount = "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro"
    assert services["proxy"]["volumes"] == [mount]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "listen 8080;" in nginx and "server web:8000;" in nginx
    assert re.search(r"location = /metrics \{\s*return 404;", nginx)
    # Client addresses come from the entry the proxy appends, which the app trusts only so told.
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in nginx
    assert services["web"]["environment"]["BEHIND_PROXY"] == "true"
    # The demo's stand-in posts receipts to http://web:8000/, a host the web must accept.
    assert "web" in re.fullmatch(
        r"\$\{ALLOWED_HOSTS:-(.*)\}", services["web"]["environment"]["ALLOWED_HOSTS"]
    )[1].split(",")
    assert "--host 0.0.0.0" in services["provider"]["command"][-1]
    # An import of MAILER_IMPORT_MAX_MB (its default) gets through, here as through the ingress;
    # both proxies wait as long as gunicorn's --timeout.
    body = re.search(r"client_max_body_size (\d+m);", nginx)[1]
    limit = re.search(r'"MAILER_IMPORT_MAX_MB", "(\d+)"', (ROOT / "mailer/settings.py").read_text())[1]
    assert int(body.removesuffix("m")) > int(limit)
    ingress = next(doc for _, doc in k8s_documents() if doc["kind"] == "Ingress")["metadata"]["annotations"]
    assert ingress["nginx.ingress.kubernetes.io/proxy-body-size"] == body
    timeout = re.search(r'"--timeout", "(\d+)"', (ROOT / "Dockerfile").read_text())[1]
    assert f"proxy_read_timeout {timeout}s;" in nginx
    assert ingress["nginx.ingress.kubernetes.io/proxy-read-timeout"] == timeout


def test_dockerfile_basics():
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") == 1
    # The official image by default; deploy/smoke passes a stand-in where it can't be pulled.
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.12-slim\nFROM \$\{PYTHON_IMAGE\}$", text, re.MULTILINE)
    assert re.search(r"^USER mailer$", text, re.MULTILINE) and "useradd" in text
    assert "collectstatic --noinput" in text
    # Secrets kept beside the compose file (.env) never go into an image that may be pushed.
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()
    assert re.search(r'^CMD \["gunicorn", "mailer.wsgi"', text, re.MULTILINE)


@pytest.mark.parametrize(("given", "workers"), [(None, 2 * len(os.sched_getaffinity(0)) + 1), ("3", 3)])
def test_gunicorn_runs_twice_the_cores_plus_one_sync_workers_unless_told(given, workers):
    """gunicorn.conf.py, which gunicorn reads from where the Procfile and the image start it."""
    env = {**os.environ, "WEB_CONCURRENCY": given or "", "DEBUG": "1"}
    if given is None:
        del env["WEB_CONCURRENCY"]
    gunicorn = Path(sys.executable).parent / "gunicorn"
    printed = subprocess.run(
        [gunicorn, "--print-config", "mailer.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    settings = dict(re.findall(r"^(\w+)\s+= (.*)$", printed, re.MULTILINE))
    assert (settings["workers"], settings["worker_class"]) == (str(workers), "sync")
