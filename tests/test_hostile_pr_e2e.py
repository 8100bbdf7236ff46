"""A pull request whose code tries to steal what atlas guards, against a real `atlas server` process.

The server holds its secrets the ways operators give them: the GitHub token in a file
(`--gh-token-file`), the webhook secret in its environment, the API secret on its command line
and the web password in its config file (`--config`). Another pull request is planned first, so its
working copy, saved plan and job log are on disk. Then `terraform-fixtures/hostile` is opened: its
terraform functions (plan), a `local-exec` provisioner (apply) and its workflow's `run` steps try to
read `/proc/<ancestor>/environ` and `cmdline` (plain and base64), list processes, read the data
dir, the database, the other pull request's code and plan, the job logs, the config, repos.yaml and
the token file, and write outside the working copy.

With `--sandbox required` every attempt finds nothing; with `--sandbox off` the same plan does read
the data dir, which shows that the probes are not blind. Either way no secret reaches a comment, a
status, a job page or the log in any encoding a detector here can undo (plain, base64 at any
alignment, URL-encoded, hex).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, unquote_plus

import requests

from tests.atlas_plugin import FIXTURES, WEBHOOK_SECRET

if TYPE_CHECKING:
    from tests.scale_world import AtlasServerProcess, ScaleWorld

REPO = "acme/infra"
API_SECRET = "api-secret-0123456789abcdef"
WEB_USER, WEB_PASSWORD = "operator", "web-password-9876543210"
HOSTILE = FIXTURES / "hostile"
WRITE_TARGETS = (Path("/etc"), Path("/usr"), Path("/"))

pytest_plugins = ["tests.scale_world"]


@dataclass
class HostileWorld:
    world: ScaleWorld
    server: AtlasServerProcess
    data_dir: Path
    config: Path
    repos_yaml: Path
    token_file: Path

    @property
    def secrets(self) -> dict[str, str]:
        return {"GitHub token": self.world.emulator.token, "webhook secret": WEBHOOK_SECRET,
                "API secret": API_SECRET, "web password": WEB_PASSWORD}

    def hostile_files(self, victim_number: int, *, with_workflow: bool = True) -> dict[str, str | None]:
        """The hostile fixture with this server's paths in it, as its author would have worked them out."""
        other = self.data_dir / "repos" / "acme" / "infra" / str(victim_number) / "default"
        other_plan = self.data_dir / "plans" / "acme" / "infra" / str(victim_number) / "app--default.tfplan"
        substitutions = {
            "__STATE_DIR__": str(self.world.state_of(REPO)),
            "__DATA_DIR__": str(self.data_dir),
            # From hostile/ in its working copy (data/repos/acme/infra/N/default/hostile) up to the data dir.
            "__CLIMB__": "../../../../../..",
            "__OTHER_WORKING_COPY__": str(other),
            "__OTHER_PLAN__": str(other_plan),
            "__CONFIG_FILE__": str(self.config),
            "__REPOS_YAML__": str(self.repos_yaml),
            "__TOKEN_FILE__": str(self.token_file),
            "__OUTSIDE_DIR__": str(self.world.root),
        }
        files: dict[str, str | None] = {}
        for path in sorted(HOSTILE.rglob("*")):
            relative = path.relative_to(HOSTILE).as_posix()
            if path.is_dir() or relative == "README.md" or (relative == "atlas.yaml" and not with_workflow):
                continue
            text = path.read_text()
            for placeholder, value in substitutions.items():
                text = text.replace(placeholder, value)
            files[relative] = text
        return files

    def everything_atlas_said(self) -> Iterator[tuple[str, str]]:
        """(where, text) for every comment, status, job page and log line atlas produced."""
        emulator = self.world.emulator
        job_ids: set[str] = set()
        for pull in emulator.repo(REPO).pulls.values():
            for comment in emulator.comments(REPO, pull.number):
                yield f"comment on #{pull.number}", comment["body"]
            for status in emulator.statuses(REPO, pull.head_sha):
                yield f"status {status['context']}", f"{status['description']} {status.get('target_url') or ''}"
                job_ids.update(re.findall(r"/jobs/([0-9a-f]{16})", status.get("target_url") or ""))
        assert job_ids, "the statuses link to job pages"
        for job_id in sorted(job_ids):
            page = requests.get(f"{self.server.url}/jobs/{job_id}", auth=(WEB_USER, WEB_PASSWORD), timeout=30)
            assert page.status_code == 200, page.text
            yield f"job page {job_id}", page.text
        for log in sorted((self.data_dir / "jobs").glob("*.log")):
            yield f"job log {log.name}", log.read_text(errors="replace")
        yield "server log", self.server.log_text()


def hostile_world(world: ScaleWorld, *, sandbox: str) -> HostileWorld:
    root = world.root
    token_file = root / "secrets" / "gh-token"
    token_file.parent.mkdir()
    token_file.write_text(world.emulator.token + "\n")
    config = root / "server.yaml"
    config.write_text(f"web-username: {WEB_USER}\nweb-password: {WEB_PASSWORD}\n")
    repos_yaml = root / "repos.yaml"
    repos_yaml.write_text("repos:\n- id: /.*/\n  allowed_overrides: [workflow]\n  allow_custom_workflows: true\n")
    data_dir = root / "atlas-data"
    world.create_repo(REPO)
    server = world.start_server(
        data_dir=data_dir, sandbox=sandbox,
        extra_args=("--config", str(config), "--repo-config", str(repos_yaml), "--api-secret", API_SECRET),
        env={"ATLAS_GH_TOKEN": None, "ATLAS_GH_TOKEN_FILE": str(token_file)},
    )
    return HostileWorld(world, server, data_dir, config, repos_yaml, token_file)


def plan_victim_then_hostile(hostile: HostileWorld, *, with_workflow: bool = True) -> tuple[int, str]:
    """Plan an ordinary pull request, then open the hostile one; its number and plan comment."""
    world, server = hostile.world, hostile.server
    victim = world.open_pull(REPO, "victim")
    assert server.pull_event(victim).status_code == 202
    assert "Plan: 1 to add" in world.wait_for_comment(victim, "Ran Plan")
    assert list((hostile.data_dir / "jobs").glob("*.log")), "the victim's job log is on disk"
    pull = world.emulator.open_pull(REPO, "hostile", hostile.hostile_files(victim.number, with_workflow=with_workflow),
                                    author="alice")
    assert server.pull_event(pull).status_code == 202
    return pull.number, world.wait_for_comment(pull, "Ran Plan", timeout=120)


def output(comment: str, name: str) -> str:
    """The value an output shows in the plan comment, as terraform prints it: a value, a list, a heredoc."""
    found = re.search(rf"^[+ ]*{name}\s+= (<<-EOT\n.*?^\s*EOT$|.*?(?=^[+ ]*\w+\s+= |\n\n|\Z|^```))", comment,
                      re.MULTILINE | re.DOTALL)
    assert found, f"output {name} is not in the comment:\n{comment}"
    return found.group(1).strip()


def leaks(secret: str, text: str) -> list[str]:
    """How `secret` can be recovered from `text`: plain, URL-encoded, base64 at any alignment, hex."""
    found = []
    data = secret.encode()
    if secret in text:
        found.append("plain")
    if secret in unquote(text) or secret in unquote_plus(text):
        found.append("url-encoded")
    for run in re.findall(r"[A-Za-z0-9+/_-]{8,}={0,2}", text):
        standard = run.replace("-", "+").replace("_", "/").rstrip("=")
        for start in range(4):
            chunk = standard[start:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            try:
                if data in base64.b64decode(chunk, validate=True):
                    found.append("base64")
            except (binascii.Error, ValueError):
                continue
    for run in re.findall(r"[0-9a-fA-F]{16,}", text):
        for start in range(2):
            chunk = run[start:]
            if data in bytes.fromhex(chunk[: len(chunk) - len(chunk) % 2]):
                found.append("hex")
    return found


def assert_no_secret_anywhere(hostile: HostileWorld) -> None:
    problems = [f"the {name} is in the {where} ({', '.join(sorted(set(how)))})"
                for where, text in hostile.everything_atlas_said()
                for name, secret in hostile.secrets.items() if (how := leaks(secret, text))]
    assert not problems, "\n".join(problems)


def test_the_leak_detector_finds_secrets_in_every_encoding_it_claims() -> None:
    secret = "It's a Secret to Everybody"
    for prefix in (b"", b"a", b"ab", b"abc"):
        encoded = base64.b64encode(prefix + secret.encode() + b"tail").decode()
        assert "base64" in leaks(secret, f"value = {encoded}")
        assert "base64" in leaks(secret, f"value = {encoded.replace('+', '-').replace('/', '_')}")
    assert "url-encoded" in leaks(secret, "q=It%27s+a+Secret+to+Everybody")
    assert "hex" in leaks(secret, "x" + secret.encode().hex())
    assert leaks(secret, "nothing here, not even It's a Secret") == []


def test_a_hostile_pull_request_finds_nothing_in_the_sandbox_and_leaks_no_secret(embedded_world: ScaleWorld) -> None:
    hostile = hostile_world(embedded_world, sandbox="required")
    number, plan = plan_victim_then_hostile(hostile)

    # During plan, terraform's functions: it is the only process, and has no ancestor to read.
    assert output(plan, "processes").replace("+", "").split() == ["[", '"1",', "]"]
    assert "unreadable" in output(plan, "ancestor_environ") and "unreadable" in output(plan, "ancestor_cmdline")
    own = f"repos/acme/infra/{number}/default/"
    seen = re.findall(r'"([^"]+)"', output(plan, "data_dir"))
    assert seen and all(path.startswith((own, "plugin-cache/", f"plans/acme/infra/{number}/.hostile--default."))
                        for path in seen), f"only its own working copy, stage and the plugin cache: {seen}"
    assert output(plan, "job_logs") == "[]"
    for name in ("database", "database_by_climbing", "other_pull_request", "other_saved_plan", "config_file",
                 "repos_yaml", "token_file"):
        assert output(plan, name) == '"absent"', f"{name}: {output(plan, name)}"

    # The workflow's run step during plan, then apply: the provisioner and the run step.
    world, server = hostile.world, hostile.server
    pull = world.emulator.pull(REPO, number)
    assert server.comment(pull, "atlas apply").status_code == 202
    applied = world.wait_for_comment(pull, "Ran Apply", timeout=120)
    job_logs = "\n".join(path.read_text() for path in (hostile.data_dir / "jobs").glob("*.log"))
    for stage in ("run-step-plan", "run-step-apply", "local-exec"):
        said = [line.split(f"{stage}: ", 1)[1] for line in job_logs.splitlines() if f"{stage}: " in line]
        assert said and said[-1] == "done", f"the {stage} probe ran to its end:\n{job_logs}"
        processes = next(line for line in said if line.startswith("processes:")).split()[1:]
        assert processes and all(int(pid) < 50 for pid in processes), f"{stage} sees only its sandbox: {processes}"
        facts = "\n".join(said)
        assert "the code of" not in facts and "replicas = 3" not in facts, "not the other pull request's code"
        for refused in ("database", "other pull request", "config file", "repos.yaml", "token file"):
            line = next(line for line in said if line.startswith(f"{refused}:"))
            assert "No such file or directory" in line or line.strip() == f"{refused}:", line
        assert set(next(line for line in said if line.startswith("data dir:")).split()[2:]) <= {
            "plans", "plugin-cache", "repos"}, "only the paths down to its own working copy and stage"
        for target in WRITE_TARGETS:
            assert f"could not write into {target}" in said
            assert not (target / f"written-by-{stage}").exists()
        for target in (hostile.data_dir, world.root):
            assert not (target / f"written-by-{stage}").exists(), f"{stage} wrote into {target}"
        assert "wrote into its private /tmp" in said
    assert not Path("/tmp/written-by-pull-request").exists()
    assert "local-exec" in applied

    assert_no_secret_anywhere(hostile)


def test_without_the_sandbox_the_same_plan_reads_the_data_dir_and_redaction_still_hides_the_secrets(
    embedded_world: ScaleWorld,
) -> None:
    """The probes are not blind: unconfined, they read what the sandbox hides. (Plan only: unconfined, the
    workflow's run steps and the provisioner would write into this machine's /etc.)"""
    hostile = hostile_world(embedded_world, sandbox="off")
    _, plan = plan_victim_then_hostile(hostile, with_workflow=False)

    assert len(output(plan, "processes").split()) > 5, "every process of the host"
    assert output(plan, "database") != '"absent"'
    assert "replicas" in output(plan, "other_pull_request"), "the other pull request's code"
    assert output(plan, "job_logs") != "[]"
    assert f"web-username: {WEB_USER}" in output(plan, "config_file")
    # What held a secret was read, and the secret replaced, in plain text and inside base64 alike.
    assert "web-password: ***" in output(plan, "config_file")
    assert "***" in output(plan, "token_file")
    assert "***" in output(plan, "ancestor_environ") and "***" in output(plan, "ancestor_environ_base64")
    assert "***" in output(plan, "ancestor_cmdline_base64"), "the API secret on the server's command line"

    assert_no_secret_anywhere(hostile)
