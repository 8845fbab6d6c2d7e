"""report.html: one self-contained page per run, or per sweep (several runs). Every image is
inline (data URIs) and the little script is inline too, so the page opens from disk with no
network; the figures are also written beside it as PNG files (figures/), and the tables as
Markdown (report_tables.md) and LaTeX (report_tables.tex)."""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..records.store import replace_atomically
from .figures import Figure, boxacc_figure, insertion_deletion_figure, iou_histogram, method_colors, pointing_accuracy_by_class
from .gallery import GalleryItem, Panel, gallery_items, gallery_keys, reason_label, records_table_rows
from .runs import Run, find_runs
from .tables import (
    Difference, Table, comparison_sentences, comparisons_table, paper_tables, provenance_differences, summary_table,
    sweep_tables, to_html, write_tables,
)

log = logging.getLogger("wsl_bench")
REPORT_FILE = "report.html"
e = html.escape

CSS = """
:root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f1f5f9;--card:#fff;--ok:#166534;--okbg:#dcfce7;--bad:#991b1b;--badbg:#fee2e2;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:var(--bg)}
header.top{background:#0f172a;color:#f8fafc;padding:18px 28px 0}
header.top h1{margin:0;font-size:21px;font-weight:650;letter-spacing:.2px}
header.top .meta{color:#cbd5e1;margin:4px 0 12px;font-size:13px}
header.top .meta code{color:#e2e8f0}
nav{display:flex;gap:2px;flex-wrap:wrap}
nav a{color:#cbd5e1;text-decoration:none;padding:8px 12px;border-radius:6px 6px 0 0;font-size:13px}
nav a:hover{background:#1e293b;color:#fff}
main{max-width:1480px;margin:0 auto;padding:18px 28px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin:0 0 18px;box-shadow:0 1px 2px rgba(15,23,42,.04)}
section h2{font-size:16px;margin:0 0 10px;font-weight:650}
section h3{font-size:14px;margin:14px 0 6px}
p.note,.note{color:var(--muted);font-size:12px;margin:6px 0 0}
.table-wrap{overflow-x:auto}
table.t{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px;min-width:40%}
table.t caption{text-align:left;font-weight:600;padding:0 0 6px;color:#334155}
table.t th,table.t td{padding:5px 12px;border-bottom:1px solid var(--line);white-space:nowrap}
table.t thead th{text-align:right;font-weight:600;color:#334155;border-bottom:2px solid #cbd5e1;background:#f8fafc}
table.t thead th:first-child,table.t tbody th{text-align:left}
table.t tbody th{font-weight:500;color:#1e293b}
table.t td{text-align:right}
table.t tbody tr:hover{background:#f8fafc}
table.t .ci{color:var(--muted);font-size:12px}
table.t .pub{color:#475569;font-size:12px}
table.t td.best{background:#ecfdf5}
table.t td.best .v{font-weight:700;color:#065f46}
table.small{font-size:12px}
table.small th,table.small td{padding:3px 8px}
table.left th,table.left td,table.left thead th{text-align:left}
ul.sentences{list-style:none;padding:0;margin:0}
ul.sentences li{padding:6px 10px 6px 12px;border-left:4px solid #cbd5e1;margin:0 0 6px;background:#f8fafc;border-radius:0 6px 6px 0}
ul.sentences li.better{border-left-color:#16a34a}
ul.sentences li.worse{border-left-color:#dc2626}
ul.sentences li .metric{font-weight:600;margin-right:6px}
details{margin:8px 0}
details>summary{cursor:pointer;font-weight:600;color:#334155}
pre{background:#0f172a;color:#e2e8f0;padding:12px 14px;border-radius:8px;overflow:auto;font-size:12px;max-height:420px}
.kv{display:grid;grid-template-columns:minmax(140px,max-content) 1fr;gap:3px 16px;font-size:13px;margin:6px 0}
.kv code{word-break:break-word}
.kv div:nth-child(odd){color:var(--muted)}
.kv code{font-size:12px}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px;align-items:start}
.figs figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:10px;background:#fff}
.figs figure.wide{grid-column:1/-1}
.figs img{max-width:100%;height:auto;display:block;margin:0 auto}
.figs figcaption{font-size:12px;color:var(--muted);margin-top:6px}
.figs figcaption b{color:var(--ink)}
.warn{border:1px solid #f59e0b;background:#fffbeb;border-radius:10px;padding:12px 16px;margin:0 0 18px}
.warn h2{color:#92400e;font-size:15px;margin:0 0 6px}
.warn ul{margin:4px 0 0 18px;padding:0}
.ok-box{border:1px solid #86efac;background:#f0fdf4;border-radius:10px;padding:10px 16px;margin:0 0 18px;color:#166534}
.filters{display:flex;gap:6px;flex-wrap:wrap;margin:0 0 12px}
.filters button{border:1px solid var(--line);background:#fff;border-radius:999px;padding:4px 12px;font-size:12px;cursor:pointer;color:#334155}
.filters button.on{background:var(--ink);color:#fff;border-color:var(--ink)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(var(--card-w),1fr));gap:14px}
.card{border:1px solid var(--line);border-radius:10px;padding:10px;background:#fff;cursor:zoom-in;transition:box-shadow .15s}
.card:hover,.card:focus{box-shadow:0 4px 14px rgba(15,23,42,.12);outline:none}
.card>header{display:flex;justify-content:space-between;gap:8px;align-items:baseline;margin-bottom:6px}
.card .id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.chip{font-size:11px;border-radius:999px;padding:1px 8px;background:#e0e7ff;color:#3730a3;white-space:nowrap}
.chip.disagree{background:#fef3c7;color:#92400e}
.chip.worst{background:#fee2e2;color:#991b1b}
.panels{display:flex;gap:6px}
.panels figure{margin:0;flex:1 1 0;min-width:0}
.panels img{width:100%;height:auto;display:block;border-radius:4px;background:#e2e8f0}
.panels figcaption{font-size:11px;margin-top:3px;display:flex;flex-wrap:wrap;gap:3px;align-items:center}
.panels figcaption .m{font-weight:650;margin-right:2px}
.badge{font-size:10.5px;border-radius:4px;padding:0 5px;line-height:17px;white-space:nowrap}
.badge.ok{background:var(--okbg);color:var(--ok)}
.badge.bad{background:var(--badbg);color:var(--bad)}
.badge.info{background:#f1f5f9;color:#475569}
dialog{border:none;border-radius:12px;padding:0;max-width:min(96vw,1600px);width:auto;box-shadow:0 20px 60px rgba(0,0,0,.35)}
dialog::backdrop{background:rgba(15,23,42,.6)}
dialog .bar{display:flex;justify-content:space-between;align-items:center;padding:10px 16px;border-bottom:1px solid var(--line);position:sticky;top:0;background:#fff}
dialog .bar button{border:none;background:#f1f5f9;border-radius:6px;padding:4px 10px;cursor:pointer;font-size:13px}
dialog .viewer-body{padding:12px 16px 16px;max-height:86vh;overflow:auto}
dialog .panels figure{flex:0 1 384px}
dialog h4{margin:12px 0 6px;font-size:13px}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin:-4px 0 10px}
.legend i{display:inline-block;width:14px;height:10px;border:2px solid;margin-right:4px;vertical-align:-1px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:0}
select{font:inherit;padding:3px 6px;border-radius:6px;border:1px solid #cbd5e1}
.duo{display:grid;grid-template-columns:minmax(0,var(--summary-w)) minmax(420px,1fr);gap:18px;align-items:start}
.duo>section{margin:0 0 18px}
@media (max-width:1100px){.duo{grid-template-columns:1fr}}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 30px}
a{color:var(--accent)}
"""

# Captures script errors (and failed resource loads) from the first moment: the browser check
# reads them from #selfcheck after load.
HEAD_SCRIPT = "window.__reportErrors=[];window.addEventListener('error',function(e){window.__reportErrors.push(String(e.message||(e.target&&e.target.src)||e.type))},true);"

SCRIPT = """
(function(){
  var dlg=document.getElementById('viewer');
  function open(card){
    var body=dlg.querySelector('.viewer-body');
    var content=card.querySelector('template').content.cloneNode(true);
    content.querySelectorAll('img[data-copy]').forEach(function(img){img.src=document.getElementById(img.dataset.copy).src;});
    body.replaceChildren(content);
    dlg.querySelector('.title').textContent=card.dataset.title;
    dlg.showModal();
  }
  document.querySelectorAll('.card').forEach(function(card){
    card.addEventListener('click',function(){open(card);});
    card.addEventListener('keydown',function(ev){if(ev.key==='Enter'||ev.key===' '){ev.preventDefault();open(card);}});
  });
  if(dlg){
    dlg.addEventListener('click',function(ev){if(ev.target===dlg)dlg.close();});
    dlg.querySelector('.close').addEventListener('click',function(){dlg.close();});
  }
  document.querySelectorAll('.filters button').forEach(function(b){
    b.addEventListener('click',function(){
      document.querySelectorAll('.filters button').forEach(function(x){x.classList.toggle('on',x===b);});
      var f=b.dataset.filter;
      document.querySelectorAll('.card').forEach(function(c){c.hidden=!(f==='all'||c.dataset.reason===f);});
    });
  });
  var pick=document.getElementById('sweep-metric');
  if(pick){
    var show=function(){document.querySelectorAll('.sweep-table').forEach(function(t){t.hidden=t.dataset.metric!==pick.value;});};
    pick.addEventListener('change',show);show();
  }
  var m=/^#view-(\\d+)$/.exec(location.hash);
  if(m){var c=document.querySelectorAll('.card')[+m[1]-1];if(c)open(c);}
  window.addEventListener('load',function(){
    var imgs=Array.prototype.slice.call(document.images);
    var broken=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0);});
    var out=document.getElementById('selfcheck');
    out.dataset.images=imgs.length;out.dataset.broken=broken.length;out.dataset.errors=window.__reportErrors.length;
    out.textContent='images '+imgs.length+' broken '+broken.length+' errors '+window.__reportErrors.length+' '+window.__reportErrors.join(' | ');
  });
})();
"""


def _page(title: str, subtitle: str, nav: Sequence[tuple[str, str]], body: str, dialog: bool, files: str = "") -> str:
    links = "".join(f'<a href="#{e(anchor)}">{e(text)}</a>' for anchor, text in nav)
    viewer = ('<dialog id="viewer" aria-label="image details"><div class="bar"><b class="title"></b>'
              '<button class="close" type="button">Close ✕</button></div><div class="viewer-body"></div></dialog>') if dialog else ""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style><script>{HEAD_SCRIPT}</script></head><body>"
        f'<header class="top"><h1>{e(title)}</h1><div class="meta">{subtitle}</div><nav>{links}</nav></header>'
        f"<main>{body}</main>{viewer}"
        f'<footer>Written by <code>python -m wsl_bench.report</code> on {stamp} · tables also in report_tables.md / report_tables.tex{files}'
        f'<output id="selfcheck" hidden></output></footer><script>{SCRIPT}</script></body></html>'
    )


def _img_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{e(anchor)}"><h2>{e(title)}</h2>{content}</section>'


def _kv(pairs: Sequence[tuple[str, object]]) -> str:
    return '<div class="kv">' + "".join(f"<div>{e(str(k))}</div><div><code>{e(str(v))}</code></div>" for k, v in pairs) + "</div>"


def _flat_pairs(node: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(node, dict):
        out: list[tuple[str, object]] = []
        for k, v in node.items():
            out += _flat_pairs(v, f"{prefix}{k}.")
        return out
    return [(prefix[:-1], json.dumps(node) if isinstance(node, (list, bool)) or node is None else node)]


def _run_facts(run: Run) -> list[tuple[str, object]]:
    prov = run.provenance
    cfg = run.config
    return [
        ("dataset", json.dumps(cfg.get("dataset", {}))), ("dataset images", prov.get("dataset_images", "–")),
        ("model", (cfg.get("model") or {}).get("name", "–")), ("weights", prov.get("model_weights", "–")),
        ("target layer", prov.get("target_layer", "–")), ("transform", json.dumps(cfg.get("transform", {}))),
        ("targets", json.dumps(cfg.get("targets", {}))),
        ("methods", ", ".join(f"{k} {json.dumps(p)}" if (p := (v or {}).get("params")) else k for k, v in (cfg.get("method") or {}).items())),
    ]


def _glance_html(run: Run) -> str:
    """The right-hand panel of a one-method run: what ran, briefly."""
    prov = run.provenance
    loc = (prov.get("metric_settings") or {}).get("localization") or {}
    facts = _run_facts(run) + [
        ("localization", ", ".join(f"{k} {v}" for k, v in loc.items() if k != "enabled") or "–"),
        ("git commit", prov.get("git_commit", "–")), ("wall time", f"{prov.get('wall_time_s', '–')} s"),
    ]
    return _kv(facts) + '<p class="note">Every setting: <a href="#protocol">Protocol</a>. Run several methods at once to compare them here.</p>'


def _protocol_html(run: Run) -> str:
    prov = run.provenance
    facts = _run_facts(run)
    code = [("wsl_bench", prov.get("wsl_bench", "–")), ("git commit", prov.get("git_commit", "–")), ("python", prov.get("python", "–"))]
    code += [(k, v) for k, v in (prov.get("packages") or {}).items()]
    code += [("device", f"{prov.get('device', '–')} ({prov.get('device_name', '')})"), ("wall time", f"{prov.get('wall_time_s', '–')} s")]
    parts = [
        "<details><summary>Protocol settings (what was scored, from provenance.json)</summary>",
        "<h3>Run</h3>", _kv(facts),
        "<h3>Metric settings</h3>", _kv(_flat_pairs(prov.get("metric_settings", {}))) if prov.get("metric_settings") else "<p class=note>not recorded</p>",
        "<h3>Code and environment</h3>", _kv(code), "</details>",
    ]
    if run.config_text:
        parts.append(f"<details><summary>Full configuration (.hydra/config.yaml)</summary><pre>{e(run.config_text)}</pre></details>")
    return "".join(parts)


def _figures_html(figures: Sequence[Figure]) -> str:
    if not figures:
        return '<p class="note">No plot: the run has no records with these metrics.</p>'
    items = []
    for f in figures:
        wide = ' class="wide"' if f.name == "maxboxacc_curves" else ""
        items.append(f'<figure{wide}><img src="{_img_uri(f.png)}" alt="{e(f.title)}"><figcaption><b>{e(f.title)}.</b> '
                     f'{e(f.caption)} <a href="figures/{e(f.name)}.png">PNG</a></figcaption></figure>')
    return '<div class="figs">' + "".join(items) + "</div>"


def _sentences_html(run: Run) -> str:
    sentences = comparison_sentences(run.comparisons)
    if not sentences:
        return ""
    same = [s for s in sentences if s.verdict == "same"]
    lines = []
    from .metric_info import info

    for s in sentences:
        if s.verdict != "same":
            lines.append(f'<li class="{s.verdict}"><span class="metric">{e(info(s.metric).label)}</span>{e(s.text)}</li>')
    out = '<ul class="sentences">' + "".join(lines) + "</ul>"
    if same:
        labels = ", ".join(dict.fromkeys(info(s.metric).label for s in same))
        out += f'<p class="note">Identical on every resample: {e(labels)}.</p>'
    out += ('<p class="note">Paired bootstrap over the images both methods scored (report.bootstrap resamples); the interval is '
            'the 95% interval of the difference, in the metric\'s better direction; P(better) is the share of resamples in '
            'which the method is better.</p>')
    out += f"<details><summary>All numbers</summary>{to_html(comparisons_table(run.comparisons))}</details>"
    return out


def _badges_html(panel: Panel) -> str:
    return "".join(f'<span class="badge {e(b.kind)}">{e(b.text)}</span>' for b in panel.badges)


def _panel_html(panel: Panel, colors: dict[str, str], img_id: str | None = None, copy_of: str | None = None) -> str:
    title = (f'<span class="m" style="color:{colors.get(panel.method, "#111")}">{e(panel.title)}</span>' if panel.method
             else f'<span class="m">{e(panel.title)}</span>')
    if copy_of:
        img = f'<img data-copy="{copy_of}" alt="{e(panel.title)}">'
    else:
        img = f'<img id="{img_id}" src="{panel.src}" alt="{e(panel.title)}">' if img_id else f'<img src="{panel.src}" alt="{e(panel.title)}">'
    return f"<figure>{img}<figcaption>{title}{_badges_html(panel)}</figcaption></figure>"


def _card_html(n: int, item: GalleryItem, colors: dict[str, str]) -> str:
    first = item.targets[0] if item.targets else None
    ids = [f"g{n}-{j}" for j in range(1 + (len(first.panels) if first else 0))]
    panels = _panel_html(item.photo, colors, ids[0]) + "".join(_panel_html(p, colors, ids[j + 1]) for j, p in enumerate(first.panels if first else []))
    chip_kind = "disagree" if item.reason == "disagree" else "worst" if item.reason.startswith("worst:") else ""
    # the enlarged view: the card's pictures (copied at open time, not stored twice), the other targets, every record
    big = [f'<h4>{e(first.label) if first else ""}</h4><div class="panels">'
           + _panel_html(item.photo, colors, copy_of=ids[0])
           + "".join(_panel_html(p, colors, copy_of=ids[j + 1]) for j, p in enumerate(first.panels if first else [])) + "</div>"]
    for target in item.targets[1:]:
        big.append(f'<h4>{e(target.label)}</h4><div class="panels">' + _panel_html(item.photo, colors, copy_of=ids[0])
                   + "".join(_panel_html(p, colors) for p in target.panels) + "</div>")
    header, body = records_table_rows(item.rows)
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" if j else f"<th>{e(c)}</th>" for j, c in enumerate(r)) + "</tr>" for r in body)
    big.append(f'<h4>Records (one per target and method)</h4><div class="table-wrap"><table class="t small"><thead><tr>{head}</tr></thead>'
               f"<tbody>{rows}</tbody></table></div>")
    height, width = item.size
    big.insert(0, f'<p class="note">chosen as: {e(reason_label(item.reason))} · evaluated at {width}×{height} px · '
                  f'GT: {e(", ".join(item.classes) or "–")}</p>')
    title = f"{item.image_id}"
    return (f'<article class="card" tabindex="0" data-reason="{e(item.reason)}" data-title="{e(title)}" aria-label="{e(title)}">'
            f'<header><span class="id" title="{e(item.image_id)}">{e(item.image_id)}</span>'
            f'<span class="chip {chip_kind}">{e(reason_label(item.reason))}</span></header>'
            f'<div class="panels">{panels}</div><template>{"".join(big)}</template></article>')


def _gallery_html(run: Run, limit: int | None, colors: dict[str, str]) -> str:
    kept = run.kept_maps
    if kept is None:
        return ('<p class="note">This run kept no maps (no maps.npz), so there is no gallery; runs keep the maps of '
                '<code>report.gallery</code> images (default 48) unless <code>report.html=false</code>.</p>')
    keys = gallery_keys(kept, limit)
    rows = run.records_of([kept.images[k]["image_id"] for k in keys])
    if rows is None:
        return '<p class="note">records.parquet is missing; the gallery needs it.</p>'
    items = gallery_items(kept, keys, rows, run.methods)
    if not items:
        return '<p class="note">No image was kept for the gallery.</p>'
    counts: dict[str, int] = {}
    for item in items:
        counts[item.reason] = counts.get(item.reason, 0) + 1
    buttons = [f'<button type="button" class="on" data-filter="all">all ({len(items)})</button>']
    buttons += [f'<button type="button" data-filter="{e(r)}">{e(reason_label(r))} ({n})</button>' for r, n in counts.items()]
    legend = ('<div class="legend"><span><i style="border-color:#22c55e"></i>ground-truth box</span>'
              '<span><i style="border-color:#fff;background:#475569"></i>predicted box (largest segment at the localization threshold)</span>'
              '<span>● pointing point: <b style="color:#16a34a">hit</b> / <b style="color:#dc2626">miss</b></span>'
              '<span>heat: the map min-max scaled, jet colours</span><span>click a card to enlarge it</span></div>')
    n_panels = 1 + len(run.methods)
    cards = "".join(_card_html(n + 1, item, colors) for n, item in enumerate(items))
    why = ("Chosen to be informative: the images where the methods disagree most, the worst failures of each method, and a "
           f"seeded random sample ({len(items)} of the run's {int(run.summary['n_images'].max()):,} images).")
    return (f'<p class="note" style="margin-top:-4px">{e(why)}</p><div class="filters">{"".join(buttons)}</div>{legend}'
            f'<div class="cards" style="--card-w:{min(1400, 150 * n_panels + 40)}px">{cards}</div>')


def _run_figures(run: Run, colors: dict[str, str]) -> tuple[list[Figure], list[tuple[str, pd.DataFrame]]]:
    """The run's figures and the extra CSV files beside them."""
    figures: list[Figure] = []
    extra: list[tuple[str, pd.DataFrame]] = []
    if run.boxacc_curves is not None:
        f = boxacc_figure(run.boxacc_curves, colors)
        figures += [f] if f else []
    records = run.records
    if records is not None and len(records):
        iou_cut = float(((run.provenance.get("metric_settings") or {}).get("localization") or {}).get("iou", 0.5))
        f = iou_histogram(records, run.methods, colors, iou_cut)
        figures += [f] if f else []
        f, per_class = pointing_accuracy_by_class(records, run.methods, colors)
        if f:
            figures.append(f)
            extra.append(("pointing_per_class.csv", per_class))
    f = insertion_deletion_figure(run.insertion_deletion_curves, records, run.methods, colors)
    figures += [f] if f else []
    return figures, extra


def _subtitle(run: Run) -> str:
    prov = run.provenance
    commit = (prov.get("git_commit") or "")[:10]
    bits = [e(run.describe()), "methods: " + e(", ".join(run.methods))]
    if commit:
        bits.append(f"commit <code>{e(commit)}</code>")
    bits.append(f"<code>{e(str(run.path))}</code>")
    return " · ".join(bits)


def run_page(run: Run, gallery: int | None = None) -> tuple[str, list[Table], list[Figure], list[tuple[str, pd.DataFrame]]]:
    """The page of one run, its tables, figures and extra CSV files (written by the caller)."""
    colors = method_colors(run.methods)
    tables = [summary_table(run.summary, f"Summary: {run.describe()}")]
    top = [_section("summary", "Summary", to_html(tables[0], caption=False))]
    nav = [("summary", "Summary")]
    if run.comparisons is not None and len(run.comparisons):
        baseline = str(run.comparisons["baseline"].iloc[0])
        top.append(_section("comparisons", f"Paired comparisons with {baseline}", _sentences_html(run)))
        nav.append(("comparisons", "Comparisons"))
        tables.append(comparisons_table(run.comparisons))
    else:
        top.append(_section("glance", "This run", _glance_html(run)))
    # summary and comparisons side by side when the page is wide enough and the table narrow
    body = [f'<div class="duo" style="--summary-w:{260 + 190 * len(run.methods)}px">{"".join(top)}</div>'
            if len(run.methods) <= 3 else "".join(top)]
    if run.paper_table is not None:
        papers = paper_tables(run.paper_table)
        tables += papers
        body.append(_section("paper", "Paper tables: ours beside the published numbers", "".join(to_html(t) for t in papers)))
        nav.append(("paper", "Paper"))
    figures, extra = _run_figures(run, colors)
    body.append(_section("plots", "Plots", _figures_html(figures)))
    nav.append(("plots", "Plots"))
    body.append(_section("gallery", "Gallery", _gallery_html(run, gallery, colors)))
    nav.append(("gallery", "Gallery"))
    body.append(_section("protocol", "Protocol", _protocol_html(run)))
    nav.append(("protocol", "Protocol"))
    page = _page(f"wsl_bench report — {run.path.name}", _subtitle(run), nav, "".join(body), dialog=True,
                 files=" · figures in figures/" if figures else "")
    return page, tables, figures, extra


def _warning_html(differences: Sequence[Difference], runs: Sequence[Run]) -> str:
    warned = [d for d in differences if d.category in ("protocol", "data", "code")]
    if not warned:
        return ('<div class="ok-box">✓ Every run used the same protocol, data and code version (provenance.json: metric settings, '
                'transform, dataset, git commit, package versions).</div>')
    kinds = {"protocol": "protocols", "data": "data", "code": "code versions"}
    what = sorted({kinds[d.category] for d in warned}, key=list(kinds.values()).index)
    items = []
    for d in warned:
        groups: dict[str, list[str]] = {}
        for i, value in enumerate(d.values, 1):
            groups.setdefault(value, []).append(str(i))
        detail = "; ".join(f"<code>{e(v)}</code> in run{'s' if len(nums) > 1 else ''} {', '.join(nums)}" for v, nums in groups.items())
        items.append(f"<li><b>{e(d.category)}</b> · <code>{e(d.key)}</code>{' (a sweep axis)' if d.swept else ''}: {detail}</li>")
    return (f'<div class="warn" id="warning"><h2>⚠ These runs used different {" and ".join(what)}</h2>'
            "<p>Numbers from different rows are not directly comparable where these settings differ (runs numbered as in "
            '<a href="#runs">Runs</a>):</p>'
            f'<ul>{"".join(items)}</ul></div>')


def sweep_page(runs: list[Run], out_dir: Path, run_reports: dict[str, str]) -> tuple[str, list[Table]]:
    differences = provenance_differences(runs)
    tables = sweep_tables(runs)
    metric_options = "".join(f'<option value="{e(t.key)}">{e(t.caption.replace(" across the runs", ""))}</option>' for t in tables)
    blocks = "".join(f'<div class="sweep-table" data-metric="{e(t.key)}"{" hidden" if i else ""}>{to_html(t)}</div>'
                     for i, t in enumerate(tables))
    sweep = (f'<p><label>Metric: <select id="sweep-metric">{metric_options}</select></label></p>{blocks}'
             if tables else '<p class="note">No metric to show.</p>')
    body = [_warning_html(differences, runs), _section("sweep", f"Sweep: {len(runs)} runs", sweep)]
    rows = []
    for i, run in enumerate(runs, 1):
        link = run_reports.get(str(run.path))
        ref = f'<a href="{e(link)}">report</a>' if link else ""
        rows.append(f"<tr><th>{i}</th><td>{e(run.label)}</td><td>{e(run.describe())}</td><td>{e(', '.join(run.methods))}</td>"
                    f"<td><code>{e(os.path.relpath(run.path, out_dir))}</code></td><td>{ref}</td></tr>")
    runs_html = ('<div class="table-wrap"><table class="t small left"><thead><tr><th>#</th><th>run</th><th>data</th><th>methods</th><th>folder</th><th></th></tr></thead>'
                 f'<tbody>{"".join(rows)}</tbody></table></div>')
    for i, run in enumerate(runs, 1):
        runs_html += f"<details><summary>Run {i}: {e(run.label)}</summary>{to_html(summary_table(run.summary, run.describe()))}</details>"
    body.append(_section("runs", "Runs", runs_html))
    if differences:
        head = "".join(f'<th title="{e(r.label)}">run {i}</th>' for i, r in enumerate(runs, 1))
        diff_rows = "".join(f"<tr><th>{e(d.category)}</th><td><code>{e(d.key)}</code>{' (swept)' if d.swept else ''}</td>"
                            + "".join(f"<td>{e(v)}</td>" for v in d.values) + "</tr>" for d in differences)
        body.append(_section("differences", "What differs between the runs (provenance.json)",
                             f'<div class="table-wrap"><table class="t small left"><thead><tr><th>kind</th><th>setting</th>{head}</tr></thead>'
                             f"<tbody>{diff_rows}</tbody></table></div>"))
    nav = [("sweep", "Sweep"), ("runs", "Runs")] + ([("differences", "Differences")] if differences else [])
    subtitle = f"{len(runs)} runs · <code>{e(str(out_dir))}</code>"
    return _page(f"wsl_bench sweep report — {out_dir.name}", subtitle, nav, "".join(body), dialog=False), tables


def _write(out_dir: Path, page: str, tables: Sequence[Table], figures: Sequence[Figure],
           extra: Sequence[tuple[str, pd.DataFrame]] = ()) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in extra:
        frame.to_csv(out_dir / name, index=False)
    if figures:
        (out_dir / "figures").mkdir(exist_ok=True)
        for f in figures:
            (out_dir / "figures" / f"{f.name}.png").write_bytes(f.png)
    write_tables(tables, out_dir / "report_tables.md", out_dir / "report_tables.tex")
    target = out_dir / REPORT_FILE
    replace_atomically(target, lambda tmp: tmp.write_text(page, encoding="utf-8"), REPORT_FILE, len(page))
    return target


def build_report(paths: Sequence[Path], out_dir: Path | None = None, gallery: int | None = None, run_reports: bool = True) -> Path:
    """report.html for one run (in the run's folder by default) or for several runs / a multirun
    (in the multirun folder, or the runs' common parent; each run also gets its own report
    unless run_reports=False or it has one). gallery: at most this many images (default: all
    the run kept). Returns the report's path."""
    runs = find_runs([Path(p) for p in paths])
    if len(runs) == 1:
        run = runs[0]
        out = Path(out_dir) if out_dir else run.path
        return _write(out, *run_page(run, gallery))
    out = Path(out_dir) if out_dir else (Path(paths[0]) if len(paths) == 1 else Path(os.path.commonpath([str(r.path.resolve()) for r in runs])))
    links = {}
    for run in runs:
        own = run.path / REPORT_FILE
        if run_reports and not own.is_file():
            _write(run.path, *run_page(run, gallery))
        if own.is_file():
            links[str(run.path)] = os.path.relpath(own, out)
    page, tables = sweep_page(runs, out, links)
    return _write(out, page, tables, [])


def write_report_quietly(paths: Sequence[Path], run_reports: bool = True) -> Path | None:
    """build_report for the end of a run or sweep: a failure is logged, never raised, since the
    results are already on disk."""
    try:
        return build_report(paths, run_reports=run_reports)
    except Exception as exc:  # noqa: BLE001 - the report must not lose a finished run
        where = " ".join(str(p) for p in paths)
        log.warning("report.html not written: %s: %s (rebuild it with python -m wsl_bench.report %s)", type(exc).__name__, exc, where)
        return None


def write_run_report(out_dir: Path) -> Path | None:
    """The pipeline's call at the end of a run: the run's report (see write_report_quietly)."""
    return write_report_quietly([out_dir])
