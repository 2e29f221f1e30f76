"""The weekly report as one self-contained web page: `reports/<week>/report.html` (issue 16, item 4).

The page is the Markdown report rendered by markdown-it-py, so the two never disagree: the same key
messages, tables, incidents behind each alarm and method. What the page adds:

* **self-contained**: the charts and the map are inlined as data: URIs, so the one file can be mailed,
  put on a share or opened on a phone with nothing beside it;
* **sortable tables**: a click (or Enter) on a column header sorts by it, numbers as numbers
  ("×4.60 (1.85–11.4)" sorts as 4.60), dates and text as text; the first click sorts numbers largest
  first;
* **readable on a phone**: a viewport, text that reflows, tables that scroll sideways inside their
  own box instead of widening the page;
* **untrusted text stays text**: incident notes, actor and place names come from the data. Raw HTML
  in the Markdown is not passed through (markdown-it's `html` option is off), so `<script>` in a
  note is shown, not run; links are kept only for http(s), mail and the report's own files; and a
  Content-Security-Policy lets the page run only its own sorting script (by hash) and load nothing
  from anywhere (images are data: URIs).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

#: Relative links to these Markdown files point at their web page instead (the index and the reports).
_PAGES = {"report.md": "report.html", "index.md": "index.html"}

#: Sorts a table by the column whose header is clicked; numbers as numbers, the rest as text.
_SORT_SCRIPT = r"""
(function () {
  function value(cell) {
    var text = (cell.textContent || "").trim();
    if (/^\d{4}-(\d{2}-\d{2}|W\d{2})/.test(text)) return {num: null, text: text};
    var m = text.replace(/[\u2212\u2013]/g, "-").replace(/^[×x≥≤<>~≈+]\s*/, "").match(/^-?\d[\d,]*(\.\d+)?/);
    return m ? {num: parseFloat(m[0].replace(/,/g, "")), text: text} : {num: null, text: text};
  }
  function compare(a, b) {
    if (a.num !== null && b.num !== null) return a.num - b.num;
    if (a.num !== null) return -1;
    if (b.num !== null) return 1;
    return a.text.localeCompare(b.text);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (!table.tHead || !table.tBodies.length) return;
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    headers.forEach(function (th, col) {
      th.tabIndex = 0;
      th.title = "Sort by this column";
      function sort() {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
          return {row: row, i: i, v: value(row.cells[col] || row.insertCell())};
        });
        var numeric = rows.some(function (r) { return r.v.num !== null; });
        var current = th.getAttribute("aria-sort");
        var dir = current ? (current === "ascending" ? -1 : 1) : (numeric ? -1 : 1);
        rows.sort(function (a, b) { return dir * compare(a.v, b.v) || a.i - b.i; });
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        rows.forEach(function (r) { body.appendChild(r.row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
  });
})();
"""

_STYLE = """
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b; margin: 0 auto;
       max-width: 62rem; padding: 0.75rem 1rem 3rem; overflow-wrap: anywhere; }
h1 { font-size: 1.5rem; line-height: 1.25; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05rem; margin-top: 1.5rem; }
img { max-width: 100%; height: auto; display: block; }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 0.75rem 0; }
table { border-collapse: collapse; font-size: 0.875rem; min-width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: 0.3rem 0.5rem; vertical-align: top; overflow-wrap: normal; }
td { overflow-wrap: break-word; min-width: 3em; }
thead th { background: #f2f2f2; cursor: pointer; user-select: none; white-space: nowrap; }
thead th:focus { outline: 2px solid #3566b8; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; }
code { font-size: 0.85em; background: #f4f4f4; padding: 0 0.2em; overflow-wrap: anywhere; }
pre { overflow-x: auto; background: #f4f4f4; padding: 0.5rem; }
blockquote { margin-left: 0; padding-left: 0.75rem; border-left: 3px solid #ccc; color: #444; }
@media (max-width: 40rem) { body { font-size: 15px; padding: 0.5rem; } table { font-size: 0.8rem; } }
"""


def _data_uri(folder: Path, src: str) -> str | None:
    """The file `src` (relative to the report's folder, inside it) as a data: URI; None if it is not one."""
    if not src or urlsplit(src).scheme or src.startswith(("/", "\\")):
        return None
    rel = PurePosixPath(unquote(src))
    if ".." in rel.parts:
        return None
    path = folder.joinpath(*rel.parts)
    kind = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}.get(path.suffix.lower())
    if kind is None or not path.is_file():
        return None
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _link(href: str) -> str | None:
    """The address a link keeps: http(s) and mailto as they are, the report's own pages as pages; None drops it."""
    parts = urlsplit(href)
    if parts.scheme:
        return href if parts.scheme.lower() in ("http", "https", "mailto") else None
    if href.startswith("#"):
        return href
    path = PurePosixPath(parts.path)
    if path.name in _PAGES:
        return urlunsplit(parts._replace(path=str(path.with_name(_PAGES[path.name]))))
    return href


def _markdown_it(folder: Path):
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("table")
    default_image = md.renderer.rules["image"]

    def image(renderer, tokens, idx, options, env):
        token = tokens[idx]
        uri = _data_uri(folder, str(token.attrGet("src") or ""))
        if uri is None:  # nothing is loaded from elsewhere: the alt text stands in
            return html.escape(token.content or "")
        token.attrSet("src", uri)
        return default_image(tokens, idx, options, env)

    def link_open(renderer, tokens, idx, options, env):
        token = tokens[idx]
        href = _link(str(token.attrGet("href") or ""))
        if href is None:
            token.attrs.pop("href", None)
        else:
            token.attrSet("href", href)
            if urlsplit(href).scheme in ("http", "https"):
                token.attrSet("rel", "noopener noreferrer")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("image", image)
    md.add_render_rule("link_open", link_open)
    md.add_render_rule("table_open", lambda renderer, tokens, idx, options, env: '<div class="table-wrap"><table class="sortable">\n')
    md.add_render_rule("table_close", lambda renderer, tokens, idx, options, env: "</table></div>\n")
    md.validateLink = lambda url: _link(url) is not None
    return md


def _title(markdown: str) -> str:
    for line in markdown.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return "Incident monitor"


def render_html(markdown: str, *, folder: Path, title: str | None = None) -> str:
    """The web page of a Markdown report whose charts and map are in `folder` (see the module docstring)."""
    body = _markdown_it(Path(folder)).render(markdown)
    script_hash = base64.b64encode(hashlib.sha256(_SORT_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    policy = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    plain_title = re.sub(r"[*_`\\]", "", title or _title(markdown))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="incident-monitor">\n'
        f"<title>{html.escape(plain_title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"{body}</main>\n<script>{_SORT_SCRIPT}</script>\n</body>\n</html>\n"
    )


def report_address(base_url: str, week: str, *, fallback: Any) -> str:
    """Where the digest sends its readers: `<base_url>/<week>/report.html` when a base URL is set, else `fallback`
    (the page's path on this machine)."""
    if not base_url:
        return str(fallback)
    from urllib.parse import quote

    return f"{base_url.rstrip('/')}/{quote(week)}/{_PAGES['report.md']}"
