"""A signed consult report as a PDF for print (fpdf2): title, author and time, findings,
conclusion, what it cites, and the server's signature to check it by.

Text is set in DejaVu Sans where the system has it (any script the font covers);
otherwise in the PDF core font, which holds Latin-1 only, so other characters become
"?" rather than failing the export.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fpdf import FPDF

_FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
          Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"))


def render_pdf(report: Mapping[str, Any]) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(str(report.get("title") or "Consult report"))
    pdf.set_author(str(report.get("author", {}).get("name", "")))
    unicode = all(p.is_file() for p in _FONTS)
    if unicode:
        pdf.add_font("DejaVu", "", str(_FONTS[0]))
        pdf.add_font("DejaVu", "B", str(_FONTS[1]))
    family = "DejaVu" if unicode else "Helvetica"

    def text(value: object) -> str:
        value = str(value)
        return value if unicode else value.encode("latin-1", "replace").decode("latin-1")

    def heading(value: str, size: int = 12) -> None:
        pdf.set_font(family, "B", size)
        pdf.multi_cell(0, 7, text(value), new_x="LMARGIN", new_y="NEXT")

    def body(value: str) -> None:
        pdf.set_font(family, "", 10)
        pdf.multi_cell(0, 5, text(value), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)

    pdf.add_page()
    heading(str(report.get("title") or "Consult report"), 16)
    author = report.get("author", {})
    body(f"Signed by {author.get('name', '')} ({author.get('role', '')}, {author.get('identity', '')}) "
         f"at {report.get('signed_at', '')}. Consult room: {report.get('room', '')}.")
    heading("Findings")
    body(str(report.get("findings", "")))
    heading("Conclusion")
    body(str(report.get("conclusion", "")))
    cited = _cited(report.get("references") or {})
    if cited:
        heading("Cited")
        body("\n".join(f"- {line}" for line in cited))
    signature = report.get("signature") or {}
    heading("Server signature", 10)
    body(f"{signature.get('alg', '')} key {signature.get('key_id', '')} (public key {signature.get('public_key', '')})\n"
         f"{signature.get('signature', '')}\nReport id {report.get('id', '')}")
    return bytes(pdf.output())


def _cited(refs: Mapping[str, Any]) -> list[str]:
    lines = [f"Image {d.get('name')} ({d.get('modality')}), SOP Instance {d.get('sop_instance_uid')}"
             for d in refs.get("dicom", [])]
    for lab in refs.get("labs", []):
        value = lab.get("value") if lab.get("value") is not None else lab.get("text", "")
        flag = f" ({lab['interpretation']})" if lab.get("interpretation") else ""
        lines.append(f"{lab.get('display') or lab.get('loinc')} (LOINC {lab.get('loinc')}): "
                     f"{lab.get('comparator') or ''}{value} {lab.get('unit') or ''}{flag}")
    lines += [f"ECG {e.get('recording')} {e.get('start_s')}-{e.get('end_s')} s ({', '.join(e.get('leads') or [])})"
              for e in refs.get("ecg", [])]
    return lines
