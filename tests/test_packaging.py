"""The wheel ships the migrations: upgrade() works from a plain, non-editable install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SMOKE = """
import sys, zoho_sa_store
from zoho_sa_store import SQLAlchemyTokenStore, upgrade, current
assert zoho_sa_store.__file__.startswith(sys.argv[1]), zoho_sa_store.__file__
url = "sqlite:///" + sys.argv[2]
upgrade(url)
print(current(url))
"""


@pytest.mark.slow
def test_upgrade_from_an_installed_wheel(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = wheels.glob("zoho_sa_store-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    assert (
        target / "zoho_sa_store" / "migrations" / "versions" / "0001_create_oauthtoken.py"
    ).is_file()
    assert (target / "zoho_sa_store" / "migrations" / "script.py.mako").is_file()
    assert (target / "zoho_sa_store" / "py.typed").is_file()
    done = subprocess.run(
        [sys.executable, "-c", SMOKE, str(target), str(tmp_path / "t.db")],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "0002"
