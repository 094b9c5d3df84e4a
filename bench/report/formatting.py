"""Number and table formatting: numbers with a fixed count of decimals and a true minus sign,
budgets as "4k", Markdown tables, booktabs/siunitx LaTeX tables and the TeX escapes. Knows no
table's content (bench.report.renderers fills the rows)."""

from __future__ import annotations

import math
import re


# ---------------------------------------------------------------------------- numbers
def decimals(values) -> int:
    """Decimals that give the smallest |value| three significant digits (0 to 6)."""
    vals = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not vals:
        return 2
    return max(0, min(6, 2 - math.floor(math.log10(min(vals)))))


def num(x: float, d: int) -> str:
    """``x`` with ``d`` decimals and a true minus sign (no "−0.00")."""
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x + 0.0 if round(x, d) != 0 else 0.0:.{d}f}".replace("-", "−")


def budget_label(b: int) -> str:
    return f"{b // 1000}k" if b >= 1000 and b % 1000 == 0 else str(b)


def per_seed(values, d: int) -> str:
    """Per-seed values, comma-separated, each with ``d`` decimals."""
    return ", ".join(num(v, d) for v in values)


def seeds_text(seeds, values) -> str:
    """``seed:value;...`` (the CSV form of per-seed values, 10 significant digits)."""
    return ";".join(f"{s}:{v:.10g}" for s, v in zip(seeds, values))


# ---------------------------------------------------------------------------- LaTeX
def tex_escape(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
           "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
           "·": r"$\cdot$", "−": r"$-$", "—": "--", "±": r"$\pm$", "≤": r"$\le$",
           "×": r"$\times$", "≈": r"$\approx$", "Δ": r"$\Delta$", "↓": r"$\downarrow$",
           "↑": r"$\uparrow$"}
    return "".join(rep.get(ch, ch) for ch in s)


_NUMBER = r"[−-]?\d+(?:\.\d+)?(?:e[+−-]?\d+)?"
_VALUE = re.compile(rf"(?<![\w.])({_NUMBER})(?: ± ({_NUMBER}))?(?![\w.])")


def tex_cell(md_cell: str) -> str:
    """A Markdown value cell as LaTeX: every number as siunitx's ``\\num{}`` (``a ± b`` as
    ``\\num{a +- b}``: a true minus sign, aligned digits), the rest escaped, ``**x**`` →
    ``\\textbf{x}``."""
    out, pos = [], 0
    for m in _VALUE.finditer(md_cell):
        out.append(tex_escape(md_cell[pos:m.start()]))
        a, b = (x.replace("−", "-") if x else x for x in m.groups())
        out.append(rf"\num{{{a} +- {b}}}" if b else rf"\num{{{a}}}")
        pos = m.end()
    out.append(tex_escape(md_cell[pos:]))
    return re.sub(r"\*\*(.+?)\*\*", r"\\textbf{\1}", "".join(out))


# ---------------------------------------------------------------------------- tables
def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|",
                      *(line(r) for r in rows)]) + "\n"


def latex_table(header: list[str], rows: list[list[str]], caption: str,
                labels: int = 2) -> str:
    """A booktabs tabular of Markdown ``rows``: the first ``labels`` columns are text
    (escaped), the others values (``tex_cell``: siunitx numbers)."""
    cols = "l" * labels + "r" * (len(header) - labels)
    body = [[tex_escape(c) if i < labels else tex_cell(c) for i, c in enumerate(r)]
            for r in rows]
    return "\n".join([
        f"% {caption}", "% needs \\usepackage{booktabs} and \\usepackage{siunitx}",
        f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
        " & ".join(tex_escape(h) for h in header) + r" \\", "\\midrule",
        *(" & ".join(r) + r" \\" for r in body), "\\bottomrule", "\\end{tabular}", ""])


def group_first(rows: list[list[str]], col: int = 0) -> list[list[str]]:
    """Blank repeated group labels in column ``col`` (the paper's grouped rows)."""
    out, prev = [], None
    for r in rows:
        out.append([("" if r[col] == prev else r[col]), *r[1:]] if col == 0 else r)
        prev = r[col]
    return out


def both_tables(header: list[str], rows: list[list[str]], caption: str,
                labels: int = 2) -> tuple[str, str]:
    """(Markdown, LaTeX) of grouped ``rows`` (repeated labels of the first column blanked)."""
    grouped = group_first(rows)
    return markdown_table(header, grouped), latex_table(header, grouped, caption, labels)
