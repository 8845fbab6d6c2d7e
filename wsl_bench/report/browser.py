"""Open a report in headless Chromium and check it: no console message or script error, every
image loaded, and a screenshot. `python -m wsl_bench.report.browser report.html --screenshot out.png`
(CI runs it on the demo run's report; Debian's `chromium` package).

The page checks itself: on load, its inline script writes into #selfcheck how many images the
document holds, how many did not load (not complete, or zero natural width) and how many errors
it caught; `--dump-dom` returns that element, and `--enable-logging=stderr` shows every console
message (the report writes none, so any is a failure). With a gallery, the page is opened at
#view-1, which opens the first card's enlarged view, so those images are checked too."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
_SELFCHECK = re.compile(r'<output id="selfcheck"([^>]*)>(.*?)</output>', re.S)
_CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")


def find_chromium() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class BrowserCheck:
    images: int
    broken: int
    errors: int
    console: list[str] = field(default_factory=list)
    detail: str = ""
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        return self.broken == 0 and self.errors == 0 and not self.console

    def describe(self) -> str:
        text = f"{self.images} images, {self.broken} not loaded, {self.errors} script errors, {len(self.console)} console messages"
        return text + "".join(f"\n  console: {c}" for c in self.console) + (f"\n  page: {self.detail}" if self.errors or self.broken else "")


def _chromium(browser: str, profile: str, *args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def check_report(html_path: Path, screenshot: Path | None = None, window: tuple[int, int] = (1400, 900),
                 open_first_card: bool = True, timeout: int = 120) -> BrowserCheck:
    """Load the report in headless Chromium; see the module docstring. Raises RuntimeError when
    no Chromium is installed or the page never reports back."""
    browser = find_chromium()
    if browser is None:
        raise RuntimeError("no Chromium found; install Debian's package: apt-get install -y chromium")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="wsl_bench_chromium_") as profile:
        page = url + ("#view-1" if open_first_card and 'class="card"' in Path(html_path).read_text(encoding="utf-8") else "")
        run = _chromium(browser, profile, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000",
                        f"--window-size={window[0]},{window[1]}", "--dump-dom", page, timeout=timeout)
        found = _SELFCHECK.search(run.stdout)
        if found is None:
            raise RuntimeError(f"the page did not report back (chromium exit {run.returncode}): {run.stderr.strip()[-400:]}")
        attrs = dict(re.findall(r'data-(\w+)="(\d+)"', found.group(1)))
        console = [m.group(1).strip() for line in run.stderr.splitlines() if (m := _CONSOLE.search(line))]
        result = BrowserCheck(int(attrs.get("images", 0)), int(attrs.get("broken", 0)), int(attrs.get("errors", 0)), console,
                              found.group(2).strip())
        if screenshot is not None:
            screenshot = Path(screenshot).resolve()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            shot = _chromium(browser, profile, "--hide-scrollbars", f"--window-size={window[0]},{window[1]}",
                             f"--screenshot={screenshot}", url, timeout=timeout)
            if not screenshot.is_file():
                raise RuntimeError(f"no screenshot written (chromium exit {shot.returncode}): {shot.stderr.strip()[-400:]}")
            result.screenshot = screenshot
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wsl_bench.report.browser", description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="report.html")
    parser.add_argument("--screenshot", type=Path, default=None, help="save a PNG screenshot here")
    parser.add_argument("--window", default="1400,900", help="window size W,H (default 1400,900)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.window.split(","))
    try:
        result = check_report(args.report, args.screenshot, (width, height))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.report}: {result.describe()}" + (f"; screenshot {result.screenshot}" if result.screenshot else ""))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
