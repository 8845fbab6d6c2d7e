"""Paper tables: a published table with our numbers beside it.

A paper preset (`conf/experiment/<name>.yaml`, run as `python -m wsl_bench +experiment=<name>`)
carries a `paper_table:` node that links the cells of a published table to our statistics:

    paper_table:
      published: gradcam.csv              # the published numbers (wsl_bench/report/published/)
      run: {model: "${model.name}"}       # what this run is, matched by the `when:` conditions
      tables:
        - table: Table 1                  # a table of the CSV, in the paper's rows and columns
          rows:    {"VGG-16: Grad-CAM": {method: gradcam, when: {model: vgg16}}}
          columns: {"top-1 loc err": {statistic: top1_loc_err}}

A cell is the row's spec merged with the column's (and the table's `when`): the method whose
summary row holds it, the statistic (a summary column), and optionally `paired: <column>` of a
paired comparison against `versus` (e.g. the Grad-CAM++ win %). A run fills the cells whose
`when` conditions all hold for its `run:` values; the others keep only the published number, so a
table spread over several models or datasets is filled by several runs (a Hydra multirun) and put
together by `python -m wsl_bench.report.paper_tables <multirun or run dirs>` (also done at the
end of a multirun of a preset).

Each run writes `table.csv` (long form, PAPER_COLUMNS: published value and status beside ours,
its 95% interval and the difference) and `table.md` (the paper's shape)."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback

from ..config import ReportSettings, Settings, settings_from
from ..errors import ConfigError, UserError

log = logging.getLogger("wsl_bench")

PAPER_COLUMNS = ["paper", "table", "row", "column", "published", "status", "ours", "ours_lo", "ours_hi", "diff", "n_images", "source"]
PUBLISHED_COLUMNS = ["paper", "table", "row", "column", "published", "status", "source"]
CELL_KEY = ["paper", "table", "row", "column"]
# How far a published figure was checked (reference/published_tables.md's marks; unmarked = as published).
STATUSES = ("verified", "secondary source", "unverified")
STATUS_MARK = {"verified": "", "secondary source": "†", "unverified": "?"}
# The published numbers ship with the package, beside this module (the report reads them, not the config).
PUBLISHED_DIR = Path(__file__).resolve().parent / "published"
TABLE_FILES = ("table.csv", "table.md")


# ---------------------------------------------------------------- published numbers


def published_path(name: str) -> Path:
    """A published CSV by file name (in wsl_bench/report/published/) or by path."""
    shipped = PUBLISHED_DIR / name
    path = shipped if shipped.is_file() else Path(name).expanduser()
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in PUBLISHED_DIR.glob("*.csv")))
        raise ConfigError(f"paper_table.published={name!r}: no such file; use one of {shipped} or a path to your CSV")
    return path


def read_published(name: str) -> pd.DataFrame:
    """The published cells of a CSV (PUBLISHED_COLUMNS; values kept as written, "" = none)."""
    path = published_path(name)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in PUBLISHED_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}; a published table has {', '.join(PUBLISHED_COLUMNS)}")
    bad_status = sorted(set(table["status"]) - set(STATUSES))
    if bad_status:
        raise ConfigError(f"{path}: unknown status {', '.join(map(repr, bad_status))}; use one of {', '.join(STATUSES)}")
    for value in table["published"]:
        if value and not _is_number(value):
            raise ConfigError(f"{path}: published value {value!r} is not a number (leave it empty when the paper has none)")
    repeated = table[table.duplicated(CELL_KEY, keep=False)]
    if len(repeated):
        raise ConfigError(f"{path}: cell {' / '.join(repeated.iloc[0][CELL_KEY])} is listed twice")
    return table[PUBLISHED_COLUMNS]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- the preset's mapping (schema)


@dataclass(frozen=True)
class CellSpec(Settings):
    """Part of a cell's definition, from its row or its column (merged; each key set once)."""

    method: str | None = None  # the summary row (a method of the run)
    statistic: str | None = None  # the summary column (a metric unit's statistic)
    paired: str | None = None  # a column of the paired comparison `method` vs `versus` (e.g. win_pct)
    versus: str | None = None
    when: Any = None  # {run key: value or [values]}: the runs that fill the cell


@dataclass(frozen=True)
class TableSpec(Settings):
    table: str = ""  # the table's name in the published CSV
    when: Any = None  # conditions shared by all its cells
    rows: Any = None  # {row label: CellSpec}
    columns: Any = None  # {column label: CellSpec}


@dataclass(frozen=True)
class PaperTableSettings(Settings):
    config_path: ClassVar[str] = "paper_table"
    published: str = ""
    run: Any = None  # {key: value}: what this run is (e.g. its model and dataset)
    tables: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Cell:
    """One mapped cell of a published table."""

    table: str
    row: str
    column: str
    method: str
    statistic: str
    paired: str | None
    versus: str | None
    when: tuple[tuple[str, frozenset[str]], ...]  # (run key, accepted values)


@dataclass(frozen=True, eq=False)
class PaperTable:
    """A preset's `paper_table:` node, checked: the published cells of its tables and the mapping."""

    published: pd.DataFrame  # PUBLISHED_COLUMNS of the tables it names, in the CSV's order
    run: dict[str, str]
    cells: tuple[Cell, ...]
    source: str  # the CSV it reads

    def fills(self, cell: Cell) -> bool:
        return all(self.run.get(key) in values for key, values in cell.when)

    def filled(self) -> dict[tuple[str, str, str], Cell]:
        """(table, row, column) -> the cell this run fills."""
        out: dict[tuple[str, str, str], Cell] = {}
        for cell in self.cells:
            if self.fills(cell):
                key = (cell.table, cell.row, cell.column)
                if key in out:
                    raise ConfigError(f"paper_table: run {self.run} fills {' / '.join(key)} twice; make the when: conditions exclusive")
                out[key] = cell
        return out


def _mapping(node: Any, path: str) -> dict[str, Any]:
    if node is None:
        return {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"{path} must be a mapping, got {node!r}")
    return {str(k): v for k, v in node.items()}


def _conditions(node: Any, path: str) -> dict[str, frozenset[str]]:
    out = {}
    for key, value in _mapping(node, path).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        out[key] = frozenset(str(v) for v in values)
    return out


def _merge_conditions(parts: Sequence[dict[str, frozenset[str]]]) -> tuple[tuple[str, frozenset[str]], ...]:
    merged: dict[str, frozenset[str]] = {}
    for part in parts:
        for key, values in part.items():
            merged[key] = merged[key] & values if key in merged else values
    return tuple(sorted(merged.items()))


def _merge_specs(row: CellSpec, column: CellSpec, where: str) -> dict[str, str | None]:
    merged: dict[str, str | None] = {}
    for key in ("method", "statistic", "paired", "versus"):
        a, b = getattr(row, key), getattr(column, key)
        if a is not None and b is not None and a != b:
            raise ConfigError(f"{where}: {key} is set by both the row ({a}) and the column ({b})")
        merged[key] = a if a is not None else b
    for key in ("method", "statistic"):
        if merged[key] is None:
            raise ConfigError(f"{where}: no {key}; give it in the row or the column")
    if merged["paired"] is not None and merged["versus"] is None:
        raise ConfigError(f"{where}: paired={merged['paired']} needs versus: <the other method>")
    if merged["paired"] is None:
        merged["versus"] = None
    return merged


def parse_paper_table(node: Any) -> PaperTable:
    """The `paper_table` config node, checked against its published CSV: every row and column
    label must be one of the CSV's table (a typo is a ConfigError naming it)."""
    settings = settings_from(PaperTableSettings, node)
    if not settings.published:
        raise ConfigError("paper_table.published is not set; name a CSV of wsl_bench/report/published/ or a path")
    published = read_published(settings.published)
    run = {str(k): "" if v is None else str(v) for k, v in _mapping(settings.run, "paper_table.run").items()}
    cells, names = [], []
    for i, table_node in enumerate(settings.tables):
        path = f"paper_table.tables[{i}]"
        spec = settings_from(TableSpec, table_node, path)
        rows_of = published[published["table"] == spec.table]
        if not len(rows_of):
            raise ConfigError(f"{path}.table={spec.table!r} is not in {settings.published}; its tables: {', '.join(pd.unique(published['table']))}")
        names.append(spec.table)
        shared = _conditions(spec.when, f"{path}.when")
        specs = {}
        for axis, labels_of in (("rows", "row"), ("columns", "column")):
            known = list(pd.unique(rows_of[labels_of]))
            specs[axis] = {}
            for label, sub in _mapping(getattr(spec, axis), f"{path}.{axis}").items():
                if label not in known:
                    raise ConfigError(f"{path}.{axis}: {label!r} is not a {labels_of} of {spec.table!r}; its {axis}: {', '.join(known)}")
                specs[axis][label] = settings_from(CellSpec, sub, f"{path}.{axis}[{label!r}]")
        present = set(zip(rows_of["row"], rows_of["column"]))
        for row_label, row in specs["rows"].items():
            for column_label, column in specs["columns"].items():
                if (row_label, column_label) not in present:  # a hole of the paper's table
                    continue
                where = f"{path} cell {row_label!r} / {column_label!r}"
                merged = _merge_specs(row, column, where)
                when = _merge_conditions([shared, _conditions(row.when, where), _conditions(column.when, where)])
                unknown = [key for key, _ in when if key not in run]
                if unknown:
                    raise ConfigError(f"{where}: when: names {', '.join(unknown)}, not a key of paper_table.run ({', '.join(run) or 'empty'})")
                cells.append(Cell(spec.table, row_label, column_label, merged["method"], merged["statistic"], merged["paired"], merged["versus"], when))
    if not names:
        raise ConfigError("paper_table.tables is empty; list the published tables the preset fills")
    shown = published[published["table"].isin(names)].reset_index(drop=True)
    return PaperTable(shown, run, tuple(cells), settings.published)


def check_paper_table(node: Any, statistics: Sequence[str]) -> PaperTable:
    """parse_paper_table, plus: every cell this run fills reads a statistic of the run's metrics
    (`statistics`) and is filled once (errors before any compute, not after the run)."""
    table = parse_paper_table(node)
    for cell in table.filled().values():
        if cell.statistic not in statistics:
            raise ConfigError(
                f"paper_table: {cell.table} / {cell.row} / {cell.column} reads statistic {cell.statistic!r}, which this run's "
                f"metrics do not compute; theirs: {', '.join(statistics)}"
            )
    return table


# ---------------------------------------------------------------- our numbers in the paper's cells


@dataclass
class PaperResult:
    """table.csv's rows and what table.md says below the tables."""

    cells: pd.DataFrame  # PAPER_COLUMNS
    notes: list[str] = field(default_factory=list)


def _value(row: pd.Series, column: str) -> float:
    v = row.get(column)
    return float(v) if v is not None and pd.notna(v) else math.nan


CompareCell = Callable[[str, str, str], Mapping[str, Any]]


def _ours(cell: Cell, by_method: Mapping[str, pd.Series], compare_cell: CompareCell) -> tuple[dict[str, float], str | None]:
    """The ours / ours_lo / ours_hi / n_images of a cell this run fills, or the method it lacks."""
    for needed in (cell.method, cell.versus):
        if needed is not None and needed not in by_method:
            return {}, needed
    row = by_method[cell.method]
    if cell.paired is None:
        return {"ours": _value(row, cell.statistic), "ours_lo": _value(row, cell.statistic + "_lo"),
                "ours_hi": _value(row, cell.statistic + "_hi"), "n_images": _value(row, "n_images")}, None
    paired = compare_cell(cell.method, str(cell.versus), cell.statistic)
    return {"ours": float(paired.get(cell.paired, math.nan)), "n_images": float(paired.get("n_images", math.nan))}, None


def fill_paper_table(table: PaperTable, summary: pd.DataFrame, compare_cell: CompareCell) -> PaperResult:
    """Our value, 95% interval and image count for every cell this run fills, from the run's
    summary (one row per method) and, for paired cells, `compare_cell(method, versus, statistic)`
    -> the paired comparison's columns (wsl_bench.report.compare; a paired share has no interval)."""
    filled = table.filled()
    by_method = {str(r["method"]): r for _, r in summary.iterrows()}
    rows, absent, empty = [], set(), set()
    for _, pub in table.published.iterrows():
        out = {**{c: pub[c] for c in PUBLISHED_COLUMNS}, **dict.fromkeys(("ours", "ours_lo", "ours_hi", "diff", "n_images"), math.nan)}
        cell = filled.get((pub["table"], pub["row"], pub["column"]))
        if cell is not None:
            values, lacking = _ours(cell, by_method, compare_cell)
            out.update(values)
            if lacking:
                absent.add(lacking)
            elif not np.isfinite(out["ours"]):
                empty.add(f"{cell.method} {cell.paired or cell.statistic}")
        if pub["published"] and np.isfinite(out["ours"]):
            out["diff"] = out["ours"] - float(pub["published"])
        rows.append(out)
    cells = pd.DataFrame(rows, columns=PAPER_COLUMNS).astype({"n_images": "Int64"})
    described = ", ".join(f"{k}={v}" for k, v in table.run.items())
    notes = [f"This run ({described}) fills {int(cells['ours'].notna().sum())} of {len(cells)} cells."]
    others = sorted({", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in c.when) for c in table.cells if not table.fills(c)})
    if others:
        notes.append("Other cells are filled by runs with " + "; ".join(f"({o})" for o in others)
                     + ": a multirun of the preset, or paper_table.run.<key>=... for a model known by another name.")
    if absent:
        notes.append(f"Methods these cells need but this run lacks: {', '.join(sorted(absent))} (add them with method=[...]).")
    if empty:
        notes.append(f"Computed nothing (metric disabled or nothing scored): {', '.join(sorted(empty))}.")
    return PaperResult(cells, notes)


# ---------------------------------------------------------------- table.md


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def format_cell(row: Mapping[str, Any]) -> str:
    """`ours [lo, hi] / published<mark> (ours - published)`, digits as the published figure's (at least 2)."""
    published = "" if pd.isna(row["published"]) else str(row["published"])
    ours = float(row["ours"]) if pd.notna(row["ours"]) else math.nan
    digits = max(2, _decimals(published)) if published else (3 if np.isfinite(ours) and abs(ours) <= 1 else 2)
    mark = STATUS_MARK.get(str(row["status"]), "?")
    if not np.isfinite(ours):
        text = "–"
    else:
        lo, hi = float(row["ours_lo"]) if pd.notna(row["ours_lo"]) else math.nan, float(row["ours_hi"]) if pd.notna(row["ours_hi"]) else math.nan
        text = f"{ours:.{digits}f}" + (f" [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(lo) and np.isfinite(hi) else "")
    text += f" / {published}{mark}" if published else " / –"
    if pd.notna(row["diff"]):
        text += f" ({float(row['diff']):+.{digits}f})"
    return text


def format_tables(cells: pd.DataFrame, notes: Sequence[str] = ()) -> str:
    """Markdown: each (paper, table) in its rows and columns (the CSV's order), then the sources,
    the image counts and the notes."""
    blocks = []
    for (paper, name), group in cells.groupby(["paper", "table"], sort=False):
        rows, columns = list(dict.fromkeys(group["row"])), list(dict.fromkeys(group["column"]))
        at = {(r["row"], r["column"]): r for _, r in group.iterrows()}
        lines = [f"## {paper}: {name}", "", "| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for row in rows:
            lines.append(f"| {row} | " + " | ".join(format_cell(at[(row, c)]) if (row, c) in at else "" for c in columns) + " |")
        counts = sorted({int(n) for n in group["n_images"].dropna()})
        lines += ["", "Source: " + "; ".join(dict.fromkeys(group["source"])) + "."]
        if counts:
            lines.append("Images scored: " + ", ".join(f"{n:,}" for n in counts) + ".")
        blocks.append("\n".join(lines))
    legend = ("Each cell: ours [95% bootstrap interval over images] / published (ours - published); – = none. "
              "† published figure from a secondary source, ? not verified against the paper.")
    return "\n\n".join(blocks) + "\n\n" + legend + ("\n\n" + "\n".join(f"- {n}" for n in notes) if notes else "") + "\n"


def write_paper_table(out_dir: Path, result: PaperResult) -> None:
    out_dir = Path(out_dir)
    result.cells.to_csv(out_dir / "table.csv", index=False)
    (out_dir / "table.md").write_text(format_tables(result.cells, result.notes))


# ---------------------------------------------------------------- the run's hook (report stage)


def run_paper_table(config: Mapping[str, Any], summary: pd.DataFrame, records: pd.DataFrame, metrics: Any) -> PaperResult | None:
    """The paper table of a finished run whose (resolved) configuration has a `paper_table` node."""
    node = config.get("paper_table")
    if not node:
        return None
    from .summary import compare

    table = check_paper_table(node, [s.name for s, _ in metrics.statistics()])
    settings = settings_from(ReportSettings, config.get("report"))

    def compare_cell(method: str, versus: str, statistic: str) -> dict[str, Any]:
        return compare(records, method, versus, statistic, metrics, settings)

    return fill_paper_table(table, summary, compare_cell)


# ---------------------------------------------------------------- several runs: one table


def run_tables(paths: Sequence[Path]) -> list[Path]:
    """The table.csv of every run under `paths` (run directories, or multirun folders holding
    them): a run's table.csv sits beside its summary.csv."""
    found = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise UserError(f"{path}: not a directory; give run directories or a multirun folder")
        candidates = [path / "table.csv"] if (path / "summary.csv").is_file() else sorted(path.rglob("table.csv"))
        found += [p for p in candidates if p.is_file() and (p.parent / "summary.csv").is_file()]
    if not found:
        raise UserError(f"no run with a table.csv under {', '.join(map(str, paths))}; run a paper preset (+experiment=<name>) first")
    return found


def read_paper_cells(path: Path) -> pd.DataFrame:
    """A table.csv: labels and published figures as written, our numbers as floats."""
    numeric = ("ours", "ours_lo", "ours_hi", "diff", "n_images")
    text = {c: str for c in PAPER_COLUMNS if c not in numeric}
    return pd.read_csv(path, dtype=text, keep_default_na=False, na_values={c: [""] for c in numeric})


def assemble(paths: Sequence[Path]) -> PaperResult:
    """One table from the runs under `paths`: every published cell once, ours from the run that
    filled it (two runs filling the same cell is an error naming both)."""
    tables = run_tables(paths)
    merged: dict[tuple, dict[str, Any]] = {}
    filled_by: dict[tuple, Path] = {}
    for path in tables:
        cells = read_paper_cells(path)
        missing = [c for c in PAPER_COLUMNS if c not in cells.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}; not a paper table")
        for _, row in cells.iterrows():
            key = tuple(row[c] for c in CELL_KEY)
            if key not in merged:
                merged[key] = row.to_dict()
            elif merged[key]["published"] != row["published"]:
                raise UserError(f"{path}: {' / '.join(key)} is published as {row['published']} here but {merged[key]['published']} in another run")
            if pd.notna(row["ours"]):
                if key in filled_by:
                    raise UserError(f"{' / '.join(key)} is filled by both {filled_by[key].parent} and {path.parent}; assemble them separately")
                filled_by[key] = path
                merged[key] = row.to_dict()
    cells = pd.DataFrame(list(merged.values()), columns=PAPER_COLUMNS).astype({"n_images": "Int64"})
    runs = sorted({str(p.parent) for p in tables})
    notes = [f"Assembled from {len(runs)} run(s), {int(cells['ours'].notna().sum())} of {len(cells)} cells filled: " + ", ".join(runs) + "."]
    return PaperResult(cells, notes)


def assemble_and_write(paths: Sequence[Path], out_dir: Path | None = None) -> Path:
    """assemble(paths), written as table.csv / table.md to out_dir (default: the one multirun
    folder given)."""
    paths = [Path(p) for p in paths]
    if out_dir is None:
        if len(paths) != 1 or (paths[0] / "summary.csv").is_file():
            raise UserError("give --out DIR when assembling several paths or a single run directory")
        out_dir = paths[0]
    result = assemble(paths)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_paper_table(Path(out_dir), result)
    return Path(out_dir)


class AssemblePaperTable(Callback):
    """Hydra callback a preset adds (hydra.callbacks.paper_table): at the end of a multirun of a
    paper preset, its table.csv / table.md in the multirun folder."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        try:
            out = assemble_and_write([sweep])
        except UserError as exc:
            log.warning("paper table not assembled: %s", exc)
            return
        print(f"paper table of the multirun: {out / 'table.md'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wsl_bench.report.paper_tables",
        description="Put the paper tables of several runs of a preset (a multirun folder, or run directories) into one table.csv / table.md.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="a multirun folder, or run directories")
    parser.add_argument("--out", type=Path, default=None, help="where to write table.csv / table.md (default: the multirun folder)")
    args = parser.parse_args(argv)
    try:
        out = assemble_and_write(args.paths, args.out)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((out / "table.md").read_text())
    print(f"written: {out / 'table.csv'}, {out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
