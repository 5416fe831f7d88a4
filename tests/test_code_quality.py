"""ruff and mypy run as part of the test suite, so the README's one test command checks them."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint_and_format() -> None:
    lint = _run("ruff", "check", "nanodictate", "tests", "bench", "packaging")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    formatting = _run("ruff", "format", "--check", "nanodictate", "tests", "bench", "packaging")
    assert formatting.returncode == 0, formatting.stdout + formatting.stderr


def test_mypy_strict_core() -> None:
    # pyproject.toml: strict on nanodictate/core, typed everywhere else.
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
