"""What a newcomer meets first: --version, the demo's database and output, read-only
commands on a missing SQLite file, and failures that name their cause."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner, Result

import zoho_sa_store
from zoho_sa_store.cli import main

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def test_version_is_pyproject_version() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'^version = "([^"]+)"$', pyproject, re.MULTILINE)
    assert declared is not None
    assert zoho_sa_store.__version__ == declared[1]
    result = cli("--version")
    assert result.exit_code == 0 and result.output == f"zoho-sa-store {declared[1]}\n"
