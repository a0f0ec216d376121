"""/docs and /redoc load every asset from the server itself: they work without internet access."""

from __future__ import annotations

import re

import pytest

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_need_no_cdn(client, page):
    response = client.get(page)
    assert response.status_code == 200
    assets = ASSET.findall(response.text)
    assert assets, "the page references no scripts or styles"
    assert not [url for url in assets if "//" in url], "assets must come from this server, not a CDN"
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "/openapi.json" in response.text
