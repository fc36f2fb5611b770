"""Which Zoho Accounts server a token belongs to, read from the installed SDK's data centres.

A token's ``api_domain`` (``https://www.zohoapis.eu``, ...) names its data centre; its
refresh token and client secret are only ever sent to that data centre's accounts server.
The SDK's data-centre classes (``zohocrmsdk/src/com/zoho/crm/api/dc/``: ``USDataCenter``,
``EUDataCenter``, ...) each define environments (``PRODUCTION()``, ``SANDBOX()``,
``DEVELOPER()``) holding the API URL (``url``) and the accounts URL (``accounts_url``);
:func:`sdk_data_centres` enumerates whatever the installed SDK defines, so no URL is
copied here.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["DataCentre", "data_centre", "data_centres", "is_loopback", "origin", "sdk_data_centres"]


@dataclass(frozen=True, slots=True)
class DataCentre:
    """One data centre: its name (the SDK's class, e.g. ``"EUDataCenter"``) and the token
    endpoint of its accounts server."""

    name: str
    accounts_url: str


def origin(url: object) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased, path dropped; else None."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def is_loopback(url: str) -> bool:
    """Whether the URL's host is ``localhost``, in 127.0.0.0/8 or ``::1``."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def sdk_data_centres() -> Mapping[str, DataCentre]:
    """Every environment the installed SDK defines: its API URL's :func:`origin` -> data
    centre. Environments are the data-centre classes' upper-case class methods that return a
    ``DataCenter.Environment``."""
    from zohocrmsdk.src.com.zoho.crm.api import dc
    from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter

    found: dict[str, DataCentre] = {}
    for class_name in sorted(dir(dc)):
        cls = getattr(dc, class_name)
        if not isinstance(cls, type) or not issubclass(cls, DataCenter) or cls is DataCenter:
            continue
        for name in sorted(dir(cls)):
            if not name.isupper() or not callable(getattr(cls, name)):
                continue
            try:
                environment = getattr(cls, name)()
            except Exception:  # not an environment factory
                environment = None
            if not isinstance(environment, DataCenter.Environment):
                continue
            api = origin(getattr(environment, "url", None))
            accounts = getattr(environment, "accounts_url", None)
            if api is not None and isinstance(accounts, str) and accounts:
                found.setdefault(api, DataCentre(class_name, accounts))
    return found


def data_centres() -> Mapping[str, DataCentre]:
    """The known data centres by API origin: the SDK's (tests replace this function)."""
    return sdk_data_centres()


def data_centre(api_domain: object) -> DataCentre | None:
    """The data centre of an API domain, or None when it is not a known one."""
    key = origin(api_domain)
    return None if key is None else data_centres().get(key)
