"""Stand-in base images built from Debian's packages, for a machine that reaches no image registry.

Each is built once per machine and kept in podman's store under a tag derived from what it is
built from (its Containerfile, build arguments, the machine's extra CA certificates), so a change
rebuilds it and an unchanged one is reused. The Dockerfiles take the stand-ins as build arguments
(PYTHON_IMAGE, NODE_IMAGE) and stay as they are for real registries.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.docker_stack.engine import CACHE, engine_env, image_exists, output, podman, run

STANDIN = Path(__file__).resolve().parent / "standin"
REPOSITORY = "localhost/kovr-standin"
MIRROR = "http://deb.debian.org/debian"
# The host's own extra CAs (an egress proxy's, say): containers must trust what the host trusts.
HOST_CAS = Path("/usr/local/share/ca-certificates")


def digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(hashlib.sha256(part).digest())
    return hasher.hexdigest()[:12]


def _forget_older(name: str, keep: str) -> None:
    """Old tags of one stand-in are never used again: drop them so the store does not grow."""
    refs = output(["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                   f"reference={REPOSITORY}/{name}"]).split()
    for ref in refs:
        if ref != keep:
            podman("rmi", "--force", ref, check=False)


def debian() -> str:
    cas = sorted(HOST_CAS.glob("**/*.crt")) if HOST_CAS.is_dir() else []
    ref = f"{REPOSITORY}/debian:bookworm-{digest(b'minbase ca-certificates v1', *(c.read_bytes() for c in cas))}"
    if image_exists(ref):
        return ref
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", "--include=ca-certificates", "bookworm", rootfs, MIRROR],
            env=engine_env())
        for ca in cas:
            shutil.copy(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
        run(["chroot", rootfs, "update-ca-certificates"], env=engine_env())
        run(["chroot", rootfs, "apt-get", "clean"], env=engine_env())
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(["podman", "import", "--change", 'CMD ["bash"]', "--change", "ENV LANG=C.UTF-8", "-", ref],
            stdin=tar.stdout)  # type: ignore[arg-type]
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrapped rootfs failed")
    _forget_older("debian", ref)
    return ref


def derived(name: str, containerfile: str, args: dict[str, str], copies: tuple[str, ...] = ()) -> str:
    """An image built from a Containerfile in standin/ (its folder is the build context; `copies`
    are the files it COPYs, part of what it is built from)."""
    context = [STANDIN / containerfile, *(STANDIN / c for c in copies)]
    arg_text = "\n".join(f"{k}={v}" for k, v in sorted(args.items())).encode()
    ref = f"{REPOSITORY}/{name}:{digest(arg_text, *(p.read_bytes() for p in context))}"
    if not image_exists(ref):
        build_args = [word for key, value in args.items() for word in ("--build-arg", f"{key}={value}")]
        podman("build", "--layers", "-f", STANDIN / containerfile, "-t", ref, *build_args, STANDIN)
        _forget_older(name, ref)
    return ref


def build_all() -> dict[str, str]:
    """Every stand-in: debian, python, node (the Dockerfiles' bases), secantusdb, caddy (compose)."""
    base = debian()
    python = derived("python", "python.Containerfile", {"DEBIAN_IMAGE": base})
    return {
        "debian": base,
        "python": python,
        "node": derived("node", "node.Containerfile", {"DEBIAN_IMAGE": base}),
        "secantusdb": derived("secantusdb", "secantusdb.Containerfile", {"PYTHON_IMAGE": python},
                              ("secantus-entrypoint.py",)),
        "caddy": derived("caddy", "caddy.Containerfile", {"DEBIAN_IMAGE": base}),
    }
