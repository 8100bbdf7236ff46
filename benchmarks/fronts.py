"""Other HTTP servers for atlas's app, to compare the front `atlas server` ships with.

    python benchmarks/fronts.py gthread[:THREADS]|waitress [any atlas server flag]

`gthread` is gunicorn's threaded worker as atlas used it before (8 threads, keep-alive 2 s;
`gthread:256` gives it 256 threads);
`waitress` is stock waitress (8 threads, its default limits). Both serve `create_app(settings)`
with the settings `atlas server` would read. Not a product entry point: `atlas server` is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from atlas import startup
from atlas.app import create_app
from atlas.cli import subcommand
from atlas.config.settings import Settings

THREADS = 8


class GthreadServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, threads: int) -> None:
        self.settings = settings
        self.threads = threads
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": [f"0.0.0.0:{self.settings.port}"], "workers": 1, "worker_class": "gthread",
            "threads": self.threads, "timeout": 60, "control_socket_disable": True, "loglevel": "warning",
        }
        for name, value in options.items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)

    def load(self) -> Any:
        return create_app(self.settings)


def main() -> None:
    front, argv = sys.argv[1], sys.argv[2:]
    parser = subcommand.ArgumentParser(prog="fronts.py")
    subcommand.add_settings_arguments(parser)
    settings = subcommand.settings_from_args(parser.parse_args(argv))
    startup.prepare_process(settings)
    if front.startswith("gthread"):
        GthreadServer(settings, int(front.partition(":")[2] or THREADS)).run()
    elif front == "waitress":
        import waitress

        waitress.serve(create_app(settings), host="0.0.0.0", port=settings.port, threads=THREADS)
    else:
        raise SystemExit(f"unknown front {front!r}: gthread, gthread:THREADS or waitress")


if __name__ == "__main__":
    main()
