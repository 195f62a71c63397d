"""deploy/prometheus/alerts.yml: valid rules (`promtool check rules`) that fire when they should
(`promtool test rules` on deploy/prometheus/alerts_test.yml), on metrics the API really exposes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(
                "promtool is required in CI (Debian package prometheus; .ci/run installs it)"
            )
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def test_rules_are_valid(promtool):
    proc = subprocess.run(
        [promtool, "check", "rules", str(RULES / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 4 rules found" in proc.stdout


def test_rules_fire_as_their_tests_say(promtool):
    proc = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rules_use_metrics_the_api_exposes():
    from crypto_etl.api import metrics

    exposed = {metrics.DATA_AGE._name, metrics.ALERTS_OPEN._name}
    used = set(re.findall(r"\b(crypto_[a-z_]+)\b", (RULES / "alerts.yml").read_text()))
    assert used <= exposed, used - exposed
