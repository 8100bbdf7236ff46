"""Each `atlas` subcommand imports only what it needs, so that the command line starts fast."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from atlas.cli import catalog, main

HEAVY = ("atlas.config.settings", "pydantic", "pydantic_settings", "flask", "werkzeug", "redis", "rq", "github",
         "gunicorn", "jinja2", "regopy", "yaml", "atlas.app", "atlas.worker", "atlas.commands")
"""What a command that takes no settings and serves nothing must not load."""

SERVING = ("flask", "werkzeug", "redis", "rq", "github", "gunicorn", "jinja2", "regopy", "atlas.app",
           "atlas.worker", "atlas.commands")
"""What no `--help` loads, even of the commands that take settings."""


def imported_by(*argv: str) -> set[str]:
    """The top modules (and atlas modules) loaded by running `atlas ARGV` in a fresh interpreter."""
    script = (
        "import json, sys\n"
        "from atlas.cli.main import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    modules = set(json.loads(done.stderr.strip().splitlines()[-1]))
    return {name for name in modules if name.startswith("atlas.")} | {name.split(".")[0] for name in modules}


@pytest.mark.parametrize("argv", [("version",), ("--help",), ("--version",)])
def test_version_and_help_load_neither_the_settings_nor_any_server_part(argv: tuple[str, ...]) -> None:
    loaded = imported_by(*argv)
    assert sorted(loaded & set(HEAVY)) == []
    assert not any(name.startswith("atlas.cli.") and name not in ("atlas.cli.main", "atlas.cli.catalog",
                                                                  "atlas.cli.subcommand", "atlas.cli.version")
                   for name in loaded)


@pytest.mark.parametrize("command", sorted(catalog.SUMMARIES))
def test_no_subcommand_help_loads_the_server_the_queue_or_github(command: str) -> None:
    assert sorted(imported_by(command, "--help") & set(SERVING)) == []


def test_the_help_lists_every_subcommand_with_the_summary_its_module_declares(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main.main(["--help"])
    listing = " ".join(capsys.readouterr().out.split())
    for name, summary in catalog.SUMMARIES.items():
        subcommand = main.load_subcommand(name)
        assert (subcommand.name, subcommand.summary) == (name, summary)
        assert f"{name} {summary}" in listing
