"""Reading docker-compose.yml and .env.example the way Docker Compose does, for the tests.

There is no Docker engine on our machines: the tests interpolate the compose file themselves
(`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `$$`) and run
each service's command natively with the environment compose would give it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SECRET_WORDS = ("PASSWORD", "KEY", "SECRET", "TOKEN")

REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A `${VAR:?message}` whose variable is unset or empty: compose refuses to start."""


def is_secret(name: str) -> bool:
    return any(word in name.upper() for word in SECRET_WORDS)


def references(text: str) -> list[tuple[str, str | None, str]]:
    """Every (name, operator, argument) of a ${VAR} or $VAR in `text`; `$$` is not one."""
    found = []
    for m in REFERENCE.finditer(text):
        if m["escaped"]:
            continue
        found.append((m["name"] or m["plain"], m["op"], m["arg"] or ""))
    return found


def compose_references() -> list[tuple[str, str | None, str]]:
    """The references in the compose file's values (comments and keys are never interpolated)."""
    found = []

    def walk(node) -> None:
        if isinstance(node, str):
            found.extend(references(node))
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(yaml.safe_load(COMPOSE_FILE.read_text()))
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def replace(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name, op, arg = m["name"] or m["plain"], m["op"], m["arg"] or ""
        value = env.get(name)
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return value or ""

    return REFERENCE.sub(replace, text)


def _interpolate_tree(node, env: Mapping[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def raw_compose() -> dict:
    """The compose file as YAML (anchors and merge keys resolved), before interpolation."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    """The variables of .env.example with their values, parsed as config.py parses .env."""
    return {key: value or "" for key, value in dotenv_values(ENV_EXAMPLE).items()}


def sample_env(**overrides: str) -> dict[str, str]:
    """.env.example with the required passwords filled in, as a user's .env would be."""
    env = env_example()
    env.update(POSTGRES_PASSWORD="owner-pw", API_DB_PASSWORD="reader-pw")
    env.update(overrides)
    return env


def compose(env: Mapping[str, str] | None = None) -> dict:
    """The compose file as `docker compose config` sees it: values interpolated from `env`."""
    return _interpolate_tree(raw_compose(), sample_env() if env is None else env)


def service_environment(service: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment compose gives `service`'s container (both list and mapping forms)."""
    environment = compose(env)["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(
            item.split("=", 1) if "=" in item else (item, "") for item in environment
        )
    return {key: "" if value is None else str(value) for key, value in environment.items()}
