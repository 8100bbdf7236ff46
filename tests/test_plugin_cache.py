"""Parallel `terraform init`s never write the shared provider plugin cache at the same time."""

from __future__ import annotations

import multiprocessing
import stat
import threading
from pathlib import Path

import pytest

from atlas.runtime.joblog import JobLog
from atlas.runtime.sandbox import choose_sandbox
from atlas.runtime.terraform import TerraformRunner
from tests.conftest import require_sandbox

# Stands in for terraform: an init that notices when another init is inside the cache with it.
INIT_PROBE = """#!/bin/sh
if [ "$1" = init ]; then
  if ! mkdir "$TF_PLUGIN_CACHE_DIR/writer" 2>/dev/null; then echo OVERLAP >> "$PROBE_LOG"; fi
  sleep 0.2
  rmdir "$TF_PLUGIN_CACHE_DIR/writer" 2>/dev/null
  echo init done >> "$PROBE_LOG"
fi
"""


def probe(tmp_path: Path) -> Path:
    script = tmp_path / "terraform"
    script.write_text(INIT_PROBE)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def _init(binary: str, cache: str, log_dir: str, probe_log: str, index: int, sandbox: str) -> None:
    runner = TerraformRunner(binary, plugin_cache_dir=Path(cache), sandbox=choose_sandbox(sandbox))
    result = runner.run(["init"], Path(log_dir), JobLog(Path(log_dir) / f"job-{index}.log"),
                        env={"PROBE_LOG": probe_log})
    assert result.ok, result.output


@pytest.mark.parametrize("sandbox", ["required", "off"])
def test_inits_sharing_a_plugin_cache_take_turns_across_threads_processes_and_sandboxes(
    tmp_path: Path, sandbox: str
) -> None:
    if sandbox == "required":
        require_sandbox()
    binary, cache, probe_log = str(probe(tmp_path)), tmp_path / "plugin-cache", tmp_path / "probe.log"
    threads = [threading.Thread(target=_init, args=(binary, str(cache), str(tmp_path), str(probe_log), i, sandbox))
               for i in range(4)]
    spawn = multiprocessing.get_context("spawn")  # forking while threads hold locks can deadlock
    processes = [spawn.Process(target=_init, args=(binary, str(cache), str(tmp_path), str(probe_log), i, sandbox))
                 for i in range(4, 7)]
    for worker in [*threads, *processes]:
        worker.start()
    for thread in threads:
        thread.join(30)
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    lines = probe_log.read_text().splitlines()
    assert lines.count("init done") == 7
    assert "OVERLAP" not in lines


def test_plans_do_not_wait_for_the_init_lock(tmp_path: Path) -> None:
    """Only init writes the cache: other commands run beside an init."""
    runner = TerraformRunner(str(probe(tmp_path)), plugin_cache_dir=tmp_path / "cache")
    log = JobLog(tmp_path / "job.log")
    with runner._plugin_cache_lock():
        result = runner.run(["plan"], tmp_path, log, env={"PROBE_LOG": str(tmp_path / "p.log")}, timeout=5)
    assert result.ok
