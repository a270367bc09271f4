from tests.console.browser import chromium, page

__all__ = ["chromium", "page"]  # fixtures of the browser tests
