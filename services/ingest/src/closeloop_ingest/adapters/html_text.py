"""Plain text from an HTML email body, with the standard library's tolerant HTML parser.

Regular expressions cannot strip tags safely (comments, ``>`` inside
attributes, ``<script>``); :class:`html.parser.HTMLParser` handles all of that
and decodes character references.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Content of these elements is never text a person wrote.
_INVISIBLE = frozenset({"script", "style", "head", "title", "template", "noscript"})
# Elements that end a line when rendered.
_LINE_BREAKING = frozenset(
    {
        "address", "article", "blockquote", "br", "div", "dd", "dl", "dt", "footer", "h1",
        "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section",
        "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._invisible_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self._invisible_depth += 1
        elif tag in _LINE_BREAKING:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _LINE_BREAKING:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self._invisible_depth = max(0, self._invisible_depth - 1)
        elif tag in _LINE_BREAKING:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._invisible_depth:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).splitlines())
    # Collapse the blank lines that nested blocks leave behind.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
