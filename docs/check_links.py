"""Check the internal links of the built site: ``python docs/check_links.py [HTML_DIR]``.

Every ``href`` and ``src`` in every page that is not external (``http:``,
``https:``, ``mailto:``, ...) must name a file of the build, and a
``#fragment`` must name an ``id`` in the target page. Prints each broken link
and exits 1 when there is any.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if value is None:
                continue
            if key in ("id", "name"):
                self.ids.add(value)
            elif (key == "href" and tag in ("a", "link")) or (
                    key == "src" and tag in ("img", "script", "iframe")):
                self.links.append(value)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(root: Path) -> list[str]:
    """``page: link`` for every internal link under ``root`` that leads nowhere."""
    root = root.resolve()
    # _static/ holds the theme's template fragments, not pages
    pages = {p: _parse(p) for p in root.rglob("*.html")
             if p.relative_to(root).parts[0] != "_static"}
    broken = []
    for page_path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("javascript:", "data:")):
                continue
            target = page_path if not parts.path else (page_path.parent /
                                                       unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            rel = page_path.relative_to(root)
            if not target.exists() or root not in target.parents and target != root:
                broken.append(f"{rel}: {link} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{rel}: {link} (no id {parts.fragment!r})")
    return sorted(set(broken))


def main(argv: list[str] | None = None) -> int:
    """Check the site in ``argv[0]`` (default ``docs/_build/html``)."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else Path(__file__).parent / "_build" / "html")
    if not (root / "index.html").exists():
        print(f"no built site in {root}", file=sys.stderr)
        return 2
    broken = broken_links(root)
    for line in broken:
        print(line)
    print(f"{len(list(root.rglob('*.html')))} files, {len(broken)} broken internal links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
