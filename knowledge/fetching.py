"""Fetching pages and sitemaps over HTTP: timeouts, size limits, redirects, clear reasons for failures."""

import mimetypes
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import httpx

from knowledge.models import MAX_RAW_BYTES

USER_AGENT = "SwitchboardCrawler/1.0 (+knowledge base of a Switchboard bot)"
TIMEOUT = httpx.Timeout(20.0, connect=5.0)
MAX_REDIRECTS = 5
MAX_SITEMAP_URLS = 5000


class FetchError(RuntimeError):
    """A page could not be fetched; the message is the reason recorded against its URL."""


@dataclass(frozen=True)
class FetchedPage:
    url: str
    http_status: int
    content_type: str
    data: bytes


def http_client() -> httpx.Client:
    return httpx.Client(
        follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}
    )


def fetch_url(url: str, *, client: httpx.Client, max_bytes: int = MAX_RAW_BYTES) -> FetchedPage:
    try:
        with client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code}")
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise FetchError(f"too large: {declared} bytes (limit {max_bytes})")
            data = bytearray()
            for part in response.iter_bytes():
                data += part
                if len(data) > max_bytes:
                    raise FetchError(f"too large: over {max_bytes} bytes")
            content_type = response.headers.get("content-type", "") or (mimetypes.guess_type(url)[0] or "")
            return FetchedPage(str(response.url), response.status_code, content_type, bytes(data))
    except httpx.TooManyRedirects:
        raise FetchError(f"redirect loop (more than {MAX_REDIRECTS} redirects)") from None
    except httpx.TimeoutException:
        raise FetchError("timed out") from None
    except httpx.ConnectError as exc:
        raise FetchError(f"unreachable host: {exc}") from None
    except (httpx.HTTPError, ValueError) as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}") from None


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def sitemap_urls(url: str, *, client: httpx.Client, depth: int = 0) -> list[str]:
    """Page URLs of a sitemap; a sitemap index is followed one level deep."""
    page = fetch_url(url, client=client, max_bytes=10 * 1024 * 1024)
    try:
        root = ElementTree.fromstring(page.data)
    except ElementTree.ParseError as exc:
        raise FetchError(f"sitemap is not valid XML: {exc}") from None
    locations = [el.text.strip() for el in root.iter() if _local_name(el.tag) == "loc" and el.text]
    if _local_name(root.tag) == "sitemapindex":
        if depth > 0:
            return []
        nested: list[str] = []
        for location in locations:
            nested.extend(sitemap_urls(location, client=client, depth=depth + 1))
        return nested[:MAX_SITEMAP_URLS]
    return locations[:MAX_SITEMAP_URLS]
