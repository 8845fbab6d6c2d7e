"""The report's tables, built once as `Table`s and rendered three ways: HTML (report.html),
Markdown (report_tables.md) and LaTeX with booktabs (report_tables.tex). Also the paired comparisons in words,
and what differs between the runs of a sweep (protocol, data, code) from their provenance.json."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .metric_info import COUNT_LABELS, fmt, info, label_with_direction
from .runs import PAPER_STATUS, Run, override_values, sweep_axes

COUNTS = list(COUNT_LABELS)
DIRECTIONS = "↓ lower is better, ↑ higher is better."
STATUS_MARK = {"verified": "", "secondary source": "†", "unverified": "?"}


@dataclass
class Cell:
    """A value with its interval (`value [lo, hi]`), a paper cell (`ours [lo, hi] / published
    (diff)`), or text. `best` marks the best value of its row."""

    value: float | None = None
    lo: float | None = None
    hi: float | None = None
    digits: int = 2
    text: str | None = None
    best: bool = False
    published: str | None = None
    diff: float | None = None
    mark: str = ""
    title: str = ""

    def _finite(self, v: float | None) -> bool:
        return v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v)

    def parts(self) -> tuple[str, str, str]:
        """(main, interval, after): '71.43', '[42.86, 100.00]', '/ 46.0 (+2.20)'."""
        if self.text is not None:
            return self.text, "", ""
        main = fmt(self.value if self._finite(self.value) else None, self.digits)
        interval = f"[{fmt(self.lo, self.digits)}, {fmt(self.hi, self.digits)}]" if self._finite(self.lo) and self._finite(self.hi) else ""
        after = ""
        if self.published is not None:
            diff = f" ({self.diff:+.{self.digits}f})" if self._finite(self.diff) else ""
            after = f"/ {self.published}{diff}{self.mark}"
        return main, interval, after


@dataclass
class Table:
    key: str  # anchor and section name
    caption: str
    header: list[str]
    rows: list[list[Cell]]  # first cell: the row label
    notes: list[str] = field(default_factory=list)


def _best_flags(values: Sequence[float | None], lower_is_better: bool) -> list[bool]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 2 or len(set(finite)) == 1:
        return [False] * len(values)
    best = min(finite) if lower_is_better else max(finite)
    return [v is not None and math.isfinite(v) and v == best for v in values]


def shown_metrics(summary: pd.DataFrame) -> list[str]:
    """Metric columns any method has a value for, in summary order."""
    metrics = [c for c in summary.columns if c != "method" and c not in COUNTS and not c.endswith(("_lo", "_hi"))]
    return [m for m in metrics if pd.to_numeric(summary[m], errors="coerce").notna().any()]


def _metric_cell(row: pd.Series, metric: str) -> Cell:
    def get(column: str) -> float | None:
        v = row.get(column)
        return None if v is None or pd.isna(v) else float(v)

    return Cell(get(metric), get(metric + "_lo"), get(metric + "_hi"), info(metric).digits)


def summary_table(summary: pd.DataFrame, caption: str, key: str = "summary") -> Table:
    """Metrics as rows, methods as columns: value [95% interval], the best per row marked by the
    metric's direction; the counts first."""
    methods = summary["method"].astype(str).tolist()
    rows = []
    for column in COUNTS:
        if column in summary:
            rows.append([Cell(text=COUNT_LABELS[column])] + [Cell(text=f"{int(v):,}") for v in summary[column]])
    for metric in shown_metrics(summary):
        cells = [_metric_cell(r, metric) for _, r in summary.iterrows()]
        for cell, best in zip(cells, _best_flags([c.value for c in cells], info(metric).lower_is_better)):
            cell.best = best
        rows.append([Cell(text=label_with_direction(metric), title=metric)] + cells)
    return Table(key, caption, ["Metric", *methods], rows,
                 [DIRECTIONS + " Value [95% bootstrap interval over images]; bold = best of the row."])


# ----------------------------------------------------------------------------- comparisons


@dataclass
class Sentence:
    method: str
    baseline: str
    metric: str
    text: str
    verdict: str  # better / worse / unclear / same


def _amount(value: float, unit: str, digits: int) -> str:
    if unit == "%":  # one decimal, two for a difference that would round to 0.0
        return f"{fmt(value, 2 if 0 < abs(value) < 0.05 else 1)} points"
    return fmt(value, digits)


def comparison_sentences(comparisons: pd.DataFrame | None) -> list[Sentence]:
    """Each row of comparisons.csv in words, in the direction of the metric: "gradcampp localizes
    3.1 points better [1.2, 5.0] than gradcam on these 4,952 images (...)". Rows with no
    difference on any resample (e.g. classification errors: one model) become verdict "same"."""
    if comparisons is None or not len(comparisons):
        return []
    out = []
    for _, r in comparisons.iterrows():
        m = info(str(r["metric"]))
        sign = -1.0 if m.lower_is_better else 1.0
        diff, lo, hi = (float(r[c]) if pd.notna(r[c]) else math.nan for c in ("diff", "lo", "hi"))
        n = int(r["n_images"]) if pd.notna(r.get("n_images")) else 0
        method, baseline = str(r["method"]), str(r["baseline"])
        if diff == 0 and lo == 0 and hi == 0:
            out.append(Sentence(method, baseline, m.name, f"{method} and {baseline} give the same {m.label} on every resample", "same"))
            continue
        gain = sign * diff
        g_lo, g_hi = sorted((sign * lo, sign * hi))
        phrase, a, b = (m.better, g_lo, g_hi) if gain >= 0 else (m.worse, -g_hi, -g_lo)
        digits = 1 if m.unit == "%" else m.digits
        interval = f"[{fmt(a, digits)}, {fmt(b, digits)}]" if math.isfinite(a) and math.isfinite(b) else ""
        verdict = "better" if g_lo > 0 else "worse" if g_hi < 0 else "unclear"
        p = f"P(better) = {float(r['p_better']):.2f}" if pd.notna(r.get("p_better")) else ""
        judged = {"better": "a clear gain: the interval excludes 0", "worse": "clearly behind: the interval excludes 0",
                  "unclear": "not significant: the interval includes 0"}[verdict]
        if gain == 0:
            text = f"{method} ties with {baseline} on {m.label} on these {n:,} images (difference {interval}; {judged}; {p})"
        else:
            words = phrase.format(x=_amount(abs(gain), m.unit, m.digits), label=m.label)
            text = f"{method} {words} {interval} than {baseline} on these {n:,} images ({judged}; {p})"
        win = r.get("win_pct")
        if win is not None and pd.notna(win):
            text += f"; its drop is smaller on {float(win):.0f}% of the images (win %)"
        out.append(Sentence(method, baseline, m.name, text + ".", verdict))
    return out


def comparisons_table(comparisons: pd.DataFrame) -> Table:
    rows = []
    for _, r in comparisons.iterrows():
        d = info(str(r["metric"])).digits + 1
        win = r.get("win_pct")
        rows.append([
            Cell(text=str(r["method"])), Cell(text=str(r["baseline"])), Cell(text=label_with_direction(str(r["metric"]))),
            Cell(float(r["diff"]), float(r["lo"]), float(r["hi"]), d, best=bool(r["significant"])),
            Cell(float(r["p_better"]) if pd.notna(r["p_better"]) else None, digits=3),
            Cell(float(win) if win is not None and pd.notna(win) else None, digits=1),
        ])
    return Table("comparisons", "Paired comparisons (method - baseline) over the images both scored",
                 ["Method", "Baseline", "Metric", "Difference [95% paired interval]", "P(better)", "Win %"], rows,
                 ["Bold: the interval excludes 0 in the method's favour."])


# ----------------------------------------------------------------------------- paper tables


def paper_tables(table: pd.DataFrame) -> list[Table]:
    """table.csv (long form) pivoted into the paper's shape, one Table per (paper, table): rows
    and columns in the order they first appear, each cell `ours [lo, hi] / published (diff)`."""
    out = []
    for (paper, name), group in table.groupby(["paper", "table"], sort=False):
        rows = list(dict.fromkeys(group["row"].astype(str)))
        columns = list(dict.fromkeys(group["column"].astype(str)))
        cells = {(str(r["row"]), str(r["column"])): r for _, r in group.iterrows()}
        body = []
        for row in rows:
            line = [Cell(text=row)]
            for column in columns:
                r = cells.get((row, column))
                if r is None:
                    line.append(Cell(text=""))
                    continue
                ours = float(r["ours"]) if pd.notna(r["ours"]) else None
                digits = 3 if ours is not None and abs(ours) <= 1 and not float(ours).is_integer() else 2
                status = str(r["status"]) if pd.notna(r["status"]) else "unverified"
                published = "–" if pd.isna(r["published"]) else str(r["published"])
                n = f"{int(r['n_images']):,} images" if pd.notna(r["n_images"]) else ""
                source = str(r["source"]) if pd.notna(r["source"]) else ""
                line.append(Cell(
                    ours, r["ours_lo"] if pd.notna(r["ours_lo"]) else None, r["ours_hi"] if pd.notna(r["ours_hi"]) else None, digits,
                    published=published, diff=float(r["diff"]) if pd.notna(r["diff"]) else None, mark=STATUS_MARK.get(status, "?"),
                    title="; ".join(p for p in (status, n, source) if p),
                ))
            body.append(line)
        n_images = ", ".join(f"{int(v):,}" for v in pd.unique(group["n_images"].dropna()))
        out.append(Table(
            f"paper-{paper}-{name}", f"{paper}, {name}: ours [95% interval] / published (ours - published)",
            ["", *columns], body,
            [f"Images: {n_images}." if n_images else "", "† published number from a secondary source; ? not verified against the paper."],
        ))
    return out


# ----------------------------------------------------------------------------- sweeps

# provenance keys -> what a difference means; anything else (timings, device, loader) is not compared
_CATEGORIES = [
    ("protocol", ("metric_settings.", "config.transform.", "config.targets.", "config.report.bootstrap", "config.report.seed", "config.report.ci")),
    ("data", ("config.dataset.", "dataset_images")),
    ("code", ("git_commit", "wsl_bench", "python", "packages.")),
    ("model", ("config.model.", "model_weights", "target_layer")),
]
# settings recorded with the metrics that change from run to run, or the speed only, not the protocol
_NOT_PROTOCOL = (".maps_computed", ".cache_dir", ".chunk_size")
_CONFIG_METRICS = ("config.metric.",)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _category(key: str, has_metric_settings: bool) -> str | None:
    if key.endswith(_NOT_PROTOCOL):
        return None
    if key.startswith(_CONFIG_METRICS):  # recorded as scored in metric_settings, when present
        return None if has_metric_settings else "protocol"
    for category, prefixes in _CATEGORIES:
        if key.startswith(prefixes) or key in prefixes:
            return category
    return None


@dataclass
class Difference:
    category: str  # protocol / data / code / model / method
    key: str
    values: list[str]  # per run, "—" when a run does not record it
    swept: bool  # the key is one of the sweep's override axes


def provenance_differences(runs: list[Run]) -> list[Difference]:
    """Every compared provenance.json setting on which the runs disagree (the methods as one
    setting, whatever their params)."""
    flat = [_flatten(r.provenance) for r in runs]
    has_settings = all("metric_settings" in r.provenance for r in runs)
    keys = list(dict.fromkeys(k for f in flat for k in f))
    axes = sweep_axes(runs)
    out = []
    methods = [", ".join(r.methods) for r in runs]
    if len(set(methods)) > 1:
        out.append(Difference("method", "methods", methods, "method" in axes))
    for key in keys:
        category = _category(key, has_settings)
        if category is None:
            continue
        values = [_show(f.get(key, "—")) for f in flat]
        if len(set(values)) > 1:
            tail = key.split(".", 1)[1] if key.startswith(("config.", "metric_settings.")) else key
            # a metric setting metric_settings.<name>.<key> is set by the override metric.<name>.<key>
            names = {tail, f"metric.{tail}"} if key.startswith("metric_settings.") else {tail}
            swept = any(n == a or n.startswith(a + ".") for n in names for a in axes)
            out.append(Difference(category, key, values, swept))
    return out


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return "null" if value is None else str(value)


def sweep_tables(runs: list[Run]) -> list[Table]:
    """One table per metric: rows are the runs (merged when they differ only in the method axis:
    rows model x dataset, columns methods), columns the methods, cells value [95% interval]."""
    axes = [a for a in sweep_axes(runs) if a != "method"]
    method_swept = "method" in sweep_axes(runs)
    row_of: dict[str, dict[str, pd.Series]] = {}
    for i, run in enumerate(runs):
        values = override_values(run)
        label = ", ".join(f"{a}={values.get(a, '—')}" for a in axes) or ("all runs" if method_swept else run.label)
        if any(m in row_of.get(label, {}) for m in run.methods):  # the same cell twice: keep both runs apart
            label = f"{label} ({run.path.name})"
        for _, summary_row in run.summary.iterrows():
            row_of.setdefault(label, {})[str(summary_row["method"])] = summary_row
    methods = list(dict.fromkeys(m for r in runs for m in r.methods))
    metrics = list(dict.fromkeys(m for r in runs for m in shown_metrics(r.summary)))
    tables = []
    for metric in metrics:
        body = []
        for label, by_method in row_of.items():
            cells = [_metric_cell(by_method[m], metric) if m in by_method else Cell(text="") for m in methods]
            for cell, best in zip(cells, _best_flags([c.value for c in cells], info(metric).lower_is_better)):
                cell.best = best
            body.append([Cell(text=label)] + cells)
        tables.append(Table(f"sweep-{metric}", f"{label_with_direction(metric)} across the runs", ["Run", *methods], body,
                            [DIRECTIONS + " Value [95% bootstrap interval over images]; bold = best of the row."]))
    return tables


# ----------------------------------------------------------------------------- renderers


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table) -> str:
    lines = [f"**{table.caption}**", "", "| " + " | ".join(_md_escape(h) for h in table.header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|"]
    for row in table.rows:
        cells = []
        for cell in row:
            main, interval, after = cell.parts()
            main = f"**{main}**" if cell.best else main
            cells.append(_md_escape(" ".join(p for p in (main, interval, after) if p)))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [n for n in table.notes if n]
    return "\n".join(lines + ([""] + notes if notes else []))


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--", "—": "---", "†": r"$^\dagger$", "·": r"$\cdot$",
        "↓": r"$\downarrow$", "↑": r"$\uparrow$", "✓": r"$\surd$", "≥": r"$\geq$", "τ": r"$\tau$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs table: \\toprule / \\midrule / \\bottomrule, best values in bold, intervals small."""
    align = "l" + "r" * (len(table.header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", f"\\caption{{{tex_escape(table.caption)}}}",
             f"\\label{{tab:{tex_escape(table.key)}}}", f"\\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(tex_escape(h) for h in table.header) + r" \\", r"\midrule"]
    for row in table.rows:
        cells = []
        for cell in row:
            main, interval, after = cell.parts()
            text = tex_escape(main)
            if cell.best:
                text = f"\\textbf{{{text}}}"
            if interval:
                text += f" {{\\scriptsize {tex_escape(interval)}}}"
            if after:
                text += f" {tex_escape(after)}"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = [n for n in table.notes if n]
    if notes:
        lines.append(f"\\par\\smallskip{{\\footnotesize {tex_escape(' '.join(notes))}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def to_html(table: Table, caption: bool = True) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in table.header)
    body = []
    for row in table.rows:
        tds = []
        for j, cell in enumerate(row):
            main, interval, after = cell.parts()
            title = f' title="{e(cell.title)}"' if cell.title else ""
            if j == 0:
                tds.append(f'<th scope="row"{title}>{e(main)}</th>')
                continue
            inner = f'<span class="v">{e(main)}</span>'
            if interval:
                inner += f' <span class="ci">{e(interval)}</span>'
            if after:
                inner += f' <span class="pub">{e(after)}</span>'
            tds.append(f'<td class="{"best" if cell.best else ""}"{title}>{inner}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    cap = f"<caption>{e(table.caption)}</caption>" if caption else ""
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in table.notes if n)
    return (f'<div class="table-wrap"><table class="t" id="t-{e(table.key)}">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>{notes}')


def write_tables(tables: Iterable[Table], markdown_path, latex_path) -> None:
    tables = list(tables)
    markdown_path.write_text("\n\n".join(to_markdown(t) for t in tables) + "\n")
    latex_path.write_text("% Tables of a wsl_bench report; needs \\usepackage{booktabs}\n\n" + "\n\n".join(to_latex(t) for t in tables) + "\n")


__all__ = [
    "Cell", "Difference", "PAPER_STATUS", "Sentence", "Table", "comparison_sentences", "comparisons_table", "paper_tables",
    "provenance_differences", "summary_table", "sweep_tables", "to_html", "to_latex", "to_markdown", "write_tables",
]
