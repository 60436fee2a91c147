"""How the command line prints tables.

rich lays a table out to the terminal's width; piped into a file or another program there is no
terminal, rich assumes 80 columns, and cells are cut to "…" — a delivery's destination or a
release's title lost exactly where a script reads it. Piped, tables get room for every cell.
"""

from __future__ import annotations

import sys

from rich.console import Console

PIPED_WIDTH = 1000  # columns: wider than any row we print, and a table only takes what it needs


def table_console() -> Console:
    """A console for tables on standard output: the terminal's width, or room for every cell when piped."""
    return Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)
