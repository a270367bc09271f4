"""A small local website for crawl tests, served over real HTTP, counting requests and answers per path.

The site can change between crawls (`edit`, `remove`, `add`, `sitemap_set`). It answers conditional
requests the way real servers do: `Last-Modified` / `If-Modified-Since` for every file (the standard
library's handler), and `ETag` / `If-None-Match` when `etags` is on.
"""

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PAGES = {
    "en/prices.html": (
        "Prices", "<h1>Prices</h1><h2>Apartment cleaning</h2><p>Regular apartment cleaning costs 25 dollars per room. "
        "A two-room apartment is 50 dollars.</p><h2>Windows</h2><p>Window washing costs 7 dollars per window.</p>",
    ),
    "en/hours.html": (
        "Opening hours", "<h1>Opening hours</h1><p>We work Monday to Saturday from 8 am to 9 pm. "
        "On Sundays the office is closed, but emergency cleaning can be booked by phone.</p>",
    ),
    "ru/ceny.html": (
        "Цены", "<h1>Цены на уборку</h1><p>Генеральная уборка квартиры стоит 4500 рублей. "
        "Мойка окон — 400 рублей за окно.</p><h2>Химчистка ковров</h2>"
        "<p>Химчистка ковра стоит 300 рублей за квадратный метр.</p>",
    ),
    "ru/kontakty.html": (
        "Контакты", "<h1>Контакты</h1><p>Наш офис находится на улице Ленина, 10. Звоните по телефону +7 900 123-45-67 "
        "с 9 до 21 часа.</p>",
    ),
}  # fmt: skip


def page_html(title: str, body: str) -> str:
    nav = "<nav><a href='/'>Home</a> <a href='/en/prices.html'>Prices</a> <a href='/en/hours.html'>Hours</a></nav>"
    footer = "<footer>© 2026 Northwind Cleaning. All rights reserved.</footer>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<header>{nav}</header><main><article>{body}</article></main>{footer}</body></html>")  # fmt: skip


class LocalSite:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.hits: Counter[str] = Counter()
        self.answers: Counter[tuple[str, int]] = Counter()  # (path, status) of every GET
        self.etags = False
        for path, (title, body) in PAGES.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(page_html(title, body), encoding="utf-8")
        (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
        (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
        (root / "empty.html").write_text("<html><head><title>x</title></head><body></body></html>")
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.sitemap_set(list(PAGES))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def sitemap_set(self, paths: list[str], lastmod: dict[str, str] | None = None) -> None:
        lastmod = lastmod or {}
        urls = "".join(
            f"<url><loc>{self.url(path)}</loc>" + (f"<lastmod>{lastmod[path]}</lastmod>" if path in lastmod else "")
            + "</url>"
            for path in paths
        )  # fmt: skip
        (self.root / "sitemap.xml").write_text(
            f"<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{urls}</urlset>"
        )

    def edit(self, path: str, old: str, new: str) -> None:
        """Change a page's text; its modification time moves on (If-Modified-Since has 1 s resolution)."""
        file = self.root / path
        html = file.read_text(encoding="utf-8")
        assert old in html, (path, old)
        file.write_text(html.replace(old, new), encoding="utf-8")
        later = time.time() + 5
        os.utime(file, (later, later))

    def touch(self, path: str) -> None:
        """Same content, a newer modification time (a server that regenerated the page)."""
        later = time.time() + 10
        os.utime(self.root / path, (later, later))

    def remove(self, path: str) -> None:
        (self.root / path).unlink()

    def add(self, path: str, title: str, body: str) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(page_html(title, body), encoding="utf-8")

    def etag_of(self, path: str) -> str:
        return '"' + hashlib.sha256((self.root / path).read_bytes()).hexdigest()[:16] + '"'

    def _handler(self) -> type[SimpleHTTPRequestHandler]:
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(site.root), **kwargs)

            def log_message(self, *args: object) -> None:
                pass

            def send_response(self, code: int, message: str | None = None) -> None:
                site.answers[(self.path.lstrip("/"), code)] += 1
                super().send_response(code, message)

            def end_headers(self) -> None:
                file = site.root / self.path.lstrip("/")
                if site.etags and file.is_file():
                    self.send_header("ETag", site.etag_of(self.path.lstrip("/")))
                super().end_headers()

            def do_GET(self) -> None:
                site.hits[self.path.lstrip("/")] += 1
                file = site.root / self.path.lstrip("/")
                if site.etags and file.is_file() and self.headers.get("If-None-Match") == site.etag_of(self.path[1:]):
                    self.send_response(304)
                    self.end_headers()
                    return
                if site.etags:  # an ETag server decides by the ETag alone
                    del self.headers["If-Modified-Since"]
                if self.path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.end_headers()
                elif self.path == "/huge":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(50 * 1024 * 1024))
                    self.end_headers()
                elif self.path == "/error":
                    self.send_error(500)
                else:
                    super().do_GET()

        return Handler

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def local_site(tmp_path: Path) -> Iterator[LocalSite]:
    site = LocalSite(tmp_path / "site")
    yield site
    site.stop()
