"""pytest plugin of zoho-sa-store: the ``zoho_stand_in`` fixture.

``zoho_stand_in`` (function scope) yields a started
:class:`zoho_sa_store.testing.ZohoStandIn` (``delay`` 0 s, access tokens living 3600 s) and
stops it after the test. Point the SDK at it with ``zoho_stand_in.environment()``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from zoho_sa_store.testing import ZohoStandIn


@pytest.fixture
def zoho_stand_in() -> Iterator[ZohoStandIn]:
    """A running offline Zoho Accounts + CRM stand-in, stopped after the test."""
    with ZohoStandIn() as stand_in:
        yield stand_in
