"""The HTML report, read without a browser: the summary table holds the run's numbers with the
best of each row marked by the metric's direction; comparisons in words; figures and gallery
images present, referenced and decodable; the gallery's maps placed where the run scored them;
Markdown / LaTeX tables; the paper table pivoted; a sweep's table across runs and its warning
when runs used different protocols or code."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from wsl_bench.records.maps import read_maps
from wsl_bench.report.__main__ import main as report_main
from wsl_bench.report.gallery import placed_map
from wsl_bench.report.html import build_report
from wsl_bench.report.tables import comparison_sentences, paper_tables, to_latex, to_markdown

REPO = Path(__file__).resolve().parent.parent
LOWER_IS_BETTER = lambda m: m.endswith("_err") or m in ("avg_drop", "deletion_auc")  # noqa: E731 - the issue's rule


class Page(HTMLParser):
    """Tables by id (cells: tag, class, title, text), <img> sources, cards and templates."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str, str, str]]]] = {}
        self.images: list[str] = []
        self.cards: list[dict] = []
        self._table = None
        self._cell = None
        self._in_template = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id"):
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None and self._table:
            self._cell = [tag, a.get("class") or "", a.get("title") or "", ""]
        elif tag == "img" and not self._in_template:
            self.images.append(a.get("src", ""))
            if self.cards:
                self.cards[-1]["images"].append(a.get("src", ""))
        elif tag == "article" and "card" in (a.get("class") or ""):
            self.cards.append({"title": a.get("data-title"), "reason": a.get("data-reason"), "images": [], "template": []})
        elif tag == "template":
            self._in_template += 1
        if self._in_template and self.cards and tag in ("tr", "img"):
            self.cards[-1]["template"].append((tag, a))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(tuple(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "template":
            self._in_template -= 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[3] += data


def cell_text(value: float, lo: float, hi: float, digits: int = 2) -> str:
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


@pytest.fixture(scope="module")
def demo(demo_report_run):
    out = demo_report_run.out_dir
    text = (out / "report.html").read_text()
    return out, text, Page(text), pd.read_csv(out / "summary.csv")


def test_summary_table_holds_the_runs_numbers_and_marks_the_best(demo):
    out, _, page, summary = demo
    rows = page.tables["t-summary"]
    assert [c[3] for c in rows[0]] == ["Metric", "gradcam", "gradcampp"]
    by_metric = {r[0][2]: r for r in rows[1:] if r[0][2]}
    shown = [m for m in summary.columns if not m.endswith(("_lo", "_hi")) and m not in ("method", "n_images", "n_skipped",
             "n_repaired", "n_degenerate_maps") and summary[m].notna().any()]
    assert list(by_metric) == shown and "avg_drop" in shown and "maxboxacc_v2" in shown
    marked = 0
    for metric in shown:
        digits = 3 if metric in ("occlusion_corr", "insertion_auc", "deletion_auc") else 2
        cells = by_metric[metric][1:]
        for cell, (_, s) in zip(cells, summary.iterrows()):
            assert cell[3] == cell_text(s[metric], s[metric + "_lo"], s[metric + "_hi"], digits)
        values = summary[metric].round(digits).to_numpy()
        if values[0] != values[1]:
            best = int(np.argmin(values) if LOWER_IS_BETTER(metric) else np.argmax(values))
            assert ["best" in c[1] for c in cells] == [j == best for j in range(2)], metric
            marked += 1
        else:
            assert not any("best" in c[1] for c in cells), metric
    assert marked >= 2  # energy pointing, average drop, ... differ between the two methods
    counts = {r[0][3]: [c[3] for c in r[1:]] for r in rows[1:5]}
    assert counts["Images"] == ["7", "7"] and counts["Repaired"] == ["2", "2"]


def test_markdown_and_latex_tables(demo):
    out, _, _, summary = demo
    md, tex = (out / "report_tables.md").read_text(), (out / "report_tables.tex").read_text()
    s = summary.set_index("method")
    ap = cell_text(s.loc["gradcampp", "energy_pointing"], s.loc["gradcampp", "energy_pointing_lo"], s.loc["gradcampp", "energy_pointing_hi"])
    assert "| Metric | gradcam | gradcampp |" in md and ap.split(" ", 1)[1] in md
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\begin{tabular}{lrr}" in tex
    assert "efficientnet\\_lite0" in tex and "$\\downarrow$" in tex and "\\textbf{" in tex
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 2  # summary, comparisons
    body = tex.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0]
    assert all(line.endswith("\\\\") and line.count("&") == 2 for line in body.strip().splitlines())


def test_comparisons_in_words_from_comparisons_csv(demo):
    out, text, _, _ = demo
    comparisons = pd.read_csv(out / "comparisons.csv")
    row = comparisons.set_index("metric").loc["energy_pointing"]
    words = "puts" if row["diff"] > 0 else "puts"
    more = "more" if row["diff"] > 0 else "less"
    lo, hi = sorted((row["lo"], row["hi"])) if row["diff"] > 0 else sorted((-row["hi"], -row["lo"]))
    expected = (f"gradcampp {words} {abs(row['diff']):.1f} points {more} of its energy inside the boxes "
                f"[{lo:.1f}, {hi:.1f}] than gradcam on these 7 images")
    assert expected in text
    assert "Identical on every resample" in text and "Top-1 cls. error" in text


def test_comparison_sentence_reads_in_the_metrics_direction():
    rows = pd.DataFrame([
        # lower is better: the method's error is 3.1 points lower [-5.0, -1.2]
        {"method": "gradcampp", "baseline": "gradcam", "metric": "gtk_loc_err", "diff": -3.1, "lo": -5.0, "hi": -1.2,
         "p_better": 0.999, "significant": True, "n_images": 4952, "win_pct": None},
        {"method": "gradcampp", "baseline": "gradcam", "metric": "pointing_acc", "diff": -2.0, "lo": -4.0, "hi": 0.5,
         "p_better": 0.07, "significant": False, "n_images": 4952, "win_pct": None},
        {"method": "gradcampp", "baseline": "gradcam", "metric": "avg_drop", "diff": 1.5, "lo": 0.5, "hi": 2.5,
         "p_better": 0.0, "significant": False, "n_images": 10, "win_pct": 40.0},
        {"method": "gradcampp", "baseline": "gradcam", "metric": "top1_cls_err", "diff": 0.0, "lo": 0.0, "hi": 0.0,
         "p_better": 0.0, "significant": False, "n_images": 10, "win_pct": None},
    ])
    loc, point, drop, same = comparison_sentences(rows)
    assert loc.text.startswith("gradcampp localizes 3.1 points better [1.2, 5.0] than gradcam on these 4,952 images (a clear gain")
    assert loc.verdict == "better"
    assert point.text.startswith("gradcampp hits the pointing game 2.0 points less often [-0.5, 4.0] than gradcam") and point.verdict == "unclear"
    assert drop.text.startswith("gradcampp drops the model's confidence 1.5 points more [0.5, 2.5]") and drop.verdict == "worse"
    assert "smaller on 40% of the images" in drop.text
    assert same.verdict == "same"


def decode_data_uri(uri: str) -> Image.Image:
    head, payload = uri.split(",", 1)
    assert head in ("data:image/jpeg;base64", "data:image/png;base64")
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def test_gallery_images_present_and_referenced(demo, demo_report_run):
    out, text, page, _ = demo
    kept = read_maps(out)
    ids = [kept.images[k]["image_id"] for k in kept.gallery]
    records = demo_report_run.records
    assert sorted(ids) == sorted(records["image_id"].unique())  # 7 images < 48: every one is kept
    assert [c["title"] for c in page.cards] == ids
    for card, key in zip(page.cards, kept.gallery):
        thumb = kept.thumbnail(key)
        assert len(card["images"]) == 3  # photo + one panel per method
        for src in card["images"]:
            with decode_data_uri(src) as im:
                assert im.size == (thumb.shape[1], thumb.shape[0])
        # the enlarged view: a copy of each card picture (by id), and one records row per target x method
        copies = [a["data-copy"] for tag, a in card["template"] if tag == "img" and "data-copy" in a]
        assert len(set(copies)) == 3
        n_rows = sum(1 for tag, _ in card["template"] if tag == "tr") - 1
        assert n_rows == (records["image_id"] == card["title"]).sum()
    assert set(c["reason"] for c in page.cards) <= {"disagree", "worst:gradcam", "worst:gradcampp", "random"}
    for copy_id in re.findall(r'data-copy="([^"]+)"', text):
        assert f'id="{copy_id}"' in text
    kept.close()


def test_figures_written_beside_and_inline(demo):
    out, text, page, _ = demo
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert names == ["iou_histogram.png", "maxboxacc_curves.png", "pointing_per_class.png"]
    inline = [decode_data_uri(s) for s in page.images if s.startswith("data:image/png")]
    assert len(inline) == 3
    for name in names:
        assert f'href="figures/{name}"' in text
        with Image.open(out / "figures" / name) as im:
            assert im.format == "PNG" and im.size[0] > 500
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text  # nothing fetched


def test_gallery_maps_land_where_the_run_pointed(demo, demo_report_run):
    """The gallery places each kept map on its thumbnail by the run's own rule: its peak is the
    pointing-game point the run recorded (scaled), for every kept GT-class map."""
    out = demo[0]
    kept = read_maps(out)
    records = demo_report_run.records
    checked = 0
    for key in kept.gallery:
        meta = kept.images[key]
        thumb_shape = kept.thumbnail(key).shape[:2]
        sy, sx = thumb_shape[0] / meta["size"][0], thumb_shape[1] / meta["size"][1]
        for method, maps in kept.maps(key).items():
            for t, source in enumerate(meta["sources"]):
                if source != "gt":
                    continue
                row = records[(records["image_id"] == meta["image_id"]) & (records["method"] == method)
                              & (records["target"] == meta["targets"][t]) & (records["target_source"] == "gt")].iloc[0]
                placed = placed_map(maps[t], tuple(meta["size"]), meta["view"], thumb_shape)
                # float16 keeps 3 digits, so near-equal peaks may swap: the recorded point must sit
                # on a peak of the kept map (within 2 thumbnail px and float16 precision)
                x, y = int((row["point_x"] + 0.5) * sx), int((row["point_y"] + 0.5) * sy)
                near = placed[max(0, y - 2): y + 3, max(0, x - 2): x + 3].max()
                assert near >= placed.max() - 2e-3 * abs(placed.max()), (key, method)
                checked += 1
    assert checked == 14
    kept.close()


def test_placed_map_fills_only_its_view():
    native = np.zeros((7, 7), np.float32)
    native[3, 6] = 1.0  # the peak in the map's last column
    placed = placed_map(native, (300, 400), (100.0, 0.0, 300.0, 300.0), (150, 200))  # the map covers x in [100, 300)
    y, x = np.unravel_index(np.argmax(placed), placed.shape)
    assert abs(x - (50 + (6 + 0.5) / 7 * 100 - 0.5)) <= 1 and abs(y - ((3 + 0.5) / 7 * 150 - 0.5)) <= 1
    assert (placed[:, :50] == 0).all() and (placed[:, 150:] == 0).all()  # outside the view: the map's minimum


PAPER_CSV = """paper,table,row,column,published,status,ours,ours_lo,ours_hi,diff,n_images,source
Grad-CAM++ (WACV 2018),Table 3,VGG-16 Grad-CAM,Average drop,46.56,verified,43.58,20.86,67.33,-2.98,7,Table 3 p. 7
Grad-CAM++ (WACV 2018),Table 3,VGG-16 Grad-CAM,Increase in confidence,13.42,secondary source,14.29,0.00,42.86,0.87,7,survey Table 2
Grad-CAM++ (WACV 2018),Table 3,VGG-16 Grad-CAM++,Average drop,36.84,verified,44.36,20.87,69.19,7.52,7,Table 3 p. 7
Grad-CAM++ (WACV 2018),Table 3,VGG-16 Grad-CAM++,Increase in confidence,17.05,unverified,0.00,0.00,0.00,-17.05,7,
"""


def test_paper_table_pivots_into_the_papers_shape(tmp_path):
    (tmp_path / "table.csv").write_text(PAPER_CSV)
    (table,) = paper_tables(pd.read_csv(tmp_path / "table.csv", dtype={"published": str}))
    assert table.header == ["", "Average drop", "Increase in confidence"]
    assert [r[0].text for r in table.rows] == ["VGG-16 Grad-CAM", "VGG-16 Grad-CAM++"]
    md = to_markdown(table)
    assert "| VGG-16 Grad-CAM | 43.58 [20.86, 67.33] / 46.56 (-2.98) | 14.29 [0.00, 42.86] / 13.42 (+0.87)† |" in md
    assert "| VGG-16 Grad-CAM++ | 44.36 [20.87, 69.19] / 36.84 (+7.52) | 0.00 [0.00, 0.00] / 17.05 (-17.05)? |" in md
    tex = to_latex(table)
    assert "43.58 {\\scriptsize [20.86, 67.33]} / 46.56 (-2.98)" in tex and "(+0.87)$^\\dagger$" in tex


def test_cli_rebuilds_a_report_with_paper_table_and_bounded_gallery(demo, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(demo[0], run_dir)
    (run_dir / "report.html").unlink()
    (run_dir / "table.csv").write_text(PAPER_CSV)
    assert report_main([str(run_dir), "--gallery", "3"]) == 0
    assert str(run_dir / "report.html") in capsys.readouterr().out
    text = (run_dir / "report.html").read_text()
    page = Page(text)
    assert len(page.cards) == 3
    paper = page.tables["t-paper-Grad-CAM++ (WACV 2018)-Table 3"]
    assert [c[3] for c in paper[0]] == ["", "Average drop", "Increase in confidence"]
    assert paper[1][1][3] == "43.58 [20.86, 67.33] / 46.56 (-2.98)" and paper[2][2][3].endswith("(-17.05)?")
    assert "Paper tables" in text and "46.56 (-2.98)" in (run_dir / "report_tables.md").read_text()
    elsewhere = tmp_path / "new" / "folder"  # -o: a folder that does not exist yet
    assert report_main([str(run_dir), "-o", str(elsewhere)]) == 0
    assert sorted(p.name for p in elsewhere.iterdir()) == ["figures", "pointing_per_class.csv", "report.html", "report_tables.md", "report_tables.tex"]


def test_cli_error_is_one_line(tmp_path, capsys):
    assert report_main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert report_main([str(tmp_path / "empty")]) == 2
    assert "no run found" in capsys.readouterr().err


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A real Hydra multirun: two methods x two localization thresholds; the jobs write their
    reports and the sweep's callback the multirun's."""
    tmp = tmp_path_factory.mktemp("sweep")
    result = subprocess.run(
        [sys.executable, "-m", "wsl_bench", "-m", "method=gradcam,gradcampp", "metric.localization.threshold=0.15,0.3",
         "dataset.limit=2", "report.bootstrap=50", "report.gallery=2", "device=cpu", f"hydra.sweep.dir={tmp / 'multirun'}"],
        cwd=tmp, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp / "multirun"


def jobs_by_override(multirun: Path) -> dict[tuple[str, str], Path]:
    out = {}
    for job in sorted(p for p in multirun.iterdir() if (p / "summary.csv").is_file()):
        values = dict(o.split("=", 1) for o in (job / ".hydra" / "overrides.yaml").read_text().replace("- ", "").split())
        out[(values["method"], values["metric.localization.threshold"])] = job
    return out


def test_sweep_report_table_and_warning(sweep):
    jobs = jobs_by_override(sweep)
    assert len(jobs) == 4 and all((j / "report.html").is_file() and (j / "maps.npz").is_file() for j in jobs.values())
    assert all(len(Page((j / "report.html").read_text()).cards) == 2 for j in jobs.values())  # report.gallery=2
    text = (sweep / "report.html").read_text()  # written by the multirun's callback
    page = Page(text)
    # one table per metric: rows = the runs' other axis (the threshold), columns = the methods
    table = page.tables["t-sweep-gtk_loc_err"]
    assert [c[3] for c in table[0]] == ["Run", "gradcam", "gradcampp"]
    assert [r[0][3] for r in table[1:]] == ["metric.localization.threshold=0.15", "metric.localization.threshold=0.3"]
    for r, threshold in zip(table[1:], ("0.15", "0.3")):
        for cell, method in zip(r[1:], ("gradcam", "gradcampp")):
            s = pd.read_csv(jobs[(method, threshold)] / "summary.csv").iloc[0]
            assert cell[3] == cell_text(s["gtk_loc_err"], s["gtk_loc_err_lo"], s["gtk_loc_err_hi"])
    runs_rows = [r for r in page.tables if r.startswith("t-")]
    assert "t-sweep-pointing_acc" in runs_rows
    # the list of runs: one row per run, each linking its report
    assert len(re.findall(r'<a href="(\d)/report.html">report</a>', text)) == 4
    # the runs differ in protocol (the threshold, a sweep axis): a warning names it and its values
    warning = text.split('<div class="warn" id="warning">', 1)[1].split("</div>", 1)[0]
    assert "different protocols" in warning and "metric_settings.localization.threshold" in warning and "(a sweep axis)" in warning
    assert "<code>0.15</code>" in warning and "<code>0.3</code>" in warning
    assert "code" not in re.findall(r"<b>(\w+)</b>", warning)


def test_sweep_of_same_protocol_has_no_warning_but_different_code_has(sweep, tmp_path):
    jobs = jobs_by_override(sweep)
    same = [tmp_path / "a", tmp_path / "b"]
    for job, copy in zip([jobs[("gradcam", "0.15")], jobs[("gradcampp", "0.15")]], same):
        shutil.copytree(job, copy)
        (copy / "report.html").unlink()
    assert report_main([str(p) for p in same] + ["-o", str(tmp_path / "same")]) == 0
    assert all((p / "report.html").is_file() for p in same)  # runs without a report get one
    text = (tmp_path / "same" / "report.html").read_text()
    assert 'id="warning"' not in text and "Every run used the same protocol, data and code version" in text
    table = Page(text).tables["t-sweep-gtk_loc_err"]
    assert len(table) == 2 and [c[3] for c in table[0]] == ["Run", "gradcam", "gradcampp"]  # one row: the method is the axis
    # a copy of a run recorded under another commit and torch version: a code warning
    other = tmp_path / "other"
    shutil.copytree(same[0], other)
    prov = json.loads((other / "provenance.json").read_text())
    prov["git_commit"], prov["packages"]["torch"] = "0" * 40, "0.0.1"
    (other / "provenance.json").write_text(json.dumps(prov))
    (other / "report.html").unlink()
    text = build_report([same[0], other], tmp_path / "code", run_reports=False).read_text()
    assert not (other / "report.html").exists()
    warning = text.split('<div class="warn" id="warning">', 1)[1].split("</div>", 1)[0]
    assert "different code versions" in warning and "git_commit" in warning and "packages.torch" in warning and "0" * 40 in warning
    assert len(Page(text).tables["t-sweep-gtk_loc_err"]) == 3  # two rows: one per run


def test_insertion_deletion_plot_from_curves_or_aucs():
    from wsl_bench.report.figures import insertion_deletion_figure

    records = pd.DataFrame({"method": ["a", "a", "b"], "insertion_auc": [0.6, 0.7, 0.5], "deletion_auc": [0.1, None, 0.2]})
    fig = insertion_deletion_figure(None, records, ["a", "b"], {"a": "#1f77b4", "b": "#ff7f0e"})
    assert fig.title == "Insertion and deletion AUC per image" and fig.png.startswith(b"\x89PNG")
    x = np.linspace(0, 1, 5)
    curves = pd.DataFrame({"method": "a", "mode": ["insertion"] * 5 + ["deletion"] * 5, "fraction": np.r_[x, x], "prob": np.r_[x, 1 - x]})
    assert insertion_deletion_figure(curves, records, ["a"], {}).title == "Insertion and deletion curves"
    assert insertion_deletion_figure(None, records.drop(columns=["insertion_auc", "deletion_auc"]), ["a"], {}) is None


def test_report_html_false_writes_no_report(tmp_path):
    from hydra import compose, initialize_config_dir

    from wsl_bench.pipeline import run

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["dataset.limit=1", "device=cpu", "progress=false", "report.bootstrap=10",
                                                       "report.html=false"])
    out = run(cfg, tmp_path / "run").out_dir
    assert (out / "summary.csv").is_file() and not (out / "report.html").exists() and not (out / "maps.npz").exists()


def test_directions_and_digits_come_from_the_metric_units():
    from wsl_bench.report.metric_info import info, registry_directions

    declared = registry_directions()
    assert {"top1_loc_err", "pointing_acc", "avg_drop", "deletion_auc", "maxboxacc_v2_iou50"} <= set(declared)
    for name, (lower, digits) in declared.items():
        assert (info(name).lower_is_better, info(name).digits) == (lower, digits)
        assert lower == LOWER_IS_BETTER(name)  # the rule: *_err, avg_drop, deletion_auc
    assert info("my_new_score").lower_is_better is False and info("maxboxacc_v2_iou40").label == "MaxBoxAccV2 @ IoU 0.4"
