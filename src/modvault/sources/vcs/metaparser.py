"""The HTML side of repo_root.py's go-import discovery, apart so that html.parser (with html and
its entity table, about 0.4 MiB of module memory) is loaded only when a page is read, not by every
worker that imports the VCS source."""

from __future__ import annotations

from html.parser import HTMLParser

from modvault.sources.vcs.repo_root import MetaImport


class MetaParser(HTMLParser):
    """Collects go-import meta tags up to the end of <head> or the start of <body>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[MetaImport] = []
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        if tag == "body":
            self.done = True
            return
        if tag != "meta":
            return
        # attrValue: first attribute whose name matches case-insensitively (the parser lowers names).
        values: dict[str, str] = {}
        for name, value in attrs:
            values.setdefault(name, value or "")
        if values.get("name", "") != "go-import":
            return
        fields = values.get("content", "").split()
        if len(fields) in (3, 4):
            self.found.append(MetaImport(fields[0], fields[1], fields[2],
                                         fields[3] if len(fields) == 4 else ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.done = True
