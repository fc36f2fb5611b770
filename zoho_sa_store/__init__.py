"""A SQLAlchemy token store for the Zoho CRM Python SDK (``zohocrmsdk8_0``).

Public names: :class:`SQLAlchemyTokenStore`, :class:`OAuthTokenRow`, :func:`upgrade`,
:class:`TokenStoreError`, :class:`RefreshPolicy`, :func:`make_engine`.
"""

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.migrate import current, upgrade
from zoho_sa_store.model import OAuthTokenRow
from zoho_sa_store.refresh import RefreshPolicy
from zoho_sa_store.settings import make_engine
from zoho_sa_store.store import SQLAlchemyTokenStore

__all__ = [
    "OAuthTokenRow",
    "RefreshPolicy",
    "SQLAlchemyTokenStore",
    "TokenStoreError",
    "current",
    "make_engine",
    "upgrade",
]
