"""Every SDK generation: what is installed, the stand-in and the demo on it, and the package
without any SDK.

Runs in every ``.ci/run`` leg (each its own venv and SDK); needs no SDK at import. The leg's
``ZOHO_SA_STORE_TEST_SDK`` names the distribution it installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.error import HTTPError

import pytest
from click.testing import CliRunner

from tests.conftest import SDK_VAR, sdk_or_skip
from zoho_sa_store.cli import main
from zoho_sa_store.sdk import (
    DISTRIBUTIONS,
    HAS_ZCRMSDK,
    HAS_ZOHOCRMSDK,
    can_revoke_by_id,
    finds_user,
    installed,
)
from zoho_sa_store.testing import ZohoStandIn

ROOT = Path(__file__).resolve().parents[1]
ZOHOCRMSDKS = [name for name, package in DISTRIBUTIONS.items() if package == "zohocrmsdk"]


def test_one_zohocrmsdk_generation_and_it_is_the_legs() -> None:
    """5_0 to 8_0 all install ``zohocrmsdk``: installing the store never adds a second one,
    and a leg (a 7_0 app's venv, say) still has the generation it started with."""
    found = installed()
    assert len([name for name in found if name in ZOHOCRMSDKS]) <= 1, found
    assert any(name in ZOHOCRMSDKS for name in found) == HAS_ZOHOCRMSDK
    assert any(name not in ZOHOCRMSDKS for name in found) == HAS_ZCRMSDK
    expected = os.environ.get(SDK_VAR)
    if expected:
        assert expected in found, (expected, found)
        shown = subprocess.run(
            [sys.executable, "-m", "pip", "show", expected],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"Version: {found[expected]}" in shown
        if expected != "zohocrmsdk8_0":
            assert "zohocrmsdk8_0" not in found  # the store did not bring the newest one


def test_the_store_declares_no_sdk_but_one_extra_per_generation() -> None:
    from importlib.metadata import requires

    required = requires("zoho-sa-store") or []
    sdk_requirements = [r for r in required if r.startswith("zohocrmsdk")]
    assert sdk_requirements and all("extra ==" in r for r in sdk_requirements), sdk_requirements
    extras = {re.search(r'extra == "([\w-]+)"', r)[1]: r.split(";")[0] for r in sdk_requirements}  # type: ignore[index]
    assert extras == {
        "sdk8": "zohocrmsdk8_0<8,>=7",
        "sdk7": "zohocrmsdk7_0<7,>=6",
        "sdk6": "zohocrmsdk6_0<9,>=8",
        "sdk5": "zohocrmsdk5_0<3,>=2",
        "sdk2": "zohocrmsdk2_1<4,>=3",
        "sdk2-0": "zohocrmsdk2_0<7,>=6",  # [sdk2_0], as the metadata normalises it
    }


@pytest.mark.parametrize("version", ["v8", "v7", "v6", "v5", "v2.1", "v2"])
def test_the_stand_in_answers_every_crm_version(version: str) -> None:
    with ZohoStandIn() as zoho:
        refresh = zoho.issue_refresh_token("ann@example.com", client_id="1000.A", client_secret="s")
        body = f"grant_type=refresh_token&client_id=1000.A&client_secret=s&refresh_token={refresh}"
        request = urllib.request.Request(zoho.url + "/oauth/v2/token", data=body.encode())
        with urllib.request.urlopen(request, timeout=10) as answer:
            access = json.load(answer)["access_token"]
        for path in ("users?type=CurrentUser", "org"):
            request = urllib.request.Request(
                f"{zoho.url}/crm/{version}/{path}",
                headers={"Authorization": f"Zoho-oauthtoken {access}"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
                payload = json.load(answer)
            assert payload.get("users", payload.get("org"))
        with pytest.raises(HTTPError) as caught:
            urllib.request.urlopen(zoho.url + f"/crm/{version}x/org", timeout=10)
        assert caught.value.code == 404
        caught.value.close()


def test_the_stand_ins_environment_fits_the_installed_sdk() -> None:
    if not (HAS_ZOHOCRMSDK or HAS_ZCRMSDK):
        pytest.fail("no Zoho SDK installed in this test venv", pytrace=False)
    with ZohoStandIn() as zoho:
        environment = zoho.environment()
        assert (environment.url, environment.accounts_url) == (
            zoho.url,
            zoho.url + "/oauth/v2/token",
        )
        takes_name = "zohocrmsdk5_0" in installed() or not HAS_ZOHOCRMSDK
        assert getattr(environment, "name", None) == ("stand_in" if takes_name else None)


def test_the_refresh_reads_only_what_the_sdk_config_has() -> None:
    """6_0's ``SDKConfig`` has no ``apply_api_domain_update``: the refresh takes the answer's
    api_domain then (that SDK's behaviour), and never raises for the missing method."""
    sdk_or_skip("zohocrmsdk")
    from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig

    from zoho_sa_store.token_endpoint import _apply_api_domain_update

    config = SDKConfig()
    if hasattr(config, "apply_api_domain_update"):
        assert _apply_api_domain_update(config) is bool(config.apply_api_domain_update())
        assert _apply_api_domain_update(SDKConfig(update_api_domain=False)) is False
    else:
        assert "zohocrmsdk8_0" not in installed()
        assert _apply_api_domain_update(config) is True


def test_the_demo_runs_on_the_installed_sdk() -> None:
    sdk_or_skip("zohocrmsdk")
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    [(name, version)] = [(n, v) for n, v in installed().items() if n in ZOHOCRMSDKS]
    assert f"SDK: {name} {version}" in out
    assert "2. restarted process found the token: 1 grant exchange(s) in all" in out
    assert "3. expired access token refreshed (1 refresh request)" in out
    assert "CRM user demo.user@example.com" in out
    if can_revoke_by_id():
        assert re.search(r"5\. revoke\('[0-9a-f-]{36}'\) -> True", out)
    else:
        assert "5. revoke(id) skipped: this SDK's OAuthToken.revoke builds OAuthToken()" in out
    suffix = ":700000001" if finds_user() else ""
    assert f"user_name=demo.user@example.com{suffix}\n" in out


NO_SDK = """
import sys
sys.modules["zohocrmsdk"] = None  # as if no Zoho SDK were installed
sys.modules["zcrmsdk"] = None
import zoho_sa_store
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError, upgrade
from zoho_sa_store.sdk import MissingSDK
url = "sqlite:///" + sys.argv[1]
upgrade(url)
print(zoho_sa_store.current(url))
store = SQLAlchemyTokenStore(url)
print(store.get_tokens())
assert issubclass(TokenStoreError, Exception)
for call in (lambda: store.find_token(object()), lambda: zoho_sa_store.LegacyTokenStore):
    try:
        call()
    except MissingSDK as error:
        print(error)
"""


def test_the_package_imports_without_any_sdk(tmp_path: Path) -> None:
    """Migrations and reading the table need no SDK; an SDK-facing call names the install
    command; the command line says the same in one line."""
    done = subprocess.run(
        [sys.executable, "-c", NO_SDK, str(tmp_path / "t.db")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    lines = done.stdout.splitlines()
    assert lines[:2] == ["0003", "[]"]
    assert lines[2].startswith("the Zoho CRM SDK (zohocrmsdk) is not installed: ")
    assert 'pip install "zoho-sa-store[sdk8]"' in lines[2]
    assert lines[3].startswith("the Zoho CRM SDK (zcrmsdk) is not installed: ")
    assert 'pip install "zoho-sa-store[sdk2]"' in lines[3]
    cli = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['zohocrmsdk'] = None\n"
            "from zoho_sa_store.cli import main; main(['demo'])",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert cli.returncode == 1
    assert cli.stderr.startswith("Error: the Zoho CRM SDK (zohocrmsdk) is not installed: pip")
    assert "Traceback" not in cli.stderr
