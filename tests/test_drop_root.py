"""docker/drop-root.sh, run natively: whom the app container becomes, and that it never stays root.

The script is what the image's ENTRYPOINT runs first. The Compose `app` service starts as root so
that the script can become the owner of the bind-mounted ./data (or APP_UID:APP_GID). These tests
need root, as the container has it, and util-linux's setpriv; elsewhere they are skipped.
tests/test_compose_engine.py checks the same in a real container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DROP_ROOT = ROOT / "docker" / "drop-root.sh"
WHO = 'echo "$(id -u):$(id -g):$(id -G):$HOME"; touch "$DATA_DIR/written"'

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv, as in the container",
)


@pytest.fixture
def data():
    """A data folder any user can reach (pytest's own tmp folder is root's alone)."""
    parent = Path(tempfile.mkdtemp(prefix="crypto-etl-drop-"))
    parent.chmod(0o755)
    yield parent / "data"
    shutil.rmtree(parent)


def drop_root(data: Path, *command: str, **env: str) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "DATA_DIR": str(data)}
    environment.update(env)
    return subprocess.run(
        ["sh", str(DROP_ROOT), *(command or ("sh", "-c", WHO))],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def owned(path: Path, uid: int, gid: int) -> Path:
    path.mkdir(exist_ok=True)
    os.chown(path, uid, gid)
    return path


def owner(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid


def test_becomes_the_owner_of_the_data_folder(data):
    owned(data, 4321, 4322)
    done = drop_root(data)
    assert done.returncode == 0, done.stderr
    # No supplementary groups; a uid without a passwd entry gets /tmp as HOME.
    assert done.stdout.strip() == "4321:4322:4322:/tmp"
    assert owner(data / "written") == (4321, 4322)
    assert owner(data) == (4321, 4322)


def test_a_folder_the_engine_created_as_root_goes_to_the_image_user(data):
    owned(data, 0, 0)
    done = drop_root(data)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1000:1000:1000:")
    assert owner(data) == (1000, 1000)


def test_a_missing_folder_is_created_for_the_image_user(data):
    done = drop_root(data)
    assert done.returncode == 0, done.stderr
    assert owner(data) == (1000, 1000)


def test_app_uid_and_gid_win(data):
    owned(data, 0, 0)
    done = drop_root(data, APP_UID="4500", APP_GID="4501")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("4500:4501:4501:")
    assert owner(data) == (4500, 4501)


def test_app_gid_defaults_to_app_uid(data):
    owned(data, 4500, 4500)
    done = drop_root(data, APP_UID="4500")
    assert done.stdout.startswith("4500:4500:"), done.stderr


def test_a_user_who_cannot_write_the_folder_stops_with_one_line(data):
    owned(data, 4321, 4321).chmod(0o755)
    done = drop_root(data, APP_UID="4500")
    assert done.returncode == 1
    assert done.stdout == ""  # the command never ran
    assert done.stderr.count("\n") == 1
    assert "user 4500:4500 cannot write" in done.stderr and "owned by 4321:4321" in done.stderr
    assert owner(data) == (4321, 4321)  # a folder someone owns is never taken from them


@pytest.mark.parametrize("value", ["abc", "12x", "-1"])
def test_ids_must_be_numbers(data, value):
    done = drop_root(data, APP_UID=value)
    assert done.returncode == 1
    assert "APP_UID and APP_GID must be numeric ids" in done.stderr
    assert done.stderr.count("\n") == 1


def test_the_command_replaces_the_script_so_it_gets_the_signals(data):
    """`docker stop` signals PID 1: that must be the command itself, not a shell around it."""
    owned(data, 4321, 4321)
    proc = subprocess.Popen(
        ["sh", str(DROP_ROOT), "sh", "-c", "echo $$"],
        env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(data)},
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=30)
    assert int(out.strip()) == proc.pid


def test_without_root_it_only_runs_the_command(data):
    owned(data, 4321, 4321)
    # A copy the user can read wherever the checkout is (a fresh clone may be root's alone).
    script = data.parent / DROP_ROOT.name
    shutil.copy(DROP_ROOT, script)
    as_user = ["setpriv", "--reuid=4321", "--regid=4321", "--clear-groups"]
    done = subprocess.run(
        [*as_user, "sh", str(script), "sh", "-c", "id -u"],
        env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(data), "APP_UID": "4500"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "4321"), done.stderr
