"""The consult report for print: one A4 PDF (fpdf2) with the title, the room, the author and
time the server signed, the findings, the conclusion, the cited items and the signature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos


def render_pdf(report: Mapping[str, Any], room: str, seq: int) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(f"{report['title']} - {room}")
    pdf.set_author(report["author"].get("name") or report["author"]["identity"])
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    _line(pdf, report["title"], 10)
    pdf.set_font("helvetica", size=10)
    author = report["author"]
    _line(pdf, f"Consult {room}, report {seq}. Signed by {author.get('name') or author['identity']} "
               f"({author['identity']}, {author.get('role', '')}) at {report['signed_at']}.", 6)
    for heading, text in (("Findings", report["findings"]), ("Conclusion", report["conclusion"])):
        pdf.ln(4)
        pdf.set_font("helvetica", "B", 12)
        _line(pdf, heading, 7)
        pdf.set_font("helvetica", size=11)
        _line(pdf, text, 6)
    if report["references"]:
        pdf.ln(4)
        pdf.set_font("helvetica", "B", 12)
        _line(pdf, "Discussed in the consult", 7)
        pdf.set_font("helvetica", size=10)
        for ref in report["references"]:
            span = f", {ref['start']:.1f}-{ref['end']:.1f} s" if "start" in ref else ""
            _line(pdf, f"#{ref['seq']} {ref['kind']}: {ref['summary']}{span}", 5)
    pdf.ln(6)
    pdf.set_font("courier", size=8)
    _line(pdf, f"Server signature (HMAC-SHA256): {report['signature']}", 4)
    return bytes(pdf.output())


def _line(pdf: FPDF, text: str, height: float) -> None:
    # The core fonts are Latin-1: anything else prints as '?', never fails the report.
    safe = text.encode("latin-1", "replace").decode("latin-1")
    pdf.multi_cell(0, height, safe, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
