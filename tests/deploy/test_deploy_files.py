"""The deployment files cannot drift from the code.

They cannot be run here (no container engine, no cluster), so these tests
read them and check every service, command, setting, environment variable,
port and secret file they name against what the code defines: the settings
dataclasses (the configuration schema), the command line, and the files an
identity bundle holds.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from gateway.config import GatewayConfig
from intelshare import config as cfgmod
from intelshare.cli import _load_plugins, cli
from intelshare.config import parse_address
from node.config import NodeConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCHEMAS: dict[str, type[Any]] = {"gateway": GatewayConfig, "node": NodeConfig}
IDENTITY_FILES = {"signing.key", "encryption.key", "tls.key", "tls.crt", "ca.pem", "anchor.json"}
ENV_RE = re.compile(r"\bINTELSHARE_([A-Z]+)_([A-Z0-9_]+)\b")


def env_names(section: str) -> set[str]:
    return {v["env"] for v in cfgmod.schema(SCHEMAS[section], section).values()}


def check_env(name: str) -> None:
    match = ENV_RE.fullmatch(name)
    assert match, f"{name} is not an INTELSHARE_<SECTION>_<SETTING> variable"
    section = match.group(1).lower()
    assert section in SCHEMAS, f"{name}: no configuration section {section!r}"
    assert name in env_names(section), f"{name} is not a setting of section {section!r}"


def check_command(argv: list[str]) -> None:
    """``argv`` (after the ``intelshare`` program name) parses as a real command."""
    _load_plugins()
    ctx = cli.make_context("intelshare", list(argv), resilient_parsing=True)
    command: click.Command = cli
    args = list(argv)
    while isinstance(command, click.Group) and args:
        name = args.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"intelshare has no command {' '.join(argv)!r} ({name!r})"
        command = sub
        ctx = command.make_context(name, list(args), parent=ctx, resilient_parsing=True)
    options = {o for p in command.params for o in getattr(p, "opts", [])}
    for arg in args:
        if arg.startswith("--"):
            assert arg.split("=")[0] in options, f"{' '.join(argv)}: unknown option {arg}"


def load_example(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "config" / name).read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(("file", "section"), [("gateway.yaml", "gateway"), ("node.yaml", "node")])
def test_example_configs_validate_against_the_schema(file: str, section: str) -> None:
    data = load_example(file)
    cfg = cfgmod.load(SCHEMAS[section], section, data, env={})
    assert cfg is not None


# --- docker compose ---------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _section_of(command: list[str]) -> str | None:
    if command[:2] == ["gateway", "serve"]:
        return "gateway"
    if command[:2] == ["node", "serve"] or command[:1] == ["worker"]:
        return "node"
    return None


def test_compose_services_run_real_commands_with_known_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    sections_seen = set()
    for name, svc in services.items():
        command = svc.get("command")
        if not command or ("image" in svc and not str(svc["image"]).startswith("intelshare")):
            continue
        check_command(command)
        section = _section_of(command)
        assert section, f"service {name}: {command}"
        sections_seen.add(section)
        config_path = command[command.index("--config") + 1]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in svc["volumes"]}
        assert config_path in mounts, f"{name}: config {config_path} is not mounted"
        example = load_example(Path(mounts[config_path]).name)
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        for var in env:
            check_env(var)
        cfg = cfgmod.load(SCHEMAS[section], section, example, env=env)
        # Every path the config names lies inside something the service mounts.
        paths = [
            getattr(cfg, f)
            for f in (
                "anchor",
                "ca_cert",
                "directory",
                "tls_cert",
                "tls_key",
                "signing_key",
                "identity_dir",
            )
            if getattr(cfg, f, None)
        ]
        for path in paths:
            assert any(str(path).startswith(m) for m in mounts), f"{name}: {path} not mounted"
        if section == "gateway":
            _, port = parse_address("listen", cfg.listen)
            assert any(p.endswith(f":{port}") for p in svc["ports"]), f"{name}: port {port}"
        if section == "node" and command[0] == "node":
            _, port = parse_address("listen", cfg.listen)
            assert any(p.endswith(f":{port}") for p in svc["ports"]), f"{name}: port {port}"
            assert cfg.agency_id in name, f"{name} runs agency {cfg.agency_id}"
        if "healthcheck" in svc:
            test = svc["healthcheck"]["test"]
            assert test[1:3] == ["intelshare", "health"]
            check_command(test[2:])
            _, hport = parse_address("health", test[3])
            assert cfg.health_listen
            assert cfg.health_listen.endswith(f":{hport}")
    assert sections_seen == {"gateway", "node"}


def test_compose_runs_a_worker_with_beat_per_node(compose: dict[str, Any]) -> None:
    services = compose["services"]
    nodes = {
        s["environment"]["INTELSHARE_NODE_AGENCY_ID"]
        for s in services.values()
        if s.get("command", [])[:2] == ["node", "serve"]
    }
    beats = {
        s["environment"]["INTELSHARE_NODE_AGENCY_ID"]
        for s in services.values()
        if s.get("command", [])[:1] == ["worker"] and "--beat" in s["command"]
    }
    assert len(nodes) == 3
    assert nodes == beats


def test_compose_redis_is_append_only_and_databases_exist(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    init = (DEPLOY / "postgres-init.sql").read_text()
    for svc in compose["services"].values():
        url = (svc.get("environment") or {}).get("INTELSHARE_NODE_DATABASE_URL") or (
            svc.get("environment") or {}
        ).get("INTELSHARE_GATEWAY_DATABASE_URL")
        if url:
            db = url.rsplit("/", 1)[1]
            assert f"CREATE DATABASE {db} " in init, f"{db} is not created by postgres-init.sql"


# --- Helm -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_values() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "helm" / "intelshare" / "values.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_helm_configs_validate_against_the_schema(helm_values: dict[str, Any]) -> None:
    gw = cfgmod.load(
        GatewayConfig, "gateway", {"gateway": helm_values["gateway"]["config"]}, env={}
    )
    assert helm_values["gateway"]["replicas"] >= 2, "the gateway is a replicated deployment"
    assert gw.redis_url, "replicas need Redis for wake-ups"
    for node in helm_values["nodes"]:
        cfg = cfgmod.load(NodeConfig, "node", {"node": node["config"]}, env={})
        assert cfg.agency_id == node["agencyId"]
        assert not cfg.maintenance_in_node, "the chart runs periodic tasks in the beat pod"
    assert set(helm_values["identityFiles"]) == IDENTITY_FILES


def test_helm_templates_name_known_settings_ports_and_commands(helm_values: dict[str, Any]) -> None:
    templates = DEPLOY / "helm" / "intelshare" / "templates"
    text = "\n".join(p.read_text() for p in sorted(templates.glob("*.yaml")))
    for name in set(re.findall(r"INTELSHARE_[A-Z0-9_]+", text)):
        check_env(name)
    commands = [yaml.safe_load(a) for a in re.findall(r"args: (\[.*?\])", text)]
    ours = [c for c in commands if c[0] != "redis-server"]
    assert len(ours) == 4  # gateway, node, worker, beat
    for argv in ours:
        check_command(argv)
    gw_health = parse_address("h", helm_values["gateway"]["config"]["health_listen"])[1]
    node_health = {
        parse_address("h", n["config"]["health_listen"])[1] for n in helm_values["nodes"]
    }
    probe_ports = {int(p) for p in re.findall(r"grpc: \{port: (\d+)\}", text)}
    assert probe_ports == {gw_health} | node_health
    # Every config path lies under a mount.
    mounts = set(re.findall(r"mountPath: (\S+?)[,}]", text))
    gw_cfg = helm_values["gateway"]["config"]
    for key in ("anchor", "ca_cert", "directory", "tls_cert", "tls_key", "signing_key"):
        assert any(gw_cfg[key].startswith(m) for m in mounts), key
    assert "--appendonly" in text


# --- systemd ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit", sorted((DEPLOY / "systemd").glob("*.service")), ids=lambda p: p.name
)
def test_systemd_units_run_real_commands(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    exec_start = parser["Service"]["ExecStart"].split()
    assert exec_start[0].endswith("/intelshare")
    argv = [a.replace("%i", "nl-customs") for a in exec_start[1:]]
    check_command(argv)
    env = parser["Service"].get("Environment", "")
    for assignment in env.split():
        check_env(assignment.split("=", 1)[0])
    assert parser["Service"]["UMask"] == "0077"


def test_dockerfile_exposes_the_configured_ports() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    exposed = {
        int(p) for line in text.splitlines() if line.startswith("EXPOSE") for p in line.split()[1:]
    }
    gw = load_example("gateway.yaml")["gateway"]
    node = load_example("node.yaml")["node"]
    wanted = {
        parse_address("x", v)[1]
        for v in (gw["listen"], gw["health_listen"], node["listen"], node["health_listen"])
    }
    assert wanted <= exposed
    assert 'ENTRYPOINT ["intelshare"]' in text
    for package in ("intelshare", "node", "gateway"):
        assert f"COPY {package} ./{package}" in text


def test_the_checks_catch_drift() -> None:
    """The helpers above refuse what does not exist, so the tests can fail."""
    with pytest.raises(AssertionError):
        check_env("INTELSHARE_GATEWAY_NO_SUCH_SETTING")
    with pytest.raises(AssertionError):
        check_env("INTELSHARE_NOSECTION_LISTEN")
    with pytest.raises(AssertionError):
        check_command(["gateway", "launch"])
    with pytest.raises(AssertionError):
        check_command(["gateway", "serve", "--konfig", "x"])


# --- metrics ----------------------------------------------------------------------


def test_every_service_serves_metrics_where_it_is_scraped(
    compose: dict[str, Any], helm_values: dict[str, Any]
) -> None:
    """Each process's metrics_listen is published, scraped, annotated and exposed."""
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    wanted = set()
    for name, svc in compose["services"].items():
        command = svc.get("command") or []
        section = (
            _section_of(command) if str(svc.get("image", "")).startswith("intelshare") else None
        )
        if section is None:
            continue
        config_path = command[command.index("--config") + 1]
        mounts = {m.split(":")[1]: m.split(":")[0] for m in svc["volumes"]}
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        cfg = cfgmod.load(
            SCHEMAS[section], section, load_example(Path(mounts[config_path]).name), env=env
        )
        assert cfg.metrics_listen, f"{name}: no metrics_listen"
        port = parse_address("metrics", cfg.metrics_listen)[1]
        assert any(str(p).endswith(f":{port}") for p in svc.get("ports", [])), f"{name}: {port}"
        wanted.add(f"{name}:{port}")
    assert len(wanted) == 7  # gateway, three nodes, three workers
    assert targets == wanted
    # Helm: every pod is annotated for scraping on its config's metrics port.
    templates = DEPLOY / "helm" / "intelshare" / "templates"
    text = "\n".join(p.read_text() for p in sorted(templates.glob("*.yaml")))
    annotated = [int(p) for p in re.findall(r'prometheus\.io/port: "(\d+)"', text)]
    declared = [int(p) for p in re.findall(r"\{name: metrics, containerPort: (\d+)\}", text)]
    gw_port = parse_address("m", helm_values["gateway"]["config"]["metrics_listen"])[1]
    node_ports = {
        parse_address("m", n["config"]["metrics_listen"])[1] for n in helm_values["nodes"]
    }
    assert len(annotated) == 4  # gateway, node, worker, beat
    assert set(annotated) == set(declared) == {gw_port} | node_ports
    # systemd: a worker beside its node on one host listens elsewhere.
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "systemd" / "intelshare-worker@.service").read_text())
    env_lines = unit["Service"]["Environment"].split()
    worker = dict(a.split("=", 1) for a in env_lines)["INTELSHARE_NODE_METRICS_LISTEN"]
    node_example = load_example("node.yaml")["node"]["metrics_listen"]
    assert parse_address("w", worker)[1] != parse_address("n", node_example)[1]
    # The image exposes the example configs' metrics ports.
    exposed = {
        int(p)
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("EXPOSE")
        for p in line.split()[1:]
    }
    gw_example = load_example("gateway.yaml")["gateway"]["metrics_listen"]
    assert {parse_address("g", gw_example)[1], parse_address("n", node_example)[1]} <= exposed
