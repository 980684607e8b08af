"""mkdocs hook: each `<!-- measured: NAME -->` line becomes the table made from docs/measured/NAME.

The tables come from JSON records (benchmarks/tables.py says which kinds); a missing or malformed record fails
the build, so a page never shows a figure that has no record behind it.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.exceptions import PluginError

from benchmarks.tables import RecordError, render

MARKER = re.compile(r"^<!-- measured: ([\w./-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config["docs_dir"]) / "measured"

    def table(match: re.Match[str]) -> str:
        try:
            return render(match.group(1), root)
        except RecordError as error:
            raise PluginError(f"{page.file.src_path}: {error}") from error

    return MARKER.sub(table, markdown)
