"""The deployment files read as docker compose and Kubernetes would, and configure atlas with settings it has.

Neither docker compose nor a cluster is needed: each file is parsed with PyYAML, its references
between objects are followed, and the environment and config file it gives atlas are loaded with
`load_settings`, which refuses unknown or invalid settings as `atlas server` would at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas.config.settings import CONFIG_ENV, ENV_PREFIX, Settings, load_settings, setting_infos

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
KUBERNETES = ROOT / "deploy" / "kubernetes"
DATA_DIR = "/home/atlas/.atlas"
"""The image's data dir (its user's ~/.atlas, see the Dockerfile)."""

KNOWN_ENV = {info.env for info in setting_infos()} | {CONFIG_ENV}
"""Every ATLAS_* variable atlas reads."""

DOT_ENV = {
    "ATLAS_GH_TOKEN": "ghp_fromdotenv",
    "ATLAS_GH_WEBHOOK_SECRET": "webhook-secret-from-dotenv",
    "ATLAS_REPO_ALLOWLIST": "github.com/acme/*",
    "REDIS_PASSWORD": "0123456789abcdef",
}
"""A filled-in .env, as deploy/README.md shows it."""

_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` substitution, and `$$` for a literal `$`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, word = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name, "")
        if value:
            return value
        if kind == "?":
            raise ValueError(f"docker compose refuses to start without {name}: {word}")
        return word if kind == "-" else ""

    return _INTERPOLATION.sub(substitute, text)


def compose(env: Mapping[str, str] = DOT_ENV) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(interpolate(COMPOSE.read_text(), env))
    return data


def settings_from_env(env: Mapping[str, object], config_file: Path | None = None) -> Settings:
    unknown = sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in KNOWN_ENV)
    assert not unknown, f"atlas has no settings named {unknown}"
    return load_settings(env={name: str(value) for name, value in env.items()}, config_file=config_file)


# --- docker-compose.yml ----------------------------------------------------------------------------


def test_compose_runs_redis_web_and_workers_from_one_image() -> None:
    services = compose()["services"]

    assert set(services) == {"redis", "web", "worker"}
    assert services["redis"]["image"].startswith("redis:")
    assert services["web"]["command"] == ["server"]
    assert services["worker"]["command"][:1] == ["worker"] and "--concurrency" in services["worker"]["command"]
    assert services["web"]["image"] == services["worker"]["image"]
    assert services["web"]["ports"] == ["4141:4141"]
    assert "ports" not in services["worker"] and "ports" not in services["redis"]


def test_compose_starts_atlas_once_redis_answers() -> None:
    services = compose()["services"]

    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def redis_persistence(args: list[str]) -> dict[str, str]:
    """The persistence options of a redis-server command line: option → value."""
    return {name: args[i + 1] for i, name in enumerate(args[:-1]) if name in ("--appendonly", "--appendfsync", "--dir")}


def test_redis_keeps_an_append_only_file_on_its_volume_in_compose_and_kubernetes() -> None:
    compose_command = compose()["services"]["redis"]["command"][-1].split()
    [container] = containers(one("StatefulSet", "atlas-redis"))
    expected = {"--appendonly": "yes", "--appendfsync": "everysec", "--dir": "/data"}

    assert redis_persistence(compose_command) == expected
    assert redis_persistence(container["args"]) == expected
    assert "/data" in {mount["mountPath"] for mount in container["volumeMounts"]}


def test_compose_gives_each_service_a_volume_for_its_data() -> None:
    document = compose()
    services = document["services"]

    mounts = {name: services[name]["volumes"] for name in services}
    assert mounts == {"redis": ["redis-data:/data"], "web": [f"web-data:{DATA_DIR}"],
                      "worker": [f"worker-data:{DATA_DIR}"]}
    assert set(document["volumes"]) == {"redis-data", "web-data", "worker-data"}


@pytest.mark.parametrize("service", ["web", "worker"])
def test_compose_configures_atlas_with_settings_it_has(service: str) -> None:
    environment = compose()["services"][service]["environment"]

    settings = settings_from_env(environment)

    assert settings.gh_token is not None and settings.gh_token.get_secret_value() == "ghp_fromdotenv"
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == "redis://:0123456789abcdef@redis:6379/0"
    assert settings.repo_allowlist == ["github.com/acme/*"]
    assert settings.log_format == "json"
    assert not [name for name in environment if not name.startswith(ENV_PREFIX)], "only ATLAS_* reach atlas"
    if service == "web":
        assert settings.web_workers == 2


def test_compose_passes_the_redis_password_to_redis_and_nothing_else() -> None:
    services = compose()["services"]

    assert services["redis"]["environment"] == {"REDISCLI_AUTH": "0123456789abcdef"}
    command = " ".join(services["redis"]["command"])
    assert '--requirepass "$REDISCLI_AUTH"' in command and "0123456789abcdef" not in command
    assert "--maxmemory-policy noeviction" in command


@pytest.mark.parametrize("service", ["web", "worker"])
def test_compose_gives_atlas_what_its_sandbox_needs_and_requires_it(service: str) -> None:
    """Both run terraform (the web service runs drift checks and API plans too)."""
    definition = compose()["services"][service]

    assert set(definition["security_opt"]) == {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}
    assert "cap_add" not in definition and not definition.get("privileged"), "no capability, no privileged mode"
    assert settings_from_env(definition["environment"]).sandbox == "required"


def test_the_image_installs_bubblewrap_and_documents_the_options_it_needs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert re.search(r"apt-get install -y --no-install-recommends [^\n]*\bbubblewrap\b", dockerfile)
    for option in ("seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined", "ATLAS_SANDBOX=required"):
        assert option in dockerfile


def test_compose_refuses_to_start_without_the_secrets() -> None:
    for name in ("ATLAS_GH_TOKEN", "ATLAS_GH_WEBHOOK_SECRET", "REDIS_PASSWORD"):
        env = {key: value for key, value in DOT_ENV.items() if key != name}
        with pytest.raises(ValueError, match=f"without {name}"):
            compose(env)


# --- deploy/kubernetes ------------------------------------------------------------------------------


def manifests() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents += [document for document in yaml.safe_load_all(path.read_text()) if document]
    return documents


def one(kind: str, name: str) -> dict[str, Any]:
    found = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod_spec(workload)["containers"]


def test_kubernetes_manifests_are_the_documented_set_without_namespaces() -> None:
    found = sorted((m["kind"], m["metadata"]["name"]) for m in manifests())

    assert found == [
        ("ConfigMap", "atlas-config"),
        ("Deployment", "atlas-web"),
        ("Deployment", "atlas-worker"),
        ("HorizontalPodAutoscaler", "atlas-worker"),
        ("Ingress", "atlas"),
        ("Secret", "atlas"),
        ("Secret", "atlas-redis"),
        ("Service", "atlas-redis"),
        ("Service", "atlas-web"),
        ("StatefulSet", "atlas-redis"),
    ]
    api_versions = {"ConfigMap": "v1", "Secret": "v1", "Service": "v1", "Deployment": "apps/v1",
                    "StatefulSet": "apps/v1", "Ingress": "networking.k8s.io/v1",
                    "HorizontalPodAutoscaler": "autoscaling/v2"}
    for manifest in manifests():
        assert manifest["apiVersion"] == api_versions[manifest["kind"]], manifest["metadata"]["name"]
        assert "namespace" not in manifest["metadata"], "kubectl apply -n NAMESPACE chooses the namespace"


def test_every_workload_selects_its_own_pods_and_sizes_its_containers() -> None:
    for manifest in manifests():
        if manifest["kind"] not in ("Deployment", "StatefulSet"):
            continue
        selector = manifest["spec"]["selector"]["matchLabels"]
        labels = manifest["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), manifest["metadata"]["name"]
        assert pod_spec(manifest)["automountServiceAccountToken"] is False
        for container in containers(manifest):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
            assert "memory" in resources["limits"], container["name"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            volumes = {volume["name"] for volume in pod_spec(manifest).get("volumes", [])}
            claims = {claim["metadata"]["name"] for claim in manifest["spec"].get("volumeClaimTemplates", [])}
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes | claims, f"{manifest['metadata']['name']}: {mount['name']}"


def test_web_runs_two_replicas_probed_on_healthz() -> None:
    web = one("Deployment", "atlas-web")
    [container] = containers(web)

    assert web["spec"]["replicas"] == 2
    assert container["args"] == ["server"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 4141}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    # A Redis outage fails /healthz: liveness must tolerate it far longer than readiness does.
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > (
        readiness["periodSeconds"] * readiness["failureThreshold"])


def test_workers_are_ready_for_an_autoscaler() -> None:
    worker = one("Deployment", "atlas-worker")
    autoscaler = one("HorizontalPodAutoscaler", "atlas-worker")
    [container] = containers(worker)

    assert container["args"][:1] == ["worker"] and "--concurrency" in container["args"]
    assert "cpu" in container["resources"]["requests"], "CPU utilisation is measured against the request"
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                    "name": "atlas-worker"}
    assert autoscaler["spec"]["minReplicas"] >= 1
    # Workers finish their running jobs on SIGTERM; the pod must be given time to.
    assert pod_spec(worker)["terminationGracePeriodSeconds"] >= 600


@pytest.mark.parametrize("name", ["atlas-web", "atlas-worker"])
def test_kubernetes_configures_atlas_with_settings_it_has(name: str, tmp_path: Path) -> None:
    [container] = containers(one("Deployment", name))
    env: dict[str, object] = {item["name"]: item["value"] for item in container["env"]}
    for source in container["envFrom"]:
        env |= one("Secret", source["secretRef"]["name"])["stringData"]
    # The config file the pod reads: the ConfigMap, mounted where ATLAS_CONFIG points.
    config_path = Path(str(env.pop(CONFIG_ENV)))
    [mount] = [m for m in container["volumeMounts"] if config_path.is_relative_to(m["mountPath"])]
    [volume] = [v for v in pod_spec(one("Deployment", name))["volumes"] if v["name"] == mount["name"]]
    config_map = one("ConfigMap", volume["configMap"]["name"])
    config_file = tmp_path / config_path.name
    config_file.write_text(config_map["data"][config_path.name])

    settings = settings_from_env(env, config_file)

    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value().startswith("redis://:")
    assert settings.repo_allowlist == ["github.com/your-org/*"]
    assert any(m["mountPath"] == DATA_DIR for m in container["volumeMounts"])


@pytest.mark.parametrize("name", ["atlas-web", "atlas-worker"])
def test_kubernetes_pods_can_run_the_sandbox_and_atlas_requires_it(name: str) -> None:
    workload = one("Deployment", name)
    [container] = containers(workload)
    context = container["securityContext"]

    assert pod_spec(workload)["hostUsers"] is False, "a user namespace of the pod's own"
    assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True
    assert context["procMount"] == "Unmasked"
    assert context["seccompProfile"] == {"type": "Unconfined"}
    assert context["appArmorProfile"] == {"type": "Unconfined"}
    assert context["capabilities"] == {"drop": ["ALL"]} and context["allowPrivilegeEscalation"] is False
    assert "privileged" not in context
    config = yaml.safe_load(one("ConfigMap", "atlas-config")["data"]["server.yaml"])
    assert config["sandbox"] == "required"


def test_atlas_secret_holds_only_atlas_settings() -> None:
    """Anything else in atlas's environment would reach terraform, which runs the pull request's code."""
    secret = one("Secret", "atlas")

    assert set(secret["stringData"]) <= KNOWN_ENV
    assert {"ATLAS_GH_TOKEN", "ATLAS_GH_WEBHOOK_SECRET", "ATLAS_REDIS_URL"} <= set(secret["stringData"])
    assert all("REPLACE-ME" in value for value in secret["stringData"].values())


def test_redis_is_reached_by_the_url_atlas_is_given() -> None:
    redis = one("StatefulSet", "atlas-redis")
    service = one("Service", redis["spec"]["serviceName"])
    [container] = containers(redis)
    url = one("Secret", "atlas")["stringData"]["ATLAS_REDIS_URL"]

    assert url.endswith(f"@{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()
    assert "$(REDISCLI_AUTH)" in container["args"] and "noeviction" in container["args"]
    [password] = [item for item in container["env"] if item["name"] == "REDISCLI_AUTH"]
    ref = password["valueFrom"]["secretKeyRef"]
    assert ref["key"] in one("Secret", ref["name"])["stringData"]


def test_the_ingress_serves_events_and_the_pages_at_the_atlas_url_behind_basic_auth(tmp_path: Path) -> None:
    ingress = one("Ingress", "atlas")
    service = one("Service", "atlas-web")
    web = one("Deployment", "atlas-web")

    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    # One prefix route: /events for GitHub, and /jobs/<id>, /locks/<id>, /pulls/... that comments link to.
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    assert backend["name"] == "atlas-web"
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    assert service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    [port] = service["spec"]["ports"]
    [container] = containers(web)
    assert port["targetPort"] in {p["name"] for p in container["ports"]}

    env: dict[str, object] = {item["name"]: item["value"] for item in container["env"]}
    env |= one("Secret", "atlas")["stringData"]
    config_file = tmp_path / "server.yaml"
    config_file.write_text(one("ConfigMap", "atlas-config")["data"]["server.yaml"])
    settings = settings_from_env({k: v for k, v in env.items() if k != CONFIG_ENV}, config_file)
    assert settings.atlas_url == f"https://{rule['host']}", "comments link to the host the Ingress serves"
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    assert settings.web_username and settings.web_password is not None, "the public pages ask for a password"
    assert settings.max_connections_per_client == 1000, "every connection comes from the ingress controller"
