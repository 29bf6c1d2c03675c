"""Go's text/tabwriter (left-aligned, space padding), so tables and descriptions line up exactly
as the ``velero`` CLI prints them: kubectl-style tables use (minwidth 6, padding 3), Velero's
describer (minwidth 0, padding 2).

Cells end at a tab; the text after a line's last tab is not part of any column. A column's width
is fixed per block of consecutive lines that have a cell in that column, which is why a line
without tabs (a heading, a blank line) restarts the alignment below it.
"""

from __future__ import annotations


def tabwrite(text: str, minwidth: int, padding: int) -> str:
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell.ljust(widths[j]) if j < len(widths) else cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out)
