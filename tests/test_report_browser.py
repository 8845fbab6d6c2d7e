"""The demo run's report in a real browser (headless Chromium, Debian's `chromium` package): no
console message or script error, every image loaded (the page's own images and those of the
first card's enlarged view, which the check opens), and a screenshot. Skipped when no Chromium is
installed, unless WSL_BENCH_REQUIRE_BROWSER=1 (CI installs chromium and sets it)."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from wsl_bench.report.browser import check_report, find_chromium

REQUIRED = os.environ.get("WSL_BENCH_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        if REQUIRED:
            pytest.fail("WSL_BENCH_REQUIRE_BROWSER=1 but no Chromium is installed: apt-get install -y chromium")
        pytest.skip("no Chromium installed (apt-get install -y chromium); .ci/run installs it and runs this test")
    return find_chromium()


def test_demo_report_in_headless_chromium(browser, demo_report_run, tmp_path):
    report = demo_report_run.out_dir / "report.html"
    shot = tmp_path / "report.png"
    result = check_report(report, screenshot=shot, window=(1400, 900))
    assert result.ok, result.describe()
    # 7 gallery cards x 3 pictures + 3 figures on the page, + 3 copies (and the top-1 row) in the opened view
    assert result.images >= 7 * 3 + 3 + 3
    with Image.open(shot) as im:
        assert im.size == (1400, 900)
        top = im.convert("RGB").crop((0, 0, 1400, 60))
        assert top.getpixel((10, 10)) == (15, 23, 42)  # the page's dark header was drawn


def test_the_check_catches_a_broken_page(browser, tmp_path):
    """The check can fail: a missing image and a script error are both reported."""
    page = (tmp_path / "broken.html")
    from wsl_bench.report.html import HEAD_SCRIPT, SCRIPT

    page.write_text(f"<!doctype html><html><head><script>{HEAD_SCRIPT}</script></head><body><img src='missing.png'>"
                    f"<script>nosuchfunction()</script><output id='selfcheck' hidden></output><script>{SCRIPT}</script></body></html>")
    result = check_report(page)
    assert not result.ok and result.broken == 1 and result.errors >= 1 and any("nosuchfunction" in c for c in result.console)
