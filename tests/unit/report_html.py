"""Reading the status page back: the rows, cells and text of its HTML (html.parser)."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """The status page parsed: ``units`` maps (account, unit) to its row (health, the
    nights of its strip as [(day, kind)], its cells' text), ``text`` is all the text,
    ``tags`` every tag name met."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.units: dict[tuple[str, str], dict] = {}
        self.text: list[str] = []
        self.tags: set[str] = set()
        self.attributes: list[str] = []
        self._account: str | None = None
        self._row: dict | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        self.attributes += [value or "" for value in attrs.values()]
        if tag == "section" and "data-account" in attrs:
            self._account = attrs["data-account"]
        elif tag == "tr" and "data-unit" in attrs:
            self._row = {"health": attrs["data-health"], "nights": [], "text": []}
            self.units[(self._account, attrs["data-unit"])] = self._row
        elif tag == "span" and "data-night" in attrs and self._row is not None:
            self._row["nights"].append((attrs["data-night"], attrs["data-kind"]))

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        elif tag == "section":
            self._account = None

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None:
            self._row["text"].append(data)

    def row_text(self, account: str, unit: str) -> str:
        return " ".join(" ".join(self.units[(account, unit)]["text"]).split())

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())
