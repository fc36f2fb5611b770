"""A SQLAlchemy token store for the Zoho CRM Python SDK (``zohocrmsdk8_0``).

Public names: :class:`SQLAlchemyTokenStore`, :class:`OAuthTokenRow`, :func:`upgrade`,
:class:`TokenStoreError`, :class:`RefreshPolicy`, :func:`make_engine`; ``__version__``, the
installed distribution's version (pyproject.toml's ``version``); for an application's own
Alembic environment in the same database, :func:`include_name` and
:func:`make_include_name`; for a readiness endpoint, :func:`check_ready`.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

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

__all__ = [
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
