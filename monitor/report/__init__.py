"""The weekly report: Markdown (`markdown.py`) and PNG charts (`plots.py`, the only matplotlib user)."""

from monitor.report.files import write_index, write_report
from monitor.report.markdown import md_escape, render_markdown

__all__ = ["md_escape", "render_markdown", "write_index", "write_report"]
