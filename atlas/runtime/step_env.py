"""What a stage's steps see: the files of the stage, and the environment of `run` steps.

`StageFiles` are the `PLANFILE`, `SHOWFILE` and `POLICYCHECKFILE` of one stage; `StepContext` is what
Atlantis documents for custom run steps (`WORKSPACE`, `PULL_NUM`, …), each with an `ATLAS_` twin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from atlas.models import Project, PullRequest

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class StepContext:
    """What a `run` step's environment is built from: the project, its pull request and who asked."""

    workspace: str
    dir: str
    project_name: str | None = None
    pull_number: int = 0
    pull_author: str = ""
    head_commit: str = ""
    base_branch: str = ""
    head_branch: str = ""
    user_name: str = ""
    comment_args: tuple[str, ...] = ()
    repo_full_name: str = ""
    repo_owner: str = ""
    repo_name: str = ""
    terraform_version: str = ""
    """Empty means the runner's terraform version, asked when a `run` step first needs it."""
    pull_url: str = ""
    head_repo_owner: str = ""
    """Empty means the base repository's (a pull request from a branch of the same repository)."""
    head_repo_name: str = ""
    pull_approved: bool | None = None
    """None when atlas did not look; the variable is then left unset rather than guessed."""
    pull_mergeable: bool | None = None

    @classmethod
    def for_project(cls, project: Project) -> StepContext:
        """A context with no pull request behind it, for stages that run only terraform's own steps."""
        return cls(workspace=project.workspace, dir=project.dir, project_name=project.name)

    @classmethod
    def for_pull(
        cls,
        pull: PullRequest,
        project: Project,
        *,
        user_name: str,
        comment_args: Sequence[str] = (),
        terraform_version: str = "",
        approved: bool | None = None,
        mergeable: bool | None = None,
    ) -> StepContext:
        """The context of `project` planned or applied for `pull` at the request of `user_name`."""
        head_owner, head_name = pull.repo.owner, pull.repo.name
        if pull.is_fork and pull.head_clone_url:
            parts = urlparse(pull.head_clone_url).path.strip("/").removesuffix(".git").split("/")
            if len(parts) >= 2:
                head_owner, head_name = parts[-2], parts[-1]
        return cls(
            workspace=project.workspace,
            dir=project.dir,
            project_name=project.name,
            pull_number=pull.number,
            pull_author=pull.author,
            head_commit=pull.head_sha,
            base_branch=pull.base_ref,
            head_branch=pull.head_ref,
            user_name=user_name,
            comment_args=tuple(comment_args),
            repo_full_name=pull.repo.full_name,
            repo_owner=pull.repo.owner,
            repo_name=pull.repo.name,
            terraform_version=terraform_version,
            pull_url=pull.html_url,
            head_repo_owner=head_owner,
            head_repo_name=head_name,
            pull_approved=approved,
            pull_mergeable=mergeable,
        )


@dataclass(frozen=True)
class StageFiles:
    """Where a stage's files are: the saved plan, its JSON (`SHOWFILE`) and policy output (`POLICYCHECKFILE`)."""

    planfile: Path

    @property
    def showfile(self) -> Path:
        return self.planfile.with_name(f"{self.planfile.stem}.show.json")

    @property
    def policycheckfile(self) -> Path:
        return self.planfile.with_name(f"{self.planfile.stem}.policycheck.json")

    @property
    def all(self) -> tuple[Path, Path, Path]:
        return self.planfile, self.showfile, self.policycheckfile


def run_step_environment(
    context: StepContext, *, command: str, project_dir: Path, files: StageFiles, terraform_version: str
) -> dict[str, str]:
    """The variables Atlantis documents for custom run steps, each also under an `ATLAS_` name."""
    variables = {
        "WORKSPACE": context.workspace,
        "ATLANTIS_TERRAFORM_VERSION": terraform_version,
        "DIR": str(project_dir),
        "PLANFILE": str(files.planfile),
        "SHOWFILE": str(files.showfile),
        "POLICYCHECKFILE": str(files.policycheckfile),
        "BASE_REPO_NAME": context.repo_name,
        "BASE_REPO_OWNER": context.repo_owner,
        "HEAD_REPO_NAME": context.head_repo_name or context.repo_name,
        "HEAD_REPO_OWNER": context.head_repo_owner or context.repo_owner,
        "HEAD_BRANCH_NAME": context.head_branch,
        "HEAD_COMMIT": context.head_commit,
        "BASE_BRANCH_NAME": context.base_branch,
        "PROJECT_NAME": context.project_name or "",
        "PULL_NUM": str(context.pull_number),
        "PULL_URL": context.pull_url,
        "PULL_AUTHOR": context.pull_author,
        "REPO_REL_DIR": context.dir,
        "USER_NAME": context.user_name,
        "COMMENT_ARGS": escape_comment_args(context.comment_args),
        "COMMAND_NAME": command,
    }
    if context.pull_approved is not None:
        variables["ATLANTIS_PR_APPROVED"] = str(context.pull_approved).lower()
    if context.pull_mergeable is not None:
        variables["ATLANTIS_PR_MERGEABLE"] = str(context.pull_mergeable).lower()
    twins = {_atlas_twin(name): value for name, value in variables.items()}
    return {**variables, **twins}


def escape_comment_args(args: Iterable[str]) -> str:
    """`COMMENT_ARGS` as Atlantis writes it: every character backslash-escaped, arguments joined by commas."""
    return ",".join("".join(f"\\{character}" for character in arg) for arg in args)


def parse_multienv(output: str) -> dict[str, str]:
    """The `NAME=value` pairs a multienv command printed, separated by commas or newlines.

    A value may be quoted (`NAME="a,b"`, `NAME='a b'`) to hold separators; in double quotes a
    backslash escapes the next character. Raises ValueError naming the problem, never a value.
    """
    pairs: dict[str, str] = {}
    text = output.strip()
    index = 0
    while index < len(text):
        if text[index] in ",\n\r \t":
            index += 1
            continue
        equals = text.find("=", index)
        name = text[index:equals] if equals >= 0 else ""
        if not _VARIABLE_NAME.fullmatch(name):
            # The text itself is not quoted back: it may be a value, and values are often credentials.
            raise ValueError(f"item {len(pairs) + 1} is not NAME=value")
        value, index = _multienv_value(text, equals + 1, name)
        pairs[name] = value
    return pairs


def _multienv_value(text: str, index: int, name: str) -> tuple[str, int]:
    """The value starting at `index` and the index just after it (and after its separator)."""
    quote = text[index] if index < len(text) and text[index] in "\"'" else ""
    if not quote:
        end = len(text)
        for separator in ",\n":
            found = text.find(separator, index)
            if found >= 0:
                end = min(end, found)
        return text[index:end].strip(), end + 1
    value: list[str] = []
    position = index + 1
    while position < len(text):
        character = text[position]
        if character == quote:
            rest = position + 1
            while rest < len(text) and text[rest] in " \t\r":
                rest += 1
            if rest < len(text) and text[rest] not in ",\n":
                raise ValueError(f"unexpected text after the quoted value of {name}")
            return "".join(value), rest + 1
        if character == "\\" and quote == '"' and position + 1 < len(text):
            position += 1
            character = text[position]
        value.append(character)
        position += 1
    raise ValueError(f"the value of {name} has no closing quote")


def _atlas_twin(name: str) -> str:
    return f"ATLAS_{name.removeprefix('ATLANTIS_')}"
