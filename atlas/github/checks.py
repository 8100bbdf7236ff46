"""GitHub check runs, one per project and command, and the check events that ask atlas to run again.

A project's check run is named like its commit status (`atlas/plan: DIR/WORKSPACE`, or the
project's name) and carries its identity in `external_id`, so that a `check_run` event names the
project unambiguously whatever its directory contains. `CheckRuns` creates and updates runs
through PyGithub within GitHub's limits (65,535 characters of summary and text, 50 annotations per
request, three action buttons); `parse_check_event` turns `check_run` `rerequested` /
`requested_action` and `check_suite` `rerequested` deliveries into the `CheckRequest` atlas runs,
or says why a delivery asks for nothing.

Over 500 lines on purpose: check runs, their output limits, annotations and the check events that
come back are GitHub's one Checks API, kept together as its documentation is.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode

import requests
from github import Github, GithubException
from github.CheckRun import CheckRun as GithubCheckRun

from atlas.github.errors import describe
from atlas.github.ratelimit import WriteBudget
from atlas.vcs import VCSError

T = TypeVar("T")

NAME_PREFIX = "atlas"
"""Check run names start `atlas/<command>: `, as atlas's commit status contexts do."""
OUTPUT_MAX_CHARS = 65535
"""GitHub's limit on a check run's output summary and on its text."""
ANNOTATIONS_PER_REQUEST = 50
"""GitHub takes at most 50 annotations per create or update; more are sent in further updates."""
ANNOTATION_MESSAGE_MAX_CHARS = 64 * 1024
ACTIONS_MAX = 3
ACTION_LABEL_MAX = 20
ACTION_DESCRIPTION_MAX = 40
ACTION_IDENTIFIER_MAX = 20
EXTERNAL_ID_VERSION = "1"
"""Marks an `external_id` atlas wrote (`atlas=1&command=…&dir=…&workspace=…[&project=…]`)."""

PLAN, APPLY, POLICY_CHECK = "plan", "apply", "policy_check"
CHECK_COMMANDS = (PLAN, APPLY, POLICY_CHECK)


class CheckStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class CheckConclusion(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    ACTION_REQUIRED = "action_required"


class AnnotationLevel(StrEnum):
    NOTICE = "notice"
    WARNING = "warning"
    FAILURE = "failure"


# What a check run shows


@dataclass(frozen=True)
class CheckAction:
    """A button on a check run; pressing it sends `check_run` `requested_action` with `identifier`."""

    label: str
    description: str
    identifier: str

    def __post_init__(self) -> None:
        for name, value, limit in (
            ("label", self.label, ACTION_LABEL_MAX),
            ("description", self.description, ACTION_DESCRIPTION_MAX),
            ("identifier", self.identifier, ACTION_IDENTIFIER_MAX),
        ):
            if not value or len(value) > limit:
                raise ValueError(f"a check run action's {name} must be 1 to {limit} characters, not {value!r}")

    def as_api(self) -> dict[str, str]:
        return {"label": self.label, "description": self.description, "identifier": self.identifier}


APPLY_ACTION = CheckAction(label="Apply", description="Apply this plan, as atlas apply would", identifier=APPLY)
"""The button on a successful plan's check run."""


@dataclass(frozen=True)
class Annotation:
    """A note on a file's lines (`path` relative to the repository root)."""

    path: str
    start_line: int
    end_line: int
    level: AnnotationLevel
    message: str
    title: str | None = None
    raw_details: str | None = None
    start_column: int | None = None
    end_column: int | None = None

    def as_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": max(self.end_line, self.start_line),
            "annotation_level": AnnotationLevel(self.level).value,
            "message": self.message[:ANNOTATION_MESSAGE_MAX_CHARS],
        }
        if self.title:
            body["title"] = self.title[:255]
        if self.raw_details:
            body["raw_details"] = self.raw_details[:ANNOTATION_MESSAGE_MAX_CHARS]
        # GitHub accepts columns only on a one-line annotation.
        if self.start_line == self.end_line and self.start_column is not None and self.end_column is not None:
            body["start_column"], body["end_column"] = self.start_column, self.end_column
        return body


@dataclass(frozen=True)
class CheckOutput:
    """What the check run's page shows: a title, a summary, the text, and annotations."""

    title: str
    summary: str
    text: str | None = None
    annotations: tuple[Annotation, ...] = ()

    def as_api(self, annotations: Sequence[Annotation] = ()) -> dict[str, Any]:
        body: dict[str, Any] = {"title": self.title, "summary": fit_text(self.summary)}
        if self.text is not None:
            body["text"] = fit_text(self.text)
        if annotations:
            body["annotations"] = [a.as_api() for a in annotations]
        return body


def fit_text(text: str, limit: int = OUTPUT_MAX_CHARS, job_url: str | None = None) -> str:
    """`text` within `limit` characters: cut at a line, with a line saying where the rest is."""
    if len(text) <= limit:
        return text
    lines = text.count("\n") + 1

    def pointer(kept: str) -> str:
        dropped = lines - (kept.count("\n") + 1 if kept else 0)
        where = f": the full output is on the job page, {job_url}" if job_url else ""
        return f"\n\n… {dropped} more line{'s' if dropped != 1 else ''} not shown{where}"

    # Reserve room for the pointer with the most digits it can need, then cut at the last newline.
    budget = max(limit - len(pointer("")) - 8, 0)
    cut = text.rfind("\n", 0, budget + 1)
    kept = text[:cut] if cut > 0 else text[:budget]
    return kept + pointer(kept)


def fenced(body: str, language: str = "diff", limit: int = OUTPUT_MAX_CHARS, job_url: str | None = None) -> str:
    """`body` as a Markdown code block within `limit`, cut inside the fence so the fence stays closed.

    The fence is longer than any run of backticks in `body`, so nothing in it can close the block.
    """
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    opening, closing = f"{fence}{language}\n", f"\n{fence}"
    inner = body.rstrip("\n")
    room = limit - len(opening) - len(closing)
    if len(inner) <= room:
        return opening + inner + closing
    # The pointer goes after the block, where it renders as text.
    cut = fit_text(inner, room, job_url)
    kept, _, note = cut.rpartition("\n\n… ")
    return opening + kept + closing + ("\n\n… " + note if note else "")


# Which project a check run is


@dataclass(frozen=True)
class ProjectCheck:
    """The command and project a check run reports on."""

    command: str
    dir: str
    workspace: str = "default"
    project_name: str | None = None

    def __post_init__(self) -> None:
        if self.command not in CHECK_COMMANDS:
            raise ValueError(f"check runs are for {', '.join(CHECK_COMMANDS)}, not {self.command!r}")

    @property
    def name(self) -> str:
        """`atlas/plan: DIR/WORKSPACE` (or the project's name), as the project's commit status."""
        label = self.project_name or f"{self.dir}/{self.workspace}"
        return f"{NAME_PREFIX}/{self.command}: {label}"

    @property
    def external_id(self) -> str:
        fields = {"atlas": EXTERNAL_ID_VERSION, "command": self.command, "dir": self.dir, "workspace": self.workspace}
        if self.project_name:
            fields["project"] = self.project_name
        return urlencode(fields)

    @classmethod
    def from_external_id(cls, external_id: str | None) -> ProjectCheck | None:
        """The project of an `external_id` atlas wrote; None for anything else."""
        if not external_id:
            return None
        fields = {key: values[0] for key, values in parse_qs(external_id, keep_blank_values=True).items()}
        if fields.get("atlas") != EXTERNAL_ID_VERSION or fields.get("command") not in CHECK_COMMANDS:
            return None
        if "dir" not in fields:
            return None
        return cls(
            command=fields["command"],
            dir=fields["dir"],
            workspace=fields.get("workspace") or "default",
            project_name=fields.get("project") or None,
        )

    def with_command(self, command: str) -> ProjectCheck:
        return replace(self, command=command)


# Talking to GitHub


@dataclass(frozen=True)
class CheckRunView:
    """A check run as GitHub reports it."""

    id: int
    name: str
    head_sha: str
    status: CheckStatus
    conclusion: CheckConclusion | None
    external_id: str
    html_url: str
    details_url: str | None
    title: str | None
    summary: str | None
    project: ProjectCheck | None = field(default=None)

    @classmethod
    def from_api(cls, run: GithubCheckRun) -> CheckRunView:
        output = run.output
        return cls(
            id=int(run.id),
            name=str(run.name),
            head_sha=str(run.head_sha),
            status=CheckStatus(run.status),
            conclusion=CheckConclusion(run.conclusion) if run.conclusion else None,
            external_id=str(run.external_id or ""),
            html_url=str(run.html_url),
            details_url=run.details_url,
            title=output.title if output is not None else None,
            summary=output.summary if output is not None else None,
            project=ProjectCheck.from_external_id(run.external_id),
        )


class CheckRuns:
    """Creates, updates and reads atlas's check runs, as a GitHub App installation.

    `github` is a PyGithub client authenticated as the installation (`GitHubApp.github(id)`);
    `call`, when given, runs each request (`lambda f: app.call(installation, f)` replaces a token
    GitHub refuses and retries once). Every failure leaves as `VCSError` with GitHub's reason.
    """

    def __init__(
        self,
        github: Github,
        *,
        write_budget: WriteBudget | None = None,
        call: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        # Lazy objects are built from URLs without a GET; a request is made only when data is read.
        self._github = github.withLazy(True)
        self._budget = write_budget
        self._call = call or (lambda action: action())

    def create(
        self,
        repo_full_name: str,
        check: ProjectCheck,
        head_sha: str,
        *,
        status: CheckStatus = CheckStatus.QUEUED,
        details_url: str | None = None,
        output: CheckOutput | None = None,
        actions: Sequence[CheckAction] = (),
    ) -> CheckRunView:
        """A new check run for the project on `head_sha` (`queued` when the job is queued)."""
        _check_actions(actions)
        fields: dict[str, Any] = {"external_id": check.external_id, "status": CheckStatus(status).value}
        if details_url:
            fields["details_url"] = details_url
        batches = _batches(output.annotations if output else ())
        if output is not None:
            fields["output"] = output.as_api(batches[0])
        if actions:
            fields["actions"] = [a.as_api() for a in actions]

        def create() -> GithubCheckRun:
            self._write()
            repo = self._github.get_repo(repo_full_name)
            return repo.create_check_run(name=check.name, head_sha=head_sha, **fields)

        run = self._request(f"creating check run {check.name} on {repo_full_name}@{head_sha[:12]}", create)
        if output is not None:
            self._send_annotations(repo_full_name, run, output, batches[1:])
        return CheckRunView.from_api(run)

    def start(self, repo_full_name: str, run_id: int, details_url: str | None = None) -> CheckRunView:
        """Mark the run `in_progress`, linking the job page."""
        return self.update(repo_full_name, run_id, status=CheckStatus.IN_PROGRESS, details_url=details_url)

    def complete(
        self,
        repo_full_name: str,
        run_id: int,
        conclusion: CheckConclusion,
        output: CheckOutput,
        *,
        actions: Sequence[CheckAction] = (),
        details_url: str | None = None,
    ) -> CheckRunView:
        """Complete the run with its conclusion and output; annotations past 50 follow in updates.

        `actions` replace the run's buttons: none removes them (e.g. the Apply button once applied).
        """
        return self.update(
            repo_full_name, run_id, status=CheckStatus.COMPLETED, conclusion=conclusion, output=output,
            actions=actions, details_url=details_url,
        )

    def update(
        self,
        repo_full_name: str,
        run_id: int,
        *,
        status: CheckStatus | None = None,
        conclusion: CheckConclusion | None = None,
        output: CheckOutput | None = None,
        actions: Sequence[CheckAction] | None = None,
        details_url: str | None = None,
    ) -> CheckRunView:
        if actions is not None:
            _check_actions(actions)
        fields: dict[str, Any] = {}
        if status is not None:
            fields["status"] = CheckStatus(status).value
        if conclusion is not None:
            fields["conclusion"] = CheckConclusion(conclusion).value
        if details_url:
            fields["details_url"] = details_url
        batches = _batches(output.annotations if output else ())
        if output is not None:
            fields["output"] = output.as_api(batches[0])
        if actions is not None:
            fields["actions"] = [a.as_api() for a in actions]
        what = f"updating check run {run_id} on {repo_full_name}"
        run = self._run(repo_full_name, run_id)

        def edit() -> GithubCheckRun:
            self._write()
            run.edit(**fields)
            return run

        self._request(what, edit)
        if output is not None:
            self._send_annotations(repo_full_name, run, output, batches[1:])
        return CheckRunView.from_api(run)

    def get(self, repo_full_name: str, run_id: int) -> CheckRunView:
        def read() -> CheckRunView:
            return CheckRunView.from_api(self._run(repo_full_name, run_id))

        view: CheckRunView = self._request(f"reading check run {run_id} on {repo_full_name}", read)
        return view

    def for_ref(self, repo_full_name: str, ref: str, check_name: str | None = None, *,
                every: bool = False) -> list[CheckRunView]:
        """The latest check run of each name on `ref` (a sha or branch), atlas's and others'; with
        `every`, the earlier runs of each name too."""

        def read() -> list[CheckRunView]:
            commit = self._github.get_repo(repo_full_name).get_commit(ref)
            which: dict[str, str] = {"filter": "all"} if every else {}
            if check_name:
                which["check_name"] = check_name
            return [CheckRunView.from_api(run) for run in commit.get_check_runs(**which)]

        views: list[CheckRunView] = self._request(f"listing check runs of {repo_full_name}@{ref}", read)
        return views

    def _run(self, repo_full_name: str, run_id: int) -> GithubCheckRun:
        # Lazy: an update needs only the run's URL, and reading it fetches it.
        return self._github.get_repo(repo_full_name).get_check_run(run_id)

    def _send_annotations(
        self, repo_full_name: str, run: GithubCheckRun, output: CheckOutput, batches: Sequence[Sequence[Annotation]]
    ) -> None:
        for number, batch in enumerate(batches, start=2):
            if not batch:
                continue
            body = output.as_api(batch)

            def send(body: dict[str, Any] = body) -> None:
                self._write()
                run.edit(output=body)

            self._request(f"adding annotations (batch {number}) to check run {run.id} on {repo_full_name}", send)

    def _write(self) -> None:
        if self._budget is not None:
            self._budget.acquire()

    def _request(self, what: str, action: Callable[[], T]) -> T:
        try:
            result: T = self._call(action)
            return result
        except GithubException as error:
            raise VCSError(describe(what, error)) from error
        except requests.RequestException as error:
            raise VCSError(f"GitHub {what} failed: {type(error).__name__}") from error


def _check_actions(actions: Sequence[CheckAction]) -> None:
    if len(actions) > ACTIONS_MAX:
        raise ValueError(f"a check run has at most {ACTIONS_MAX} actions, not {len(actions)}")


def _batches(annotations: Sequence[Annotation]) -> list[Sequence[Annotation]]:
    """The annotations in GitHub's batches of 50; one empty batch when there are none."""
    if not annotations:
        return [()]
    return [annotations[i : i + ANNOTATIONS_PER_REQUEST] for i in range(0, len(annotations), ANNOTATIONS_PER_REQUEST)]


# Terraform's diagnostics as annotations


def annotations_from_diagnostics(diagnostics: Iterable[Mapping[str, Any]], project_dir: str) -> list[Annotation]:
    """Annotations for terraform's `-json` diagnostics that name a file and line in the repository.

    `project_dir` is the directory terraform ran in, relative to the repository root; diagnostics
    without a range, or naming a file outside the repository, have nowhere to go and are left out
    (they are in the run's text all the same).
    """
    found: list[Annotation] = []
    for diagnostic in diagnostics:
        where = diagnostic.get("range")
        if not isinstance(where, Mapping) or not isinstance(where.get("filename"), str):
            continue
        start, end = where.get("start") or {}, where.get("end") or {}
        line = start.get("line") if isinstance(start, Mapping) else None
        if not isinstance(line, int) or line < 1:
            continue
        end_line: int = end["line"] if isinstance(end, Mapping) and isinstance(end.get("line"), int) else line
        path = posixpath.normpath(posixpath.join(project_dir or ".", where["filename"]))
        if path.startswith("../") or path == ".." or posixpath.isabs(path):
            continue
        summary = str(diagnostic.get("summary") or "terraform reported a problem")
        detail = str(diagnostic.get("detail") or "")
        severity = diagnostic.get("severity")
        found.append(
            Annotation(
                path=path,
                start_line=line,
                end_line=end_line,
                level=AnnotationLevel.FAILURE if severity == "error" else AnnotationLevel.WARNING,
                message=f"{summary}\n\n{detail}".strip() if detail else summary,
                title=summary,
                start_column=start.get("column") if isinstance(start.get("column"), int) else None,
                end_column=end.get("column") if isinstance(end, Mapping) and isinstance(end.get("column"), int)
                else None,
            )
        )
    return found


def diagnostics_from_json_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The diagnostics in terraform's machine-readable output (`plan -json` lines or `validate -json`)."""
    found: list[dict[str, Any]] = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        if message.get("type") == "diagnostic" and isinstance(message.get("diagnostic"), dict):
            found.append(message["diagnostic"])
        elif isinstance(message.get("diagnostics"), list):
            found.extend(d for d in message["diagnostics"] if isinstance(d, dict))
    return found


# Check events


@dataclass(frozen=True)
class CheckRequest:
    """What a check event asks atlas to run: `command` on one project, or on every project of the PRs."""

    command: str
    repo_full_name: str
    head_sha: str
    head_branch: str | None
    pull_numbers: tuple[int, ...]
    """The pull requests GitHub names; empty for a fork's head (find them by `head_sha`)."""
    sender: str
    installation_id: int | None
    project: ProjectCheck | None
    """None: every project of the pull requests (a whole check suite asked again)."""
    check_run_id: int | None
    trigger: str
    """`check_run rerequested`, `check_run requested_action apply`, `check_suite rerequested`."""


@dataclass(frozen=True)
class IgnoredCheckEvent:
    """A well-formed check event that asks atlas for nothing, and why (to log)."""

    reason: str


class CheckEventError(ValueError):
    """A check event atlas cannot read; the message says what is missing (answer 400)."""


def parse_check_event(
    event: str, payload: Mapping[str, Any], *, app_id: int | str | None
) -> CheckRequest | IgnoredCheckEvent:
    """The run a `check_run` or `check_suite` delivery asks for, or why it asks for none.

    `check_run` `rerequested` re-plans the run's project (an apply or policy check run too: what
    runs again is the plan they follow); `requested_action` `apply` applies a successful plan's
    project; `check_suite` `rerequested` re-plans every project of its pull requests. Runs and
    suites of other Apps (`app.id` other than `app_id`) and runs atlas did not create are ignored.
    """
    action = payload.get("action")
    if event not in ("check_run", "check_suite"):
        return IgnoredCheckEvent(f"{event} is not a check event")
    if not isinstance(action, str):
        raise CheckEventError(f"the {event} delivery has no action")
    subject = payload.get(event)
    if not isinstance(subject, Mapping):
        raise CheckEventError(f"the {event} delivery has no {event} object")
    repo = payload.get("repository")
    full_name = repo.get("full_name") if isinstance(repo, Mapping) else None
    if not isinstance(full_name, str) or "/" not in full_name:
        raise CheckEventError(f"the {event} delivery names no repository")
    sender = payload.get("sender")
    login = sender.get("login") if isinstance(sender, Mapping) else None
    if not isinstance(login, str) or not login:
        raise CheckEventError(f"the {event} delivery names no sender")
    head_sha = subject.get("head_sha")
    if not isinstance(head_sha, str) or not re.fullmatch(r"[0-9a-f]{40}", head_sha):
        raise CheckEventError(f"the {event} delivery has no head_sha")
    owner_app = subject.get("app")
    owner_id = owner_app.get("id") if isinstance(owner_app, Mapping) else None
    if app_id is not None and str(owner_id) != str(app_id):
        return IgnoredCheckEvent(f"the {event} belongs to another GitHub App ({owner_id})")
    installation = payload.get("installation")
    installation_id = installation.get("id") if isinstance(installation, Mapping) else None
    suite = subject if event == "check_suite" else subject.get("check_suite")
    head_branch = suite.get("head_branch") if isinstance(suite, Mapping) else None

    def request(command: str, project: ProjectCheck | None, trigger: str) -> CheckRequest:
        return CheckRequest(
            command=command,
            repo_full_name=full_name,
            head_sha=head_sha,
            head_branch=head_branch if isinstance(head_branch, str) else None,
            pull_numbers=_pull_numbers(subject.get("pull_requests")),
            sender=login,
            installation_id=installation_id if isinstance(installation_id, int) else None,
            project=project,
            check_run_id=subject.get("id") if event == "check_run" and isinstance(subject.get("id"), int) else None,
            trigger=trigger,
        )

    if event == "check_suite":
        if action != "rerequested":
            return IgnoredCheckEvent(f"check_suite {action} asks atlas for nothing")
        return request(PLAN, None, "check_suite rerequested")

    if action not in ("rerequested", "requested_action"):
        return IgnoredCheckEvent(f"check_run {action} asks atlas for nothing")
    project = ProjectCheck.from_external_id(subject.get("external_id"))
    if project is None:
        return IgnoredCheckEvent(f"check run {subject.get('name')!r} was not created by atlas")
    if action == "rerequested":
        return request(PLAN, project.with_command(PLAN), "check_run rerequested")
    requested = payload.get("requested_action")
    identifier = requested.get("identifier") if isinstance(requested, Mapping) else None
    if not isinstance(identifier, str):
        raise CheckEventError("the check_run requested_action delivery has no requested_action.identifier")
    if identifier != APPLY_ACTION.identifier:
        return IgnoredCheckEvent(f"atlas has no check run action {identifier!r}")
    if project.command != PLAN:
        return IgnoredCheckEvent(f"Apply was requested on {project.name}, which is not a plan")
    if subject.get("conclusion") != CheckConclusion.SUCCESS.value:
        return IgnoredCheckEvent(f"Apply was requested on {project.name}, whose plan did not succeed")
    return request(APPLY, project.with_command(APPLY), "check_run requested_action apply")


def _pull_numbers(pulls: Any) -> tuple[int, ...]:
    if not isinstance(pulls, list):
        return ()
    numbers = [p.get("number") for p in pulls if isinstance(p, Mapping)]
    return tuple(sorted({n for n in numbers if isinstance(n, int) and not isinstance(n, bool)}))
