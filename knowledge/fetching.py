"""Fetching pages and sitemaps over HTTP: timeouts, size limits, redirects, clear reasons for failures.

A page fetched before is asked for conditionally (`If-None-Match` with its ETag, `If-Modified-Since`
with its Last-Modified), so an unchanged page costs a 304 and no body.
"""

import mimetypes
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import httpx

from knowledge.models import MAX_RAW_BYTES

USER_AGENT = "SwitchboardCrawler/1.0 (+knowledge base of a Switchboard bot)"
TIMEOUT = httpx.Timeout(20.0, connect=5.0)
MAX_REDIRECTS = 5
MAX_SITEMAP_URLS = 5000


GONE_STATUSES = (404, 410)


class FetchError(RuntimeError):
    """A page could not be fetched; the message is the reason recorded against its URL."""

    def __init__(self, reason: str, *, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.http_status = http_status

    @property
    def gone(self) -> bool:
        """The server says the page does not exist (404 Not Found, 410 Gone)."""
        return self.http_status in GONE_STATUSES


@dataclass(frozen=True)
class FetchedPage:
    url: str
    http_status: int
    content_type: str
    data: bytes
    etag: str = ""
    last_modified: str = ""

    @property
    def not_modified(self) -> bool:
        return self.http_status == 304


@dataclass(frozen=True)
class SitemapEntry:
    url: str
    lastmod: str = ""


def http_client() -> httpx.Client:
    return httpx.Client(
        follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}
    )


def fetch_url(
    url: str, *, client: httpx.Client, max_bytes: int = MAX_RAW_BYTES, etag: str = "", last_modified: str = ""
) -> FetchedPage:
    """The page, or a 304 answer without a body when the validators say it has not changed."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304 and headers:
                return FetchedPage(str(response.url), 304, "", b"", etag, last_modified)
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code}", http_status=response.status_code)
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise FetchError(f"too large: {declared} bytes (limit {max_bytes})")
            data = bytearray()
            for part in response.iter_bytes():
                data += part
                if len(data) > max_bytes:
                    raise FetchError(f"too large: over {max_bytes} bytes")
            content_type = response.headers.get("content-type", "") or (mimetypes.guess_type(url)[0] or "")
            return FetchedPage(
                str(response.url), response.status_code, content_type, bytes(data),
                etag=response.headers.get("etag", ""), last_modified=response.headers.get("last-modified", ""),
            )  # fmt: skip
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


def sitemap_urls(url: str, *, client: httpx.Client) -> list[str]:
    return [entry.url for entry in sitemap_entries(url, client=client)]


def sitemap_entries(url: str, *, client: httpx.Client, depth: int = 0) -> list[SitemapEntry]:
    """Page URLs of a sitemap with their `lastmod`; a sitemap index is followed one level deep."""
    page = fetch_url(url, client=client, max_bytes=10 * 1024 * 1024)
    try:
        root = ElementTree.fromstring(page.data)
    except ElementTree.ParseError as exc:
        raise FetchError(f"sitemap is not valid XML: {exc}") from None
    entries = [_entry(element) for element in root if _local_name(element.tag) in ("url", "sitemap")]
    entries = [entry for entry in entries if entry.url]
    if _local_name(root.tag) == "sitemapindex":
        if depth > 0:
            return []
        nested: list[SitemapEntry] = []
        for entry in entries:
            nested.extend(sitemap_entries(entry.url, client=client, depth=depth + 1))
        return nested[:MAX_SITEMAP_URLS]
    return entries[:MAX_SITEMAP_URLS]


def _entry(element: ElementTree.Element) -> SitemapEntry:
    fields = {_local_name(child.tag): (child.text or "").strip() for child in element}
    return SitemapEntry(url=fields.get("loc", ""), lastmod=fields.get("lastmod", ""))
