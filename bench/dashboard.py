"""Screenshots of a run's HParams dashboard, as a user sees it in headless Chromium.

Owns: starting TensorBoard on loopback over `logs/RUN`, opening the HParams
tab in Debian's `chromium` through Selenium, and saving the table and the
parallel-coordinates views as PNG files, with the counts the page holds
(sessions in the table, lines drawn). It does not run the search and it
asserts nothing: `tests/test_dashboard.py` does that.

    python -m bench.dashboard logs/digits-tpe docs/dashboard
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEEP = """
function all(root, out) { out.push(root); for (const el of root.querySelectorAll('*')) if (el.shadowRoot) all(el.shadowRoot, out); return out; }
window.__deep = (selector) => { const found = []; for (const r of all(document, [])) found.push(...r.querySelectorAll(selector)); return found; };
"""
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")  # fmt: skip


def wait_for(driver, script: str, seconds: float = 90):
    """The first truthy value `script` returns in the page (shadow roots searchable), polled every half second."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        driver.execute_script(DEEP)
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for: {script}")


def serve(logdir: Path, port: int) -> subprocess.Popen:
    """TensorBoard on 127.0.0.1:`port` over `logdir`, once it answers."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugins_listing", timeout=2)
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("TensorBoard did not start")
            time.sleep(0.5)


def chromium(window: str = "1800,1100"):
    """Debian's Chromium, headless, through Selenium and chromium-driver, with this machine's offline flags."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in (*FLAGS, f"--window-size={window}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def shoot(logdir: Path, out: Path) -> dict:
    """Saves `table.png` and `parallel-coordinates.png` under `out`; returns what the page held."""
    from tuning.distributed.addresses import free_port

    out.mkdir(parents=True, exist_ok=True)
    port = free_port("127.0.0.1")
    server = serve(logdir, port)
    driver = chromium()
    try:
        driver.get(f"http://127.0.0.1:{port}/#hparams")
        sessions = wait_for(driver, "const g = window.__deep('vaadin-grid').find(g => g.items && g.items.length); return g ? g.items.length : 0;")
        time.sleep(2)
        driver.save_screenshot(str(out / "table.png"))
        driver.execute_script(
            "for (const t of window.__deep('paper-tab, [role=tab]')) if (t.innerText.trim().toUpperCase().startsWith('PARALLEL')) t.click();"
        )
        drawn = wait_for(driver, """
            const plot = window.__deep('tf-hparams-parallel-coords-plot')[0];
            const lines = plot && (plot.shadowRoot || plot).querySelectorAll('g.foreground > path');
            return lines && lines.length ? lines.length : 0;
        """)  # fmt: skip
        time.sleep(2)
        driver.save_screenshot(str(out / "parallel-coordinates.png"))
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=30)
    return {"sessions_in_table": sessions, "lines_drawn": drawn, "logdir": str(logdir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path, help="a run's log folder, logs/RUN")
    parser.add_argument("out", type=Path, help="where the PNG files go")
    args = parser.parse_args(argv)
    print(json.dumps(shoot(args.logdir, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
