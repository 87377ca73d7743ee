"""The documentation cannot drift from the code: its commands parse, its reference is generated, its figures come from files.

- every `python -m tuning.run|tuning.report|tuning.lr_find|bench.run ...` written in
  README.md or docs/ is accepted by that command's real parser and checks;
- `docs/cli.md` is what `python -m tuning.cli.docs` writes today;
- the README's results block and `docs/benchmarks.md`'s tables are what `bench.run`
  renders from `bench/results/`;
- the README stays a front page (at most 150 lines) and every page it links exists.
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
COMMANDS = ("tuning.run", "tuning.report", "tuning.lr_find", "bench.run")
# Shell words that end a command written in prose or a code block.
ENDS = {"&&", "||", "|", ";", "#", ">", "2>&1"}


def written_commands() -> list[tuple[str, str, list[str]]]:
    """`(page, command, argv)` for every command of `COMMANDS` the pages show, in code blocks or inline code."""
    found = []
    for page in PAGES:
        text = page.read_text()
        snippets = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S) + re.findall(r"`([^`\n]+)`", text)
        for snippet in snippets:
            for line in snippet.replace("\\\n", " ").splitlines():
                for command in COMMANDS:
                    marker = f"python -m {command} "
                    if marker not in line + " ":
                        continue
                    words = shlex.split((line + " ").split(marker, 1)[1], comments=False)
                    if not words and line.strip() == marker.strip():
                        continue  # the command's bare name, as a heading says it, is not a command line
                    argv = []
                    for word in words:
                        if word in ENDS or word.startswith("#"):
                            break
                        argv.append(word)
                    found.append((page.name, command, argv))
    return found


def _placeholders(argv: list[str], folder) -> None:
    """Empty stand-ins for the files a written command names (`DATASET`, `--test`), so its checks run for real."""
    from tuning.data.builtin import DATASETS

    dataset = next((a for a in argv if not a.startswith("-")), None)
    names = [dataset] + [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--test"]
    for name in [n for n in names if n and n not in DATASETS.names()]:
        path = folder / name
        if name.endswith((".npz", ".csv")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            path.mkdir(parents=True, exist_ok=True)


def _parse(command: str, argv: list[str]) -> None:
    if command == "tuning.run":
        import os
        import tempfile
        from pathlib import Path

        from tuning.cli import run

        with tempfile.TemporaryDirectory() as folder:
            here = os.getcwd()
            _placeholders(argv, Path(folder))
            os.chdir(folder)
            try:
                run.parse_config(argv)  # RunConfig checks DATASET: a built-in name, or a file or folder of a known form
            finally:
                os.chdir(here)
    elif command == "tuning.report":
        from tuning.cli import report

        report.build_parser().parse_args(argv)
    elif command == "tuning.lr_find":
        from tuning.cli import lr_find

        lr_find.parse_config(argv)
    else:
        from bench import run as bench_run

        bench_run.parse_args(argv)


def test_the_pages_show_commands_of_every_kind():
    kinds = {command for _, command, _ in written_commands()}
    assert kinds == set(COMMANDS)


@pytest.mark.parametrize("page, command, argv", written_commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_written_command_is_accepted_by_its_parser(page, command, argv):
    try:
        _parse(command, argv)
    except SystemExit as error:  # argparse's own exit, where a parser is not the project's one-line one
        pytest.fail(f"{page}: python -m {command} {' '.join(argv)} is refused (exit {error.code})")
    except Exception as error:
        pytest.fail(f"{page}: python -m {command} {' '.join(argv)} is refused: {error}")


def test_cli_reference_is_what_the_parsers_say():
    from tuning.cli import docs as cli_docs

    assert cli_docs.CLI_MD.read_text() == cli_docs.render(), "run python -m tuning.cli.docs"


def test_results_come_from_the_result_files():
    from bench import run as bench_run

    assert bench_run.marked_block(REPO / "README.md") == bench_run.headline().strip("\n"), "run python -m bench.run render"
    tables = bench_run.marked_block(REPO / "docs" / "benchmarks.md")
    assert tables == bench_run.render("python -m bench.run render").strip("\n"), "run python -m bench.run render"


def test_the_readme_is_a_front_page_whose_links_exist():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_no_stale_statement_survives():
    stale = ["about 9 minutes", "no trial starts after half of it", "no trial starts after 60%",
             "plan_retraining", "today none needs the marker"]  # fmt: skip
    for path in [*PAGES, REPO / "tuning" / "cli" / "run.py", REPO / "tuning" / "config" / "run_config.py"]:
        text = path.read_text()
        for phrase in stale:
            assert phrase not in text, f"{path.name} still says {phrase!r}"
