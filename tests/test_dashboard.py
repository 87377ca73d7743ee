"""The HParams dashboard as a user sees it: a real TensorBoard server, opened in headless Chromium.

Skipped, with the reason, where Chromium, its driver or Selenium is missing
(`.ci/run` installs Debian's `chromium` and `chromium-driver`).
"""

from __future__ import annotations

import os
import shutil

import pytest

from bench import dashboard
from tests.conftest import run_cli
from tuning.distributed.addresses import free_port
from tuning.records import events

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER and HAVE_SELENIUM),
    reason="needs Chromium and ChromeDriver (apt-get install chromium chromium-driver) and selenium "
    "(pip install -e '.[test]'); .ci/run installs them",
)

ARGS = ["digits", "--tuner", "tpe", "--pruner", "median", "--trials", "8", "--max-epochs", "4", "--seed", "3",
        "--final-seeds", "2", "--final-epochs", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small TPE search with median pruning, as a user runs it; returns its folder and its trials' scores.

    The scores come from the run's event log (`logs/RUN/events.jsonl`), which the CLI's progress lines print too.
    """
    folder = tmp_path_factory.mktemp("dashboard")
    result = run_cli(ARGS, cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    ended = [e for e in events.read(folder / "logs" / "digits-tpe" / events.EVENTS_FILE) if e["event"] == "TrialEnded"]
    scores = {f"trial {e['trial_id']}": (e["score"], e["outcome"]) for e in ended if e["outcome"] != "failed"}
    assert scores and "pruned" in {outcome for _, outcome in scores.values()}, ended
    return folder, scores


@pytest.fixture(scope="module")
def browser(run):
    """TensorBoard on loopback over the run's logs, and a headless Chromium on its HParams tab."""
    folder, _ = run
    port = free_port("127.0.0.1")
    server = dashboard.serve(folder / "logs" / "digits-tpe", port)
    driver = None
    try:
        driver = dashboard.chromium("1600,1200")
        driver.get(f"http://127.0.0.1:{port}/#hparams")
        wait_for(driver, "return window.__deep('tf-hparams-table-view vaadin-grid, vaadin-grid').some(g => g.items && g.items.length)")
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)


def wait_for(driver, script: str, seconds: float = 60):
    return dashboard.wait_for(driver, script, seconds)


def table_rows(driver) -> list[dict]:
    """The table's session groups as the page holds them: name, column values, metrics."""
    return driver.execute_script("""
        const grid = window.__deep('vaadin-grid').find(g => g.items && g.items.length);
        return grid.items.map(item => ({
            name: item.name,
            hparams: item.hparams,
            metrics: Object.fromEntries(item.metricValues.map(m => [m.name.tag, m.value])),
        }));
    """)


def test_the_table_shows_every_trial_with_the_score_the_run_reported(browser, run):
    _, scores = run
    rows = {row["name"]: row for row in table_rows(browser)}
    assert set(scores) <= set(rows)
    assert {"export", "retrain seed 3", "retrain seed 4"} <= set(rows)
    for name, (score, outcome) in scores.items():
        assert rows[name]["metrics"]["score"] == pytest.approx(score, abs=5e-5), name
        assert rows[name]["hparams"]["00 outcome"] == outcome
    shown = browser.execute_script("return window.__deep('vaadin-grid-cell-content').map(c => c.innerText.trim())")
    for name in scores:
        assert f"{rows[name]['metrics']['score']:#.5g}" in shown  # five significant digits: 0.96 as 0.96000


def test_parallel_coordinates_draws_every_session_with_the_default_columns(browser):
    sessions = len(table_rows(browser))
    browser.execute_script(
        "for (const t of window.__deep('paper-tab, [role=tab]')) if (t.innerText.trim().toUpperCase().startsWith('PARALLEL')) t.click();"
    )
    drawn = wait_for(browser, """
        const plot = window.__deep('tf-hparams-parallel-coords-plot')[0];
        const lines = plot && (plot.shadowRoot || plot).querySelectorAll('g.foreground > path');
        return lines && lines.length ? lines.length : 0;
    """)  # fmt: skip
    assert drawn == sessions
    if os.environ.get("TUNING_DASHBOARD_SCREENSHOT"):  # a PNG path, to look at what the test saw
        browser.save_screenshot(os.environ["TUNING_DASHBOARD_SCREENSHOT"])


def test_every_value_lies_in_its_declared_domain(browser):
    infos = browser.execute_script("return window.__deep('tf-hparams-query-pane')[0]._experiment.hparamInfos")
    by_name = {info["name"]: info for info in infos}
    for row in table_rows(browser):
        for name, value in row["hparams"].items():
            info = by_name[name]
            if "domainDiscrete" in info:
                assert value in info["domainDiscrete"], (row["name"], name, value)
            else:
                low, high = info["domainInterval"]["minValue"], info["domainInterval"]["maxValue"]
                assert low <= value <= high, (row["name"], name, value)


def test_pruned_trials_can_be_filtered_out(browser, run):
    _, scores = run
    pruned = {name for name, (_, outcome) in scores.items() if outcome == "pruned"}
    total = len(table_rows(browser))
    browser.execute_script("""
        for (const box of window.__deep('tf-hparams-query-pane paper-checkbox, paper-checkbox'))
            if (box.innerText.trim() === 'pruned' && box.checked) box.click();
    """)  # fmt: skip
    left = wait_for(browser, f"""
        const grid = window.__deep('vaadin-grid').find(g => g.items);
        return grid && grid.items.length === {total - len(pruned)} ? grid.items.map(i => i.name) : null;
    """)  # fmt: skip
    assert not pruned & set(left) and set(scores) - pruned <= set(left)
