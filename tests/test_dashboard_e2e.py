"""End to end: a seeded database, the real API (uvicorn) and the real dashboard (streamlit) on free
ports, every page opened in headless Chromium. Each page must draw its plotly charts and show no
exception; a screenshot of each goes to tests/output/screenshots/, or with UPDATE_SCREENSHOTS=1 to
docs/screenshots/ (the ones the README shows).

Needs Debian's `chromium` at /usr/bin/chromium: skipped without it, except under CI (CI=true),
where its absence fails the test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from market_seed import seed_alerts, seed_market

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else ROOT / "tests" / "output" / "screenshots"
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# (url path, screenshot name, plotly charts the page draws at least)
PAGES = [
    ("", "market_overview", 3),
    ("coin?coin=bitcoin", "coin", 3),
    ("correlation", "correlation", 1),
    ("pipeline_health", "pipeline_health", 1),
]

pytestmark = pytest.mark.browser
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(f"CI needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    pytestmark = [pytestmark, pytest.mark.skip(reason=f"no headless Chromium at {CHROMIUM}")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s:\n{log.read_text()}")


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def services(sqlite_url, tmp_path):
    """The API on a seeded database and the dashboard pointed at it; yields the dashboard URL."""
    anchor = datetime.now(UTC).replace(microsecond=0)
    seed_market(sqlite_url, anchor=anchor)
    seed_alerts(sqlite_url, anchor)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "API_"))}
    env.update(DATABASE_URL=sqlite_url, API_KEY="e2e-key", PYTHONUNBUFFERED="1")
    api_port, dash_port = free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    api_log, dash_log = tmp_path / "api.log", tmp_path / "dashboard.log"
    api = start(
        [str(bin_dir / "uvicorn"), "api:app", "--host", "127.0.0.1", "--port", str(api_port)],
        env,
        api_log,
    )
    dashboard = start(
        [
            str(bin_dir / "streamlit"),
            "run",
            "dashboard.py",
            "--server.address=127.0.0.1",
            f"--server.port={dash_port}",
            "--server.headless=true",
            "--browser.gatherUsageStats=false",
            "--server.fileWatcherType=none",
        ],
        {**env, "API_BASE_URL": f"http://127.0.0.1:{api_port}"},
        dash_log,
    )
    try:
        wait_for(f"http://127.0.0.1:{api_port}/health", api, api_log)
        wait_for(f"http://127.0.0.1:{dash_port}/_stcore/health", dashboard, dash_log)
        yield f"http://127.0.0.1:{dash_port}"
    finally:
        stop(dashboard)
        stop(api)


def test_every_page_renders_in_chromium(services):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as pw:
            # A fresh profile each run (Playwright passes it as --user-data-dir).
            browser = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_FLAGS,
                headless=True,
                viewport={"width": 1440, "height": 1000},
            )
            page = browser.new_page()
            for path, name, charts in PAGES:
                page.goto(f"{services}/{path}", wait_until="domcontentloaded")
                main = page.locator('[data-testid="stMain"]')
                main.locator(".js-plotly-plot").nth(charts - 1).wait_for(timeout=30_000)
                # Let the last charts finish drawing and the spinner go.
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stSpinner\"]')",
                    timeout=15_000,
                )
                page.wait_for_timeout(800)
                text = main.inner_text()
                assert "Traceback" not in text and "Error" not in text, (name, text[:2000])
                assert page.locator('[data-testid="stException"]').count() == 0, name
                assert main.locator(".js-plotly-plot").count() >= charts, name
                if name == "pipeline_health":
                    assert "1 open alert(s): bitcoin (usd): 1 price_move flag(s)" in text
                if name == "coin":
                    traces = page.evaluate(
                        "() => Array.from(document.querySelectorAll("
                        "'[data-testid=\"stMain\"] .js-plotly-plot'))"
                        ".map(p => (p.data || []).map(t => t.name))"
                    )
                    assert "Flagged value" in traces[0], traces
                # Streamlit scrolls inside its main element: grow the window to the whole page.
                height = page.evaluate(
                    "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight"
                )
                page.set_viewport_size({"width": 1440, "height": min(max(height, 1000), 6000)})
                page.wait_for_timeout(1000)
                page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
                page.set_viewport_size({"width": 1440, "height": 1000})
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
