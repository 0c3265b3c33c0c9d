"""Fixtures of the browser tests (defined in browser_support)."""

from browser_support import browser, page, site

__all__ = ["browser", "page", "site"]
