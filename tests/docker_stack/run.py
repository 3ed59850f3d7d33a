"""`make docker-test`: the Docker deployment in a real container engine (podman), end to end.

Installs podman, runc, debootstrap (Debian) and podman-compose when missing; builds the stand-in
base images once per machine; builds kovr-web and the CPU kovr-model-server from the repository
with the Dockerfiles and build settings of docker/compose.yaml; brings up the CPU stack (proxy,
two web replicas, model-server on the demo model, the database) with compose.test.yaml on top;
then, through the proxy's HTTPS port only, signs up, makes an API token, streams a Korean answer,
has an image answered, asks the OpenAI-compatible endpoint, restarts the web service, takes the
stack down and up again keeping its volumes, and finally takes it down with its volumes and checks
that nothing is left. Prints every stage's time. Exit status 0 only when all of it passed.

    python -m tests.docker_stack.run            (from the repository root, with the dev venv)
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.docker_parsing import arg_defaults, parse_dockerfile
from tests.docker_stack import flows, standin
from tests.docker_stack.engine import (
    CACHE,
    REPO,
    Stopwatch,
    compose_binary,
    engine_env,
    ensure_tools,
    output,
    podman,
    run,
)

COMPOSE = REPO / "docker" / "compose.yaml"
OVERRIDE = Path(__file__).resolve().parent / "compose.test.yaml"
PROJECT = "kovr-test"
TAG = "test"
IMAGES = {"web": f"kovr-web:{TAG}", "model-server-cpu": f"kovr-model-server:{TAG}-cpu"}
SPOOFED = "203.0.113.77"
READY_TIMEOUT_S = 600


# --- images -------------------------------------------------------------------------------------


def local_cpu_torch(version: str) -> Path | None:
    """The CPU torch wheel where this machine's pip finds one without an index (find-links)."""
    wheels = CACHE / "wheels"
    found = sorted(wheels.glob(f"torch-{version}+cpu-*.whl"))
    if found:
        return found[-1]
    proc = run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-index", "--dest", wheels,
                f"torch=={version}+cpu"], env={**os.environ}, check=False)
    found = sorted(wheels.glob(f"torch-{version}+cpu-*.whl"))
    return found[-1] if proc.returncode == 0 and found else None


def build_image(service: str, base_args: dict[str, str]) -> None:
    """Build one service's image as compose.yaml says (context, Dockerfile, args), with stand-in bases."""
    build = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"][service]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    args = {**{k: str(v) for k, v in build.get("args", {}).items()}, **base_args}
    extra: list[str] = []
    if service == "model-server-cpu":
        version = arg_defaults(parse_dockerfile(dockerfile))["TORCH_VERSION"]
        wheel = local_cpu_torch(version)
        if wheel is not None:
            # The CPU wheel already on this machine instead of the PyTorch index (not reachable
            # from every machine); the rest of torch's dependencies come from PyPI.
            args.update(TORCH_VERSION=f"{version}+cpu", TORCH_FIND_LINKS="/wheels",
                        TORCH_INDEX_URL="https://pypi.org/simple")
            extra = ["--volume", f"{wheel.parent}:/wheels:ro"]
    build_args = [word for key, value in args.items() for word in ("--build-arg", f"{key}={value}")]
    podman("build", "--layers", "-f", dockerfile, "-t", IMAGES[service], *build_args, *extra, context)


def image_size(ref: str) -> str:
    size = int(output(["podman", "image", "inspect", "--format", "{{.Size}}", ref]).strip())
    return f"{size / 1e6:,.0f} MB"


# --- the demo model -----------------------------------------------------------------------------


def demo_models() -> Path:
    """models/demo (the CPU demo model, a two-minute build) and models/vr (a random tiny align model
    for it: the image path end to end, not a useful description), kept between runs."""
    models = CACHE / "models"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    demo = models / "demo"
    if not (demo / "config.json").is_file():
        run([sys.executable, "-m", "kovr", "demo-model", "--output", demo, "--minutes", "2", "--no-shared-data"],
            env=env)
    if not (models / "vr" / "align_config.json").is_file():
        hidden = json.loads((demo / "config.json").read_text(encoding="utf-8"))["hidden_size"]
        code = ("import sys; from model_server.align import make_tiny_align_model; "
                "make_tiny_align_model(int(sys.argv[1]), language_model='/models/demo').save(sys.argv[2])")
        run([sys.executable, "-c", code, str(hidden), models / "vr"], env=env)
    # safetensors writes its files 0600: the containers' user (uid 10001) could not read them.
    # docs/deploy.md has users do the same (chmod -R a+rX models).
    for path in [models, *models.rglob("*")]:
        path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
    return models


# --- the stack ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed(folder: Path) -> Path:
    """A certificate for "localhost" that the proxy serves and the client trusts (cert = its CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder / "cert.pem"


class Stack:
    def __init__(self, workdir: Path, models: Path, standins: dict[str, str]) -> None:
        self.https_port = free_port()
        self.certs = workdir / "certs"
        self.ca_file = self_signed(self.certs)
        self.base_url = f"https://localhost:{self.https_port}"
        self.values = {
            "COMPOSE_PROFILES": "cpu",
            "IMAGE_TAG": TAG,
            "MODELS_DIR": str(models),
            "MONGO_ROOT_USERNAME": "root",
            "MONGO_ROOT_PASSWORD": secrets.token_hex(24),
            "MONGO_APP_USERNAME": "kovr",
            "MONGO_APP_PASSWORD": secrets.token_hex(24),
            "MONGO_URI_OPTIONS": "directConnection=true",
            "KOVR_PROFILE": "production",
            "KOVR_JWT_SECRET": secrets.token_hex(32),
            "KOVR_PUBLIC_URL": self.base_url,
            "KOVR_MODEL": "/models/demo",
            "KOVR_VR_CHECKPOINT": "/models/vr",
            "KOVR_TORCH_THREADS": "1",
            # The demo model built in a minute may end an answer at its first token; the test
            # wants tokens to stream, so it decodes max_new_tokens (each still a real token).
            "KOVR_IGNORE_EOS": "true",
            "HF_HUB_OFFLINE": "1",
            "WEB_REPLICAS": "2",
            "SITE_ADDRESS": "localhost",
            "CADDY_TLS": "/certs/cert.pem /certs/key.pem",
            "HTTPS_BIND": "127.0.0.1",
            "HTTPS_PORT": str(self.https_port),
            "HTTP_BIND": "127.0.0.1",
            "HTTP_PORT": str(free_port()),
            "STANDIN_MONGODB_IMAGE": standins["secantusdb"],
            "STANDIN_CADDY_IMAGE": standins["caddy"],
            "TEST_CERTS_DIR": str(self.certs),
        }
        # --env-file: a docker/.env of the developer's own never mixes into the test stack.
        self.env_file = workdir / "test.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.values.items()), encoding="utf-8")
        self.proxy_ip = "172.29.250.10"  # compose.yaml's PROXY_IP default, which the test keeps

    def compose(self, *args: str, check: bool = True, timeout: float = 900) -> None:
        binary = compose_binary()
        assert binary, "podman-compose is not installed"
        run([binary, "--project-name", PROJECT, "--env-file", self.env_file, "-f", COMPOSE, "-f", OVERRIDE,
             *args], env=engine_env(self.values), check=check, timeout=timeout)

    def down(self, *args: str, check: bool = True) -> None:
        """Front to back, as Docker Compose stops a stack: podman-compose 1.6 stops every service at
        once, and a web replica whose database is already gone takes podman's 10 s to SIGKILL."""
        self.compose("stop", "proxy", "web", check=check)
        self.compose("down", *args, check=check)

    def containers(self, service: str | None = None, *, all_states: bool = False) -> list[str]:
        filters = ["--filter", f"label=io.podman.compose.project={PROJECT}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        names = output(["podman", "ps", *(["-a"] if all_states else []), *filters, "--format", "{{.Names}}"])
        return sorted(names.split())

    def wait_healthy(self, timeout_s: float = READY_TIMEOUT_S) -> list[str]:
        """Run every container's own HEALTHCHECK until it passes (podman 4.3 without systemd runs
        health checks only when asked, and podman-compose then cannot wait for service_healthy)."""
        deadline = time.monotonic() + timeout_s
        pending = self.containers()
        assert pending, "no container is running"
        while pending and time.monotonic() < deadline:
            pending = [c for c in pending if podman("healthcheck", "run", c, check=False).returncode != 0]
            if pending:
                time.sleep(3)
        assert not pending, f"health checks still failing after {timeout_s:.0f} s: {pending}"
        return self.containers()

    def settled(self) -> None:
        """After a restart: every container healthy, and the proxy has looked the replicas up again
        (Caddyfile: refresh 1s). Until then a POST may meet a replica's old address, and Caddy up
        to 2.11.1 cannot retry a request with a body (caddyserver/caddy#7546): a 502."""
        self.wait_healthy()
        self.ready()
        time.sleep(2)

    def ready(self) -> dict[str, Any]:
        return flows.wait_ready(self.base_url, self.ca_file, READY_TIMEOUT_S)

    def logs(self, container: str, tail: int = 0) -> str:
        args = ["podman", "logs", *(["--tail", str(tail)] if tail else []), container]
        proc = run(args, check=False, capture=True)
        return (proc.stdout + proc.stderr).decode(errors="replace")

    def request_clients(self) -> dict[str, set[str]]:
        """Client addresses each web replica logged for the requests it served."""
        seen: dict[str, set[str]] = {}
        for container in self.containers("web"):
            clients = seen.setdefault(container, set())
            for line in self.logs(container).splitlines():
                if '"client"' not in line or not line.startswith("{"):
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                client = record.get("client") or record.get("kovr", {}).get("client")
                path = record.get("path") or record.get("kovr", {}).get("path")
                if client and path != "/healthz":
                    clients.add(str(client))
        return seen


def leftovers(before: dict[str, set[str]]) -> dict[str, set[str]]:
    now = engine_objects()
    return {kind: names - before.get(kind, set()) for kind, names in now.items() if names - before.get(kind, set())}


def engine_objects() -> dict[str, set[str]]:
    return {
        "containers": set(output(["podman", "ps", "-a", "--format", "{{.Names}}"]).split()),
        "volumes": set(output(["podman", "volume", "ls", "--format", "{{.Name}}"]).split()),
        "networks": set(output(["podman", "network", "ls", "--format", "{{.Name}}"]).split()),
        "pods": set(output(["podman", "pod", "ls", "--format", "{{.Name}}"]).split()),
    }


# --- the run ------------------------------------------------------------------------------------


def check(name: str, results: list[str], step: Callable[[], object]) -> None:
    value = step()
    results.append(f"ok  {name}" + (f"  {value}" if value else ""))
    print(f"--- ok: {name}" + (f"  {value}" if value else ""), flush=True)


def main() -> int:
    """One run at a time on a machine: two would share the project name, the images being built
    and the edge subnet."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "run.lock", "w") as lock:
        print(f"lock {CACHE / 'run.lock'}: one docker-test at a time on this machine", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        return run_all()


def run_all() -> int:
    watch = Stopwatch()
    results: list[str] = []
    with watch.stage("install podman, runc, debootstrap, podman-compose"):
        ensure_tools()
    podman("--version")
    with watch.stage("stand-in base images (once per machine)"):
        standins = standin.build_all()
    with watch.stage("build kovr-web"):
        build_image("web", {"PYTHON_IMAGE": standins["python"], "NODE_IMAGE": standins["node"]})
    with watch.stage("build kovr-model-server (CPU)"):
        build_image("model-server-cpu", {"PYTHON_IMAGE": standins["python"]})
    with watch.stage("demo model and tiny align model (once per machine)"):
        models = demo_models()

    CACHE.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE))
    stack = Stack(workdir, models, standins)
    if stack.containers(all_states=True):  # left by a run that was killed
        stack.down("-v", check=False)
    before = engine_objects()
    down = False
    user = flows.User(stack.base_url, stack.ca_file)
    try:
        with watch.stage("compose up (CPU stack) until healthy and ready"):
            stack.compose("up", "-d")
            healthy = stack.wait_healthy()
            results.append(f"ok  health checks pass in {len(healthy)} containers: {' '.join(healthy)}")
            assert len(stack.containers("web")) == 2, f"two web replicas: {stack.containers('web')}"
            check("/readyz through the proxy", results, stack.ready)
        with watch.stage("user flows through the proxy"):
            check("sign up (Secure cookie)", results, lambda: flows.sign_up(user))
            check("create an API token", results, lambda: flows.create_api_token(user))
            check("Korean question streams over SSE", results, lambda: flows.korean_question_streams(user))
            check("image uploads and is answered", results, lambda: flows.image_is_answered(user))
            check("/v1/chat/completions answers", results, lambda: flows.openai_compatible_answers(user))
            check("spoofed X-Forwarded-For sent", results, lambda: flows.spoofed_forwarded_for(user, SPOOFED))
            check("both replicas served, client address from the proxy's header", results,
                  lambda: check_forwarded(stack))
        with watch.stage("compose restart web"):
            stack.compose("restart", "web")
            stack.settled()
            check("account and conversation kept after restart", results, lambda: flows.still_there(user))
        with watch.stage("compose down, up (volumes kept)"):
            stack.down()
            stack.compose("up", "-d")
            stack.settled()
            check("account and conversation kept after down/up", results, lambda: flows.still_there(user))
        with watch.stage("compose down -v"):
            stack.down("-v")
            down = True
            left = leftovers(before)
            assert not left, f"left behind after down -v: {left}"
            results.append("ok  down -v leaves no container, volume, network or pod")
    except BaseException:
        for container in stack.containers(all_states=True):
            print(f"\n--- last log lines of {container}:\n{stack.logs(container, tail=40)}", flush=True)
        raise
    finally:
        if not down:
            stack.down("-v", check=False)
    print("\nchecks:\n" + "\n".join(f"  {r}" for r in results))
    sizes = {ref: image_size(ref) for ref in [*IMAGES.values(), *standins.values()]}
    print("\nimage sizes:\n" + "\n".join(f"  {ref:<60} {size}" for ref, size in sizes.items()))
    print("\nstage times:\n" + watch.summary(), flush=True)
    return 0


def check_forwarded(stack: Stack) -> str:
    seen = stack.request_clients()
    assert len(seen) == 2 and all(seen.values()), f"a replica served no request: {seen}"
    clients = set().union(*seen.values())
    assert SPOOFED not in clients, f"a client chose its own address with X-Forwarded-For: {clients}"
    assert stack.proxy_ip not in clients, f"the proxy's headers were not believed: {clients}"
    return f"clients {sorted(clients)}"


if __name__ == "__main__":
    sys.exit(main())
