"""A small local website for crawl tests, served over real HTTP, counting requests per path."""

import threading
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
        for path, (title, body) in PAGES.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(page_html(title, body), encoding="utf-8")
        (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
        (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
        (root / "empty.html").write_text("<html><head><title>x</title></head><body></body></html>")
        urls = "".join(f"<url><loc>{{base}}/{path}</loc></url>" for path in PAGES)
        (root / "sitemap.template").write_text(
            f"<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{urls}</urlset>"
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        (root / "sitemap.xml").write_text((root / "sitemap.template").read_text().replace("{base}", self.base))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"

    def _handler(self) -> type[SimpleHTTPRequestHandler]:
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(site.root), **kwargs)

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.hits[self.path.lstrip("/")] += 1
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
