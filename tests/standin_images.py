"""TEST-ONLY stand-in base images for the real-engine Compose test, built from Debian packages.

No container registry is reachable on our CI machines, so `python:3.12-slim` and `postgres:15`
cannot be pulled. Debian's apt mirror is reachable: debootstrap makes a minimal bookworm root file
system, `docker import` turns it into a base image, and the recipes in docker/standin/ add Python
(with venv) or PostgreSQL 15 and its first-start entry script. The images are tagged with our own
names (crypto-etl-standin/...), never an official image's, and keyed on a hash of their recipe, so a
second run on the same engine reuses them. The product never uses them: only the test passes them
as PYTHON_IMAGE and POSTGRES_IMAGE.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "docker" / "standin"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SUITE = "bookworm"
# The root file system: debootstrap's minimal variant (it holds util-linux's setpriv and useradd).
DEBOOTSTRAP = ["debootstrap", "--variant=minbase", "--components=main", SUITE]
SOURCES = """\
Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
REPOSITORY = "crypto-etl-standin"
LOCK = Path(tempfile.gettempdir()) / "crypto-etl-standin.lock"
# Docker's classic builder: the only one the Debian engine and client have (no buildx plugin).
BUILD_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


def recipe_hash() -> str:
    """What the images are made of: recipes, debootstrap call, and the CA bundle copied in."""
    digest = hashlib.sha256()
    digest.update(repr((DEBOOTSTRAP, SOURCES)).encode())
    for path in sorted(RECIPES.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    if CA_BUNDLE.exists():
        digest.update(CA_BUNDLE.read_bytes())
    return digest.hexdigest()[:16]


def image_tags() -> dict[str, str]:
    tag = recipe_hash()
    return {name: f"{REPOSITORY}/{name}:{tag}" for name in ("debian", "python", "postgres")}


def debian_mirror() -> tuple[str, str]:
    """The Debian mirror this machine's apt uses, and its security archive."""
    uris: list[str] = []
    for source in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        uris += re.findall(r"^URIs:\s*(\S+)", source.read_text(), flags=re.MULTILINE)
    plain = Path("/etc/apt/sources.list")
    if plain.exists():
        uris += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", plain.read_text(), flags=re.MULTILINE)
    mirror = next((u for u in uris if u.rstrip("/").endswith("/debian")), None)
    security = next((u for u in uris if u.rstrip("/").endswith("/debian-security")), None)
    mirror = mirror or "http://deb.debian.org/debian"
    return mirror, security or mirror.rstrip("/") + "-security"


def image_exists(tag: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    return done.returncode == 0


def _run(args: list[str], **kwargs) -> None:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        command = " ".join(args[:4])
        raise RuntimeError(f"{command}... exited {done.returncode}:\n{done.stderr[-3000:]}")


def _build_base(tag: str) -> None:
    """debootstrap a minimal bookworm and import it as an image (about a minute)."""
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: apt-get install debootstrap (see .ci/run)")
    mirror, security = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="crypto-etl-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run([*DEBOOTSTRAP, str(rootfs), mirror])
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(
            SOURCES.format(mirror=mirror, security=security)
        )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            _run(["docker", "import", "-", tag], stdin=tar.stdout)
        finally:
            tar.stdout.close()
            tar.wait()


def _build(name: str, base: str, tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix=f"crypto-etl-{name}-") as context:
        for path in RECIPES.iterdir():
            shutil.copy(path, context)
        if name == "python":
            shutil.copy(CA_BUNDLE, Path(context) / "ca-certificates.crt")
        _run(
            [
                "docker",
                "build",
                "--quiet",
                "--file",
                str(Path(context) / f"{name}.Dockerfile"),
                "--build-arg",
                f"BASE={base}",
                "--tag",
                tag,
                context,
            ],
            env=BUILD_ENV,
        )


def ensure_standin_images() -> dict[str, str]:
    """The tags of the python and postgres stand-ins, built first if this engine lacks them.
    A lock file keeps two test runs on one machine from building them at once."""
    tags = image_tags()
    LOCK.touch(exist_ok=True)
    with LOCK.open() as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not image_exists(tags["debian"]) and not (
            image_exists(tags["python"]) and image_exists(tags["postgres"])
        ):
            _build_base(tags["debian"])
        for name in ("python", "postgres"):
            if not image_exists(tags[name]):
                _build(name, tags["debian"], tags[name])
    return {"python": tags["python"], "postgres": tags["postgres"]}


if __name__ == "__main__":
    for name, tag in ensure_standin_images().items():
        print(f"{name}: {tag}")
