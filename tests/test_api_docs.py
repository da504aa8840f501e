"""The API's own docs work air-gapped: no asset comes from outside."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from corridor.api.app import create_app
from corridor.settings import Settings


def test_swagger_and_redoc_assets_are_served_locally(store):
    with TestClient(create_app(Settings(auth="off"), store=store)) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", html)
            assert not external, (page, external)
            for asset in re.findall(r"""(?:src|href)=["'](/[^"']+)""", html):
                assert client.get(asset).status_code == 200, asset
