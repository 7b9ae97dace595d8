"""Results as HTML, for a Jupyter notebook (``_repr_html_``): every result's HTML is made here, from
the same rows and lines as its text report, so that the two say the same thing."""
import html as _html
import math

_GOOD, _BAD = "#1a7f37", "#cf222e"
_CELL = "padding:1px 8px"


def esc(text):
    """``text`` with &, <, > and quotes escaped for HTML."""
    return _html.escape(str(text), quote=True)


def badge(text, ok):
    """A coloured label: green for a pass or an agreement, red otherwise."""
    return (f'<span style="background:{_GOOD if ok else _BAD};color:white;font-weight:bold;'
            f'padding:1px 7px;border-radius:4px;font-family:sans-serif">{esc(text)}</span>')


def html_table(rows, *, marked=()):
    """An HTML table of ``rows`` (lists of strings, the first the header); the rows whose index in
    ``rows[1:]`` is in ``marked`` are shown in red and bold (a wrong tensor, a DIFFER)."""
    head = "".join(f'<th style="{_CELL}">{esc(c)}</th>' for c in rows[0])
    body = []
    for i, row in enumerate(rows[1:]):
        style = f' style="color:{_BAD};font-weight:bold"' if i in marked else ""
        body.append(f'<tr{style}>' + "".join(f'<td style="{_CELL}">{esc(c)}</td>' for c in row) + "</tr>")
    return (f'<table style="border-collapse:collapse;margin:4px 0;text-align:left;font-family:monospace;'
            f'white-space:nowrap"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def html_lines(lines, *, wrong=False):
    """Lines of text, preformatted (a reason, a note); red with ``wrong``."""
    colour = f"color:{_BAD};" if wrong else ""
    return "".join(f'<div style="{colour}font-family:monospace;white-space:pre-wrap">{esc(line)}</div>'
                   for line in lines)


def svg_curves(curves, *, width=320, height=90):
    """A small inline SVG of cost curves, log scale (cheap: no matplotlib): ``curves`` maps a label
    to a list of numbers; non-finite or non-positive values are left out. Empty when nothing to draw.
    The first curve is solid, the others dashed, so two that agree lie on top of each other."""
    points = {k: [(i, math.log10(v)) for i, v in enumerate(vs) if isinstance(v, (int, float))
                  and math.isfinite(v) and v > 0] for k, vs in curves.items()}
    points = {k: p for k, p in points.items() if p}
    if not points:
        return ""
    xs = [i for p in points.values() for i, _ in p]
    ys = [y for p in points.values() for _, y in p]
    x0, x1, y0, y1 = min(xs), max(max(xs), min(xs) + 1), min(ys), max(ys)
    y1 = y1 if y1 > y0 else y0 + 1
    pad = 4

    def at(i, y):
        return (f"{pad + (i - x0) / (x1 - x0) * (width - 2 * pad):.1f},"
                f"{pad + (y1 - y) / (y1 - y0) * (height - 2 * pad):.1f}")

    colours = ["#0969da", "#bf8700", "#8250df", "#1a7f37"]
    lines, legend = [], []
    for n, (label, p) in enumerate(points.items()):
        step = max(1, len(p) // 400)            # at most ~400 points a curve
        pts = " ".join(at(i, y) for i, y in p[::step] + ([p[-1]] if (len(p) - 1) % step else []))
        dash = ' stroke-dasharray="5,3"' if n else ""
        lines.append(f'<polyline fill="none" stroke="{colours[n % 4]}" stroke-width="1.5"{dash} points="{pts}"/>')
        legend.append(f'<span style="color:{colours[n % 4]}">{"- -" if n else "—"} {esc(label)}</span>')
    return (f'<div><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'style="border:1px solid #d0d7de">{"".join(lines)}</svg>'
            f'<div style="font-family:sans-serif;font-size:smaller">cost per step, log scale '
            f'({10 ** y0:.3g} to {10 ** y1:.3g}): {" ".join(legend)}</div></div>')


def result_html(title, verdict, ok, *, table, marked=(), lines=(), wrong_lines=(), after=()):
    """One result: ``title`` in bold with ``verdict`` as a badge (green when ``ok``), ``lines`` (what
    was compared, the tolerance), the table (the rows in ``marked`` red), ``wrong_lines`` (the
    first wrong node and its reason) in red, then ``after`` (notes, a curve), all escaped but ``after``
    (HTML made here)."""
    parts = [f'<div><b>{esc(title)}</b> {badge(verdict, ok)}</div>', html_lines(lines),
             html_table(table, marked=marked), html_lines(wrong_lines, wrong=True)]
    return '<div class="backprop-oracle">' + "".join(parts + list(after)) + "</div>"
