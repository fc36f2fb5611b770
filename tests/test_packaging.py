"""The wheel ships the migrations and the licence: upgrade() works from a plain install.

The wheel is built from a copy of the source tree in a temp dir: setuptools writes
``build/`` and ``*.egg-info`` beside the sources it builds, and the clone stays clean.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNBUILT = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "*venv", "__pycache__", ".*_cache", ".ci-*", "*.db*"
)

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
    before = sorted(os.listdir(ROOT))
    wheels, target, source = tmp_path / "wheels", tmp_path / "site", tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=UNBUILT)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    assert sorted(os.listdir(ROOT)) == before  # no build/, no egg-info left in the clone
    assert not (ROOT / "build").exists() or "build" in before
    [wheel] = wheels.glob("zoho_sa_store-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        licences = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "LICENSE"]
        assert len(licences) == 1 and ".dist-info/" in licences[0], licences
        assert archive.read(licences[0]) == (ROOT / "LICENSE").read_bytes()
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
        assert 'Requires-Dist: zohocrmsdk8_0<8,>=7; extra == "sdk8"' in text
        assert 'Requires-Dist: zohocrmsdk7_0<7,>=6; extra == "sdk7"' in text
        sdks = [line for line in text.splitlines() if line.startswith("Requires-Dist: zohocrm")]
        assert all("; extra ==" in line for line in sdks), sdks  # none replaces an app's own
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
    assert done.stdout.strip() == "0003"
    ini = tmp_path / "alembic.ini"  # the README's minimal ini for a wheel install
    ini.write_text("[alembic]\nscript_location = zoho_sa_store:migrations\n")
    db = tmp_path / "by_alembic.db"
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "-x", f"url=sqlite:///{db}",
         "upgrade", "head"],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", SMOKE.replace("upgrade(url)", ""), str(target), str(db)],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "0003"


def test_licence_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("Copyright 2026 The zoho-sa-store authors\n")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert text.rstrip().endswith("limitations under the License.")
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
