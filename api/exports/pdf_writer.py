"""The PDF report (reportlab): title, scope, tiles, the engagement chart
drawn as vector graphics, and the report's table (header repeated on each
page). Rows stream from the source into the table; the PDF caps them at
``EXPORT_PDF_MAX_ROWS`` and says so on the page."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

TILES = (
    ("programs_tracked", "Programs tracked"),
    ("median_engagement", "Median engagement"),
    ("weekly_active_learners", "Active this week"),
    ("completion_rate", "Completion rate"),
    ("at_risk_learners", "At-risk learners"),
)
BLUE, GREY = colors.HexColor("#2563eb"), colors.HexColor("#9ca3af")
HEAD_BG, STRIPE = colors.HexColor("#eef2ff"), colors.HexColor("#f9fafb")


BLOCK_ROWS = 40
ROW_H = 9.5


def _col_widths(cols: tuple[str, ...], total: float) -> list[float]:
    # wider columns for the text-heavy ones, the rest share what is left
    weight = {"detail": 5, "resource": 3, "definition": 6, "label": 3, "hash": 4, "prev_hash": 4}
    w = [weight.get(c, 1) for c in cols]
    return [total * x / sum(w) for x in w]


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class RowBlock(Flowable):
    """A header and up to ``BLOCK_ROWS`` rows of fixed height: a striped
    table drawn with canvas calls, cells clipped to their column width."""

    def __init__(self, head: list[str], rows: list[list[str]], widths: list[float]) -> None:
        super().__init__()
        self.head, self.rows, self.widths = head, rows, widths
        self.width, self.height = sum(widths), ROW_H * (len(rows) + 1)

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        c = self.canv
        top = self.height
        c.setFillColor(HEAD_BG)
        c.rect(0, top - ROW_H, self.width, ROW_H, stroke=0, fill=1)
        c.setFillColor(STRIPE)
        for i in range(1, len(self.rows), 2):
            c.rect(0, top - ROW_H * (i + 2), self.width, ROW_H, stroke=0, fill=1)
        c.setStrokeColor(GREY)
        c.setLineWidth(0.5)
        c.line(0, top - ROW_H, self.width, top - ROW_H)
        c.setFillColor(colors.black)
        # one text object for the block: drawString would open one per cell,
        # most of a 10k-row PDF's time
        text = c.beginText()
        for i, (font, cells) in enumerate(
            [("Helvetica-Bold", self.head)] + [("Helvetica", r) for r in self.rows]
        ):
            text.setFont(font, 7)
            y, x = top - ROW_H * (i + 1) + 2.5, 2.0
            for cell, w in zip(cells, self.widths, strict=True):
                text.setTextOrigin(x, y)
                text.textOut(_clip(cell, w - 4))
                x += w
        c.drawText(text)


def _clip(text: str, width: float) -> str:
    # Helvetica 7 pt averages under 4 pt a character: cut what would overflow
    most = max(1, int(width / 3.6))
    return text if len(text) <= most else text[: most - 1] + "…"


def _tiles(summary: dict[str, Any]) -> Table:
    tiles = summary["tiles"]
    head, vals, deltas = [], [], []
    for key, label in TILES:
        t = tiles[key]
        v = t["value"]
        head.append(label)
        vals.append(f"{100 * v:.0f}%" if key == "completion_rate" and v is not None else _fmt(v))
        d = t.get("delta")
        deltas.append("" if d is None else f"{'+' if d >= 0 else ''}{_fmt(d)} vs last week")
    tbl = Table([head, vals, deltas], colWidths=[52 * mm] * len(TILES))
    tbl.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, 0), "Helvetica", 8),
                ("TEXTCOLOR", (0, 0), (-1, 0), colors.grey),
                ("FONT", (0, 1), (-1, 1), "Helvetica-Bold", 16),
                ("FONT", (0, 2), (-1, 2), "Helvetica", 7),
                ("BOX", (0, 0), (-1, -1), 0.5, GREY),
                ("INNERGRID", (0, 0), (-1, -1), 0.25, colors.whitesmoke),
            ]
        )
    )
    return tbl


def _chart(summary: dict[str, Any]) -> Drawing:
    series = summary["series"]
    d = Drawing(250 * mm, 62 * mm)
    d.add(String(0, 58 * mm, f"Engagement · last {len(series)} weeks", fontSize=10))
    lp = LinePlot()
    lp.x, lp.y, lp.width, lp.height = 12 * mm, 10 * mm, 200 * mm, 42 * mm
    med = [(i, s["median_score"]) for i, s in enumerate(series) if s["median_score"] is not None]
    tgt = [(i, s["target"]) for i, s in enumerate(series)]
    lp.data = [med or [(0, 0)], tgt]
    lp.lines[0].strokeColor, lp.lines[0].strokeWidth = BLUE, 2
    lp.lines[1].strokeColor, lp.lines[1].strokeDashArray = GREY, (4, 3)
    lp.yValueAxis.valueMin, lp.yValueAxis.valueMax, lp.yValueAxis.valueStep = 0, 100, 20
    lp.xValueAxis.valueMin, lp.xValueAxis.valueMax = 0, max(1, len(series) - 1)
    lp.xValueAxis.valueSteps = list(range(len(series)))
    weeks = [s["week"][5:] for s in series]
    lp.xValueAxis.labelTextFormat = lambda i: weeks[int(i)] if 0 <= int(i) < len(weeks) else ""
    d.add(lp)
    leg = Legend()
    leg.x, leg.y, leg.fontSize = 218 * mm, 45 * mm, 8
    leg.colorNamePairs = [(BLUE, "median engagement"), (GREY, "target")]
    d.add(leg)
    return d


def write_pdf(
    path: Path,
    *,
    title: str,
    scope_text: str,
    summary: dict[str, Any],
    cols: tuple[str, ...],
    rows: Iterable[dict[str, Any]],
    max_rows: int,
) -> int:
    styles = getSampleStyleSheet()
    doc = SimpleDocTemplate(
        str(path),
        pagesize=landscape(A4),
        title=title,
        author="SkillStream",
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
    )
    body: list[list[str]] = [list(cols)]
    n, more = 0, False
    for r in rows:
        if n >= max_rows:
            more = True
            break
        body.append([_fmt(r.get(c)) for c in cols])
        n += 1
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    story: list[Any] = [
        Paragraph(title, styles["Title"]),
        Paragraph(f"Scope: {scope_text} · generated {now}", styles["Normal"]),
        Spacer(1, 4 * mm),
        _tiles(summary),
        Spacer(1, 4 * mm),
        _chart(summary),
        Spacer(1, 2 * mm),
        Paragraph(
            f"{n} row(s)" + (f" — first {max_rows} shown; use CSV for all" if more else ""),
            styles["Heading3"],
        ),
    ]
    # One block of rows per page-sized flowable, drawn straight on the canvas:
    # platypus Tables lay out and style every cell in Python, which cost
    # about 1 ms a row; fixed geometry and plain drawString calls cost a tenth.
    widths = _col_widths(cols, doc.width)
    for start in range(1, len(body), BLOCK_ROWS):
        story.append(RowBlock(body[0], body[start : start + BLOCK_ROWS], widths))
    if len(body) == 1:
        story.append(RowBlock(body[0], [], widths))
    doc.build(story)
    return n
