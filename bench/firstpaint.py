"""Section 10: the app's first paint on a fresh server (issue 12), in headless Chromium.

For each page, a fresh ``streamlit run app.py`` (so the first request pays for every import) is opened by
a direct link, and the page is watched from the navigation on: when the browser first paints something
other than white (screenshots every ``shot_every_ms``, on a server of its own so the screenshots don't slow
the other timings), when the page's heading shows, when its first useful part shows (the verdict on
Evaluate, the run picker on Test, the table on Runs, the cards on Model) and when the script has finished.
The timings are the median of a few fresh servers. Beside them: Streamlit's own floor (an app that only
draws a title), and the same direct link from a browser that used the app before (its scripts cached).
"""

from __future__ import annotations

import io
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import Context, Goal, Section, Table, fmt
from .profiles import FirstPaintCfg

__all__ = ["run", "PAGES", "watch_page", "fresh_server"]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# slug -> (heading, a JS test of the page's first useful part, what that part is)
_MAIN = "document.querySelector('[data-testid=stMain]')"
PAGES: dict[str, tuple[str, str, str]] = {
    "model": ("Model", f"({_MAIN}?.innerText || '').includes('Use this')", "the strategy cards"),
    "evaluate": ("Evaluate", f"!!{_MAIN}?.querySelector('[data-testid=stAlert]')", "the verdict"),
    "test": ("Test", f"!!{_MAIN}?.querySelector('[data-testid=stTabs]')", "the photo tabs"),
    "runs": ("Runs", f"!!{_MAIN}?.querySelector('[data-testid=stDataFrame]')", "the runs table"),
}
GOAL_HEADING_S = 3.0
GOAL_PAINT_S = 1.0
_PAINT_JS = """() => Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))"""
_STATE_JS = """() => [document.querySelector('h1')?.innerText || '', USEFUL,
    !!document.querySelector('[data-testid=stStatusWidgetRunningIcon]')]"""


@dataclass
class Watch:
    """Seconds from the navigation to each moment (None: not seen within the time limit)."""

    heading: float | None = None
    useful: float | None = None
    done: float | None = None
    non_white: float | None = None
    first_paint: float | None = None  # the browser's own paint timings (from the navigation's start)
    first_contentful_paint: float | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class fresh_server:  # noqa: N801  (used as a context manager, like open())
    """``streamlit run app.py`` on a free port with its own workspace, offline; stopped on exit."""

    def __init__(self, workspace: Path, cache: Path, log: Path, script: str = "app.py", port: int | None = None) -> None:
        self.workspace, self.cache, self.log_path, self.script, self.port = workspace, cache, log, script, port
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        port = self.port or _free_port()
        env = {**os.environ, "GRAFT_WORKSPACE": str(self.workspace), "GRAFT_CACHE_DIR": str(self.cache),
               "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", self.script, "--server.headless",
                                      "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
                                     cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    return url
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the Streamlit server did not start in 90 s")

    def __exit__(self, *exc: Any) -> None:
        from core.standby import stop_standbys

        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
        stop_standbys(self.workspace)  # a warm training process the server started would wait 10 minutes


def _non_white(png: bytes) -> bool:
    from PIL import Image

    grey = Image.open(io.BytesIO(png)).convert("L")
    return grey.getextrema()[0] < 235  # anything darker than a faint tint: a skeleton, a bar, text


def _shot_non_white(page: Any) -> bool:
    """Whether a screenshot now shows anything but white (a screenshot the browser refuses mid-load: no)."""
    from playwright.sync_api import Error

    try:
        return _non_white(page.screenshot())
    except Error:
        return False


def watch_page(browser: Any, url: str, slug: str, cfg: FirstPaintCfg, shots: bool,
               page_spec: tuple[str, str, str] | None = None, context: Any = None) -> Watch:
    """Open ``url/slug`` in a new tab and note when each moment first happens (see :class:`Watch`);
    ``context``: in that browser context (its cache), else a new one (nothing cached)."""
    heading, useful_js, _ = page_spec or PAGES[slug]
    state_js = _STATE_JS.replace("USEFUL", useful_js)
    page = context.new_page() if context is not None else browser.new_page(viewport=_viewport(cfg))
    seen, calm = Watch(), 0
    t0 = time.monotonic()
    page.goto(f"{url}/{slug}{cfg.query}", wait_until="commit")
    try:
        while time.monotonic() - t0 < cfg.timeout_s:
            now = round(time.monotonic() - t0, 2)
            if shots and seen.non_white is None and _shot_non_white(page):
                seen.non_white = now
            h1, useful, running = page.evaluate(state_js)
            if h1 == heading and seen.heading is None:
                seen.heading = now
            if useful and seen.useful is None:
                seen.useful = now
            calm = calm + 1 if seen.useful is not None and not running else 0
            if calm >= 5 and (seen.non_white is not None or not shots):
                seen.done = round(now - 0.4, 2)
                break
            page.wait_for_timeout(cfg.shot_every_ms if shots else 100)
        paints = page.evaluate(_PAINT_JS)
        seen.first_paint = _seconds(paints.get("first-paint"))
        seen.first_contentful_paint = _seconds(paints.get("first-contentful-paint"))
    finally:
        page.close()
    return seen


def _median(watches: list[Watch]) -> Watch:
    """Each moment's median over fresh servers (a moment not seen in one of them counts as never)."""
    def mid(name: str) -> float | None:
        values = sorted(getattr(w, name) if getattr(w, name) is not None else float("inf") for w in watches)
        value = statistics.median(values)
        return None if value == float("inf") else round(value, 2)

    return Watch(**{name: mid(name) for name in vars(watches[0])})


def _viewport(cfg: FirstPaintCfg) -> dict[str, int]:
    return {"width": cfg.width, "height": 900}


def _page_label(key: str) -> str:
    slug = key.removeprefix(AGAIN)
    label = "a bare Streamlit app (a title only)" if slug == BARE[0] else f"/{slug}"
    return label + (", a browser that used it before" if key.startswith(AGAIN) else "")


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 2)


def _workspace(ctx: Context) -> Path:
    """A workspace with the sample dataset and one finished tiny run ``r1`` (scratch, 2 epochs)."""
    from core.workspace import Workspace

    from .runs import train

    ws = ctx.subdir("firstpaint") / "workspace"
    info = Workspace(ws).add_sample()
    if not (ws / "runs" / "r1" / "predictions.csv").is_file():
        train(Path(info.path), ws / "runs" / "r1", backbone="test_resnet", start="scratch", image_size=32,
              epochs=2, batch_size=8, good_class="ok", seed=0)
    return ws


# Streamlit's own floor: the same measurement of an app that only draws a title
BARE_APP = 'import streamlit as st\n\nst.title("Hello")\n'
BARE = ("bare", ("Hello", "(document.querySelector('h1')?.innerText || '').includes('Hello')", "its title"))
AGAIN = "again:"  # a returning visitor's row: the browser has Streamlit's scripts cached (_returning)


def _server_files(ctx: Context, ws: Path | None = None) -> tuple[Path, Path, Path]:
    """A fresh server's workspace (default: an empty one, for the bare app), cache folder and log."""
    return ws or ctx.work / "firstpaint" / "bare-ws", ctx.work / "firstpaint" / "cache", ctx.work / "firstpaint.log"


def _bare_script(ctx: Context) -> Path:
    script = ctx.subdir("firstpaint") / "bare_app.py"
    script.write_text(BARE_APP, encoding="utf-8")
    return script


def _bare(ctx: Context, browser: Any, cfg: FirstPaintCfg) -> dict[str, Watch]:
    script = _bare_script(ctx)
    out = {}
    for kind, shots in (("timings", False), ("paint", True)):
        with fresh_server(*_server_files(ctx), script=str(script)) as url:
            out[kind] = watch_page(browser, url, "", cfg, shots, page_spec=BARE[1])
    return out


def _returning(ctx: Context, browser: Any, cfg: FirstPaintCfg, slug: str, script: str = "app.py",
               ws: Path | None = None, spec: tuple[str, str, str] | None = None) -> dict[str, Watch]:
    """A direct link from a browser that used the app before: a first server at a fixed port is visited
    once (the browser keeps Streamlit's scripts, which are cached as immutable), then a fresh server on
    the same port is opened by the link."""
    where = _server_files(ctx, ws)
    out = {}
    for kind, shots in (("timings", False), ("paint", True)):
        context, port = browser.new_context(viewport=_viewport(cfg)), _free_port()
        try:
            with fresh_server(*where, script=script, port=port) as url:
                watch_page(browser, url, slug, cfg, False, page_spec=spec, context=context)
            with fresh_server(*where, script=script, port=port) as url:
                out[kind] = watch_page(browser, url, slug, cfg, shots, page_spec=spec, context=context)
        finally:
            context.close()
    return out


def measure(ctx: Context, cfg: FirstPaintCfg) -> dict[str, dict[str, Watch]]:
    """``{slug: {"timings": Watch, "paint": Watch}}``, each from its own fresh server."""
    from playwright.sync_api import sync_playwright

    ws = _workspace(ctx)
    out: dict[str, dict[str, Watch]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for slug in cfg.pages:
                where = _server_files(ctx, ws)
                timings = []
                for _ in range(cfg.repeats):
                    with fresh_server(*where) as url:
                        timings.append(watch_page(browser, url, slug, cfg, False))
                with fresh_server(*where) as url:
                    out[slug] = {"timings": _median(timings), "paint": watch_page(browser, url, slug, cfg, True)}
                ctx.log(f"  /{slug}: {out[slug]}; headings {[w.heading for w in timings]}")
            out[BARE[0]] = _bare(ctx, browser, cfg)
            for slug in cfg.returning:
                out[AGAIN + slug] = _returning(ctx, browser, cfg, slug, ws=ws)
            if cfg.returning:
                out[AGAIN + BARE[0]] = _returning(ctx, browser, cfg, "", script=str(_bare_script(ctx)),
                                                  spec=BARE[1])
            ctx.log(f"  returning visitor: { {k: v for k, v in out.items() if k.startswith(AGAIN)} }")
        finally:
            browser.close()
    return out


def run(cfg: FirstPaintCfg, ctx: Context) -> Section:
    intro = ("A direct link to each page as the first request of a fresh `streamlit run app.py` (offline, "
             f"{cfg.width} px, headless Chromium on this machine), seconds after the navigation: for each page the "
             f"median of {cfg.repeats} fresh servers. The first non-white paint is seen on screenshots every "
             f"{cfg.shot_every_ms} ms, on a server of its own.")
    section = Section("firstpaint", "10. First paint on a fresh server", intro)
    if not cfg.pages or not Path(CHROMIUM).exists():
        section.tables.append(Table(["skipped"], [["no pages in this profile" if not cfg.pages else f"no {CHROMIUM}"]]))
        return section
    found = measure(ctx, cfg)
    section.tables.append(Table(
        ["page", "first non-white paint (screenshots)", "first contentful paint (browser)", "heading",
         "first useful part", "", "script finished"],
        [[_page_label(key), fmt(w["paint"].non_white), fmt(w["timings"].first_contentful_paint, 2),
          fmt(w["timings"].heading), fmt(w["timings"].useful), (PAGES.get(key.removeprefix(AGAIN)) or BARE[1])[2],
          fmt(w["timings"].done)] for key, w in found.items()]))
    again = {k: found.pop(k) for k in list(found) if k.startswith(AGAIN)}
    bare = found.pop(BARE[0])
    worst = max((w["timings"].heading or float("inf")) for w in found.values())
    paint = max((w["paint"].non_white or float("inf")) for w in found.values())
    section.notes.append(f"The bare app's row is Streamlit's own floor on this machine: a fresh server of an app that "
                         f"only draws a title paints first after {fmt(bare['paint'].non_white)} s (screenshots) and "
                         f"{fmt(bare['timings'].first_contentful_paint, 2)} s (browser), the time its page and "
                         "scripts take to load in the browser before any app code runs.")
    if again:
        section.notes.append(_again_note(again))
    section.goals += [Goal(f"heading on every page within {GOAL_HEADING_S:.0f} s", f"≤ {GOAL_HEADING_S:.0f} s",
                           f"{worst:.1f} s (slowest)", worst <= GOAL_HEADING_S),
                      Goal(f"a loading state within {GOAL_PAINT_S:.0f} s", f"≤ {GOAL_PAINT_S:.0f} s",
                           f"{paint:.1f} s (slowest)", paint <= GOAL_PAINT_S)]
    section.data = {slug: {k: vars(v) for k, v in w.items()}
                    for slug, w in {**found, BARE[0]: bare, **again}.items()}
    return section


def _again_note(again: dict[str, dict[str, Watch]]) -> str:
    paints = ", ".join(f"{_page_label(k).split(',')[0]} {fmt(w['paint'].non_white)} s" for k, w in again.items())
    return ("The rows of \"a browser that used it before\" open the same direct link on a fresh server from a "
            "browser that visited the app earlier: it keeps Streamlit's scripts, which the server marks as "
            f"cached for good. The first non-white paint then comes at {paints} (screenshots). The goal above "
            "is judged on the first visit, with nothing cached.")
