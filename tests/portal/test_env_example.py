""".env.example, copied to .env as its first lines invite, leaves manage.py working."""

import os
import subprocess
import sys
from pathlib import Path

import environ

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"


def _values() -> dict[str, str]:
    env = environ.Env()
    parsed: dict[str, str] = {}
    original = dict(os.environ)
    try:
        os.environ.clear()
        env.read_env(EXAMPLE)
        parsed = dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(original)
    return parsed


def test_every_value_line_holds_a_value_and_no_comment():
    values = _values()
    assert "DJANGO_DEBUG" in values and "DATABASE_URL" in values
    for name, value in values.items():
        assert value != "", f"{name} is empty: comment the line out to keep the default"
        assert "#" not in value, f"{name} carries a comment in its value: {value!r}"


def test_manage_py_runs_with_the_example_as_the_environment(tmp_path):
    """The settings read .env into the environment; here the example's values are the whole
    environment of a manage.py run (with the database and Redis of this test run)."""
    values = _values()
    for name in ("DATABASE_URL", "REDIS_URL", "AWS_ENDPOINT_URL"):
        if name in os.environ:
            values[name] = os.environ[name]
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), **values}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no issues" in result.stdout
