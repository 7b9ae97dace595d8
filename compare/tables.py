"""Text tables for the terminal, shared by every report (the lockstep table, train, check, trace)."""


def aligned(rows, *, rule=False, indent=""):
    """Text lines of ``rows`` (lists of strings) in left-aligned columns two spaces apart; with
    ``rule`` a line of dashes under the first row (the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    if rule:
        lines.insert(1, indent + "  ".join("-" * w for w in widths))
    return lines
