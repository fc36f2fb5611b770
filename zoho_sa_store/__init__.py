"""A SQLAlchemy token store for the Zoho CRM Python SDK (``zohocrmsdk8_0``).

Public names: :class:`SQLAlchemyTokenStore`, :class:`OAuthTokenRow`, :func:`upgrade`,
:class:`TokenStoreError`, :class:`RefreshPolicy`, :func:`make_engine`; ``__version__``, the
installed distribution's version (pyproject.toml's ``version``); for an application's own
Alembic environment in the same database, :func:`include_name` and
:func:`make_include_name`; for a readiness endpoint, :func:`check_ready`. For the v2/v2.1
SDK (``zcrmsdk``): ``LegacyTokenStore``, imported on first use (from
:mod:`zoho_sa_store.legacy`), so that importing this package never needs ``zcrmsdk``.

Importing the package needs no Zoho SDK (migrations, ``check_ready``, the command line's
database commands work without one); the SDK-facing calls raise
:class:`zoho_sa_store.sdk.MissingSDK` naming the install command when it is missing.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import Any

from zoho_sa_store.alembic_hooks import include_name, make_include_name
from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.health import Readiness, check_ready
from zoho_sa_store.migrate import current, upgrade
from zoho_sa_store.model import OAuthTokenRow
from zoho_sa_store.refresh import RefreshPolicy
from zoho_sa_store.settings import make_engine
from zoho_sa_store.store import SQLAlchemyTokenStore

try:
    __version__ = _version("zoho-sa-store")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    """``LegacyTokenStore``, imported from :mod:`zoho_sa_store.legacy` on first use."""
    if name == "LegacyTokenStore":
        from zoho_sa_store.legacy import LegacyTokenStore

        return LegacyTokenStore
    raise AttributeError(f"module 'zoho_sa_store' has no attribute {name!r}")


__all__ = [
    "LegacyTokenStore",
    "OAuthTokenRow",
    "Readiness",
    "RefreshPolicy",
    "SQLAlchemyTokenStore",
    "TokenStoreError",
    "__version__",
    "check_ready",
    "current",
    "include_name",
    "make_engine",
    "make_include_name",
    "upgrade",
]
