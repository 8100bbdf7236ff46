"""The Markdown comments atlas posts on pull requests, rendered from `templates/comments/`.

Rendering is pure: results in, Markdown out. Splitting a body that is too long for one GitHub
comment is here too, because only the renderer knows how to close and reopen what it opened.

An operator may replace any of the templates with a file of the same name in
`--markdown-template-overrides-dir`; an override that fails to render is logged as an error and
the built-in template is used instead, so a broken override never loses a comment.

Over 500 lines on purpose: the template environment, the values the templates are given and the
splitting of long bodies share one set of rules for fences and collapsed sections; apart, each
would have to restate them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined, TemplateSyntaxError

from atlas.models import CommandName, PlanSummary, Project, ProjectResult, ProjectStatus
from atlas.runtime.plan_compare import PlanDifference, attribute_differences, describe_actions, format_value
from atlas.vocabulary import COMMENT_COMMANDS as COMMANDS
from atlas.vocabulary import FLAGS

log = logging.getLogger(__name__)

COMMENT_LIMIT = 65536
"""The longest comment body GitHub accepts, in characters."""

DEFAULT_WORKSPACE = "default"

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Progress lines that tell a reviewer nothing about the change (`aws_s3_bucket.b: Refreshing state...`).
_PROGRESS_LINE = re.compile(
    r"^\S.*: (Refreshing state\.\.\.|Reading\.\.\.|Read complete after \S+)( \[.*\])?$", re.MULTILINE
)
_PLAN_LINE = re.compile(r"^(Plan: .*|No changes\. .*)$", re.MULTILINE)
_PLAN_COUNTS = re.compile(r"(?:(\d+) to import, )?(\d+) to add, (\d+) to change, (\d+) to destroy\.")
_APPLY_LINE = re.compile(r"^Apply complete! Resources: .*$", re.MULTILINE)
_ERROR_LINE = re.compile(r"^(?:[│╷ ]\s*)?Error: (.+)$", re.MULTILINE)
# Terraform's change markers after their indentation: `  + create`, `  ~ update`, `-/+ replace`.
_CHANGE_MARKER = re.compile(r"^( *)(-/\+|\+/-|[-+~])(?= |$)")
_DIFF_SYMBOL = {"+": "+", "-": "-", "~": "!", "-/+": "!", "+/-": "!"}
_BACKTICK_RUN = re.compile(r"`{3,}")


def render_plan_comment(
    results: Sequence[ProjectResult],
    *,
    command_prefix: str = "atlas",
    job_url: str | None = None,
    head_sha: str = "",
) -> str:
    """The comment that reports a plan: one section per project, each with how to apply it."""
    return _render_plan([_PlanSection.of(result) for result in results], [], command_prefix, job_url, head_sha)


def render_changed_plans_comment(
    results: Sequence[ProjectResult],
    *,
    command_prefix: str = "atlas",
    job_url: str | None = None,
    head_sha: str = "",
) -> str | None:
    """The plan comment without the projects whose plan has no changes (`--hide-unchanged-plan-comments`).

    They are still counted in the summary; None when no project is left to show.
    """
    sections = [_PlanSection.of(result) for result in results]
    shown = [section for section in sections if not section.no_changes]
    if not shown:
        return None
    hidden = [section for section in sections if section.no_changes]
    return _render_plan(shown, hidden, command_prefix, job_url, head_sha)


def _render_plan(sections: list[_PlanSection], hidden: list[_PlanSection], command_prefix: str,
                 job_url: str | None, head_sha: str) -> str:
    every = sections + hidden
    return _render(
        "plan.md.j2",
        sections=sections,
        hidden=hidden,
        project_count=len(every),
        changed_count=sum(1 for section in every if section.has_changes),
        failed_count=sum(1 for section in every if section.status is ProjectStatus.FAILED),
        unchanged_count=sum(1 for section in every if section.no_changes),
        other_count=sum(1 for section in every if section.status in _NOT_RUN),
        command_prefix=command_prefix,
        footer=_footer(head_sha, job_url),
    )


def render_apply_comment(
    results: Sequence[ProjectResult],
    *,
    command_prefix: str = "atlas",
    job_url: str | None = None,
    head_sha: str = "",
) -> str:
    """The comment that reports an apply: terraform's result line visible, its output folded."""
    sections = [_ApplySection.of(result) for result in results]
    return _render(
        "apply.md.j2",
        sections=sections,
        succeeded_count=sum(1 for section in sections if section.status is ProjectStatus.SUCCEEDED),
        failed_count=sum(1 for section in sections if section.status is ProjectStatus.FAILED),
        command_prefix=command_prefix,
        footer=_footer(head_sha, job_url),
    )


def render_error_comment(title: str, details: str) -> str:
    """A comment for a command that failed before any project ran (bad config, clone failed …)."""
    details = _clean(details)
    multiline = "\n" in details or "`" in details
    return _render("error.md.j2", title=title, details=details, multiline=multiline)


def render_usage(
    command_prefix: str = "atlas", *, problem: str | None = None, allowed: Sequence[str] | None = None
) -> str:
    """The help comment, shown for `atlas help` and with the problem of a command atlas cannot run.

    Lists the commands of `COMMANDS` (only the `allowed` ones, plus help and version, when given)
    and the flags those commands take.
    """
    specs = [spec for spec in COMMANDS.values() if allowed is None or spec.always_allowed or spec.spelling in allowed]
    commands = [(f"{spec.spelling} {spec.arguments}".rstrip(), spec.summary) for spec in specs]
    with_flags = [spec for spec in specs if spec.flags or spec.extra_args]
    flags = [
        (flag.synopsis, flag.description)
        for name, flag in FLAGS.items()
        if any(name in spec.flags for spec in with_flags)
    ]
    example = next((spec for spec in with_flags if spec.extra_args), None)
    if example is not None:
        flags.append(("-- ARGS...", f"Pass ARGS to terraform: {command_prefix} {example.spelling} -- -var x=1"))
    return _render(
        "usage.md.j2",
        prefix=command_prefix,
        problem=problem,
        commands=commands,
        command_width=max(len(name) for name, _ in commands),
        flags=flags,
        flag_width=max((len(synopsis) for synopsis, _ in flags), default=0),
        flag_commands=", ".join(str(spec.spelling) for spec in with_flags),
        examples=[f"{command_prefix} {spec.spelling} {spec.example}" for spec in with_flags],
    )


def format_diff(output: str) -> str:
    """Terraform's plan text made for a ```diff block: change markers moved to the first column.

    GitHub colours a diff line by its first character, and terraform indents its markers, so
    `  + name` becomes `+   name` and `  ~ name` becomes `!   name` (orange); the rest of the line
    keeps its columns. Other lines that happen to start with a marker get a space in front.
    """
    lines: list[str] = []
    for line in output.split("\n"):
        marker = _CHANGE_MARKER.match(line)
        if marker:
            indent, symbol = marker.groups()
            rest = line[marker.end() :]
            lines.append(_DIFF_SYMBOL[symbol] + indent + " " * (len(symbol) - 1) + rest)
        elif line[:1] in ("+", "-", "!", "<", ">", "@"):
            lines.append(" " + line)
        else:
            lines.append(line)
    return "\n".join(lines)


def fence_for(text: str) -> str:
    """A code fence longer than any run of backticks in text, so the text cannot close it."""
    longest = max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def project_title(project: Project) -> str:
    """How a comment heads a project: dir: `app` workspace: `default`, with its name if it has one."""
    title = f"dir: `{project.dir}` workspace: `{project.workspace}`"
    return f"project: `{project.name}` {title}" if project.name else title


def project_flags(project: Project) -> str:
    """The flags that select a project in a comment command: `-p NAME` or `-d DIR [-w WS]`."""
    if project.name:
        return f"-p {project.name}"
    workspace = f" -w {project.workspace}" if project.workspace != DEFAULT_WORKSPACE else ""
    return f"-d {project.dir}{workspace}"


_NOT_RUN = (ProjectStatus.LOCKED, ProjectStatus.SKIPPED)


@dataclass(frozen=True)
class _PlanSection:
    """One project's part of a plan comment, with everything the template decides on."""

    project: Project
    status: ProjectStatus
    output: str
    summary_line: str | None
    destroy_count: int
    has_changes: bool
    no_changes: bool
    message: str
    flags: str
    tool: str = ""

    @classmethod
    def of(cls, result: ProjectResult) -> _PlanSection:
        output = _clean(result.output)
        summary_line, counts = _plan_summary(result.summary, output)
        succeeded = result.status is ProjectStatus.SUCCEEDED
        no_changes = succeeded and counts is not None and not counts.has_changes
        if result.status is ProjectStatus.FAILED:
            output = output or _clean(result.error or "")
            message = _first_error(output) or _first_line(result.error)
        else:
            message = _sentence(result.error or _default_message(result.status))
        return cls(
            project=result.project,
            status=result.status,
            output=format_diff(output) if succeeded else output,
            summary_line=summary_line,
            destroy_count=counts.destroy if counts else 0,
            has_changes=succeeded and not no_changes,
            no_changes=no_changes,
            message=message,
            flags=project_flags(result.project),
            tool=result.tool,
        )

    @property
    def title(self) -> str:
        return _titled(self.project, self.tool)


@dataclass(frozen=True)
class _ApplySection:
    """One project's part of an apply comment."""

    project: Project
    status: ProjectStatus
    output: str
    result_line: str | None
    message: str
    tool: str = ""

    @classmethod
    def of(cls, result: ProjectResult) -> _ApplySection:
        output = _clean(result.output) or _clean(result.error or "")
        found = _APPLY_LINE.search(output)
        if result.status is ProjectStatus.FAILED:
            message = _first_error(output) or _first_line(result.error)
        elif result.status in _NOT_RUN:
            message = _sentence(result.error or _default_message(result.status))
        else:
            message = ""
        return cls(
            project=result.project,
            status=result.status,
            output=output,
            result_line=found.group() if found else None,
            message=message,
            tool=result.tool,
        )

    @property
    def title(self) -> str:
        return _titled(self.project, self.tool)


def _titled(project: Project, tool: str) -> str:
    """The project's title, naming what ran it when that is not terraform (`… with OpenTofu 1.8.2`)."""
    return f"{project_title(project)} with {tool}" if tool else project_title(project)


def _plan_summary(summary: PlanSummary | None, output: str) -> tuple[str | None, PlanSummary | None]:
    """Terraform's `Plan: …` line and its counts, from the parsed summary or else from the text."""
    if summary is not None:
        return summary.line, summary
    found = _PLAN_LINE.search(output)
    if not found:
        return None, None
    line = found.group()
    counts = _PLAN_COUNTS.search(line)
    if counts is None:
        return line, PlanSummary()
    imported, add, change, destroy = (int(value or 0) for value in counts.groups())
    return line, PlanSummary.model_validate(
        {"add": add, "change": change, "destroy": destroy, "import": imported}
    )


def _first_error(output: str) -> str | None:
    found = _ERROR_LINE.search(output)
    return found.group(1).strip() if found else None


def _first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def _default_message(status: ProjectStatus) -> str:
    if status is ProjectStatus.LOCKED:
        return "This project is locked by another pull request"
    return "This project was skipped"


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _clean(output: str) -> str:
    """Output as a reader wants it: no colour codes, no refresh chatter, no blank edges."""
    output = _ANSI_ESCAPE.sub("", output.replace("\r\n", "\n"))
    output = _PROGRESS_LINE.sub("", output)
    output = re.sub(r"\n{3,}", "\n\n", output)
    return output.strip("\n").rstrip()


def _footer(head_sha: str, job_url: str | None) -> str:
    parts = ["atlas"]
    if head_sha:
        parts.append(f"commit `{head_sha[:7]}`")
    if job_url:
        parts.append(f"[job log]({job_url})")
    return " · ".join(parts)


TEMPLATE_PACKAGE = "atlas"
TEMPLATE_DIR = "templates/comments"


def builtin_template_names() -> list[str]:
    """The names of atlas's comment templates: what an override file must be called to replace one."""
    folder = resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_DIR)
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".j2"))


def _configured(env: Environment) -> Environment:
    env.globals.update(
        fence_for=fence_for,
        ProjectStatus=ProjectStatus,
        CommandName=CommandName,
    )
    return env


def _new_environment(loader: ChoiceLoader | PackageLoader) -> Environment:
    return _configured(Environment(
        loader=loader,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
    ))


@cache
def _environment() -> Environment:
    return _new_environment(PackageLoader(TEMPLATE_PACKAGE, TEMPLATE_DIR))


@cache
def _override_environment(directory: Path) -> Environment:
    """Templates from `directory` first, atlas's own for the names it does not have."""
    return _new_environment(ChoiceLoader([
        FileSystemLoader(str(directory)), PackageLoader(TEMPLATE_PACKAGE, TEMPLATE_DIR),
    ]))


_overrides: Path | None = None


def use_template_overrides(directory: Path | None) -> list[str]:
    """Render comments with the templates in `directory` where it has one of a built-in's name (None: built-ins only).

    Returns what an operator should hear about at start-up: files that replace nothing (Atlantis's
    Go `.tmpl` templates among them) and overrides that do not compile.
    """
    global _overrides
    if directory is not None and not directory.is_dir():
        _overrides = None
        return [f"{directory} is not a directory; atlas uses its built-in comment templates"]
    _overrides = directory
    if directory is None:
        return []
    problems: list[str] = []
    names = builtin_template_names()
    env = _override_environment(directory)
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        if path.name not in names:
            problems.append(
                f"{path} replaces no template: atlas's comment templates are Jinja2 files named "
                f"{', '.join(names)} (Atlantis's Go .tmpl templates are not read)")
            continue
        try:
            env.get_template(path.name)
        except TemplateSyntaxError as error:
            problems.append(f"{path}: line {error.lineno}: {error.message}; atlas will use its built-in {path.name}")
    return problems


def _render(template: str, **context: object) -> str:
    directory = _overrides
    if directory is not None:
        try:
            return _override_environment(directory).get_template(template).render(**context)
        except Exception as error:  # an operator's template may fail in any way; the comment must still go out
            where = f" (line {error.lineno})" if isinstance(error, TemplateSyntaxError) else ""
            log.error("comment template %s from --markdown-template-overrides-dir %s failed to render%s: %s: %s; "
                      "atlas used its built-in template instead", template, directory, where,
                      type(error).__name__, error)
    return _environment().get_template(template).render(**context)


# Splitting a long comment into several.


@dataclass(frozen=True)
class _Open:
    """A construct open at a line: a code fence or a <details> block, and how to close and reopen it."""

    reopen: tuple[str, ...]
    close: str
    fence: str = ""  # the fence's characters, empty for <details>


_FENCE_LINE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_DETAILS_TAG = re.compile(r"<details\b[^>]*>|</details>", re.IGNORECASE)
_SUMMARY = re.compile(r"<summary>(.*?)</summary>", re.IGNORECASE)


def split_comment(body: str, limit: int = COMMENT_LIMIT, *, label: str | None = None) -> list[str]:
    """A body as comments of at most limit characters, numbered `atlas plan output, part 1 of 3`.

    Splits at line boundaries; a code fence or <details> block open at a split is closed at the
    end of one part and reopened at the start of the next; a line too long for a part is cut.
    """
    if len(body) <= limit:
        return [body]
    label = label or _label_for(body)
    header_room = len(_part_header(label, 99_999, 99_999))
    chunks: list[list[str]] = []
    state: tuple[_Open, ...] = ()
    lines: list[str] = []
    size = header_room
    fresh = True  # the part holds nothing of the body yet, only what reopens

    def flush(closing: tuple[_Open, ...]) -> None:
        nonlocal lines, size, fresh
        chunks.append(lines + [opened.close for opened in reversed(closing)])
        lines = [line for opened in closing for line in opened.reopen]
        size = header_room + sum(len(line) + 1 for line in lines)
        fresh = True

    for line in body.split("\n"):
        after = _state_after(state, line)
        while True:
            if size + len(line) + 1 + _closing_size(after) <= limit:
                lines.append(line)
                size += len(line) + 1
                fresh = False
                break
            if not fresh and _fits_alone(line, state, after, header_room, limit):
                flush(state)
                continue
            # Too long for any part: cut it, filling this part first.
            room = limit - size - 1 - _closing_size(state)
            if room < 1 and fresh:
                raise ValueError(f"a comment limit of {limit} characters leaves no room for the body")
            if room > 0:
                lines.append(line[:room])
                line = line[room:]
            flush(state)
        state = after
    chunks.append(lines)
    total = len(chunks)
    return [
        _part_header(label, number, total) + "\n".join(chunk) for number, chunk in enumerate(chunks, start=1)
    ]


TRUNCATION_ROOM = 1000
"""Characters kept free in each part for the notes that say parts were left out."""


def comment_parts(body: str, *, max_comments: int = 0, job_url: str | None = None,
                  limit: int = COMMENT_LIMIT) -> list[str]:
    """A body as the comments to post: split to fit, and at most `max_comments` of them (0: no limit).

    As in Atlantis, what is left out is the beginning: terraform says what matters last. The
    first part posted says so, and the last one says where the whole output is (the job page).
    """
    if max_comments <= 0:
        return split_comment(body, limit)
    parts = split_comment(body, limit - TRUNCATION_ROOM)
    if len(parts) <= max_comments:
        return parts
    dropped = len(parts) - max_comments
    kept = parts[dropped:]
    where = f"on its job page: {job_url}" if job_url else "in its job log on atlas's job page"
    kept[0] = (f"> [!NOTE]\n> The first {dropped} of {len(parts)} parts of this output are not posted "
               f"(--max-comments-per-command {max_comments}).\n\n" + kept[0])
    kept[-1] += f"\n\n---\nThe whole output, with the {dropped} parts left out here, is {where}"
    return kept


def _part_header(label: str, number: int, total: int) -> str:
    return f"**{label}, part {number} of {total}**\n\n"


def _label_for(body: str) -> str:
    if body.startswith("Ran Plan"):
        return "atlas plan output"
    if body.startswith("Ran Apply"):
        return "atlas apply output"
    return "atlas output"


def _fits_alone(
    line: str, before: tuple[_Open, ...], after: tuple[_Open, ...], header_room: int, limit: int
) -> bool:
    """Whether a line fits in a part of its own, after what reopens the blocks open before it."""
    reopen = sum(len(text) + 1 for opened in before for text in opened.reopen)
    return header_room + reopen + len(line) + 1 + _closing_size(after) <= limit


def _closing_size(state: tuple[_Open, ...]) -> int:
    return sum(len(opened.close) + 1 for opened in state)


def _state_after(state: tuple[_Open, ...], line: str) -> tuple[_Open, ...]:
    """The fences and <details> blocks open after a line, given those open before it."""
    fence = _FENCE_LINE.match(line)
    if state and state[-1].fence:
        # Inside a fence only its closing line counts: same character, at least as long, no info.
        if fence is None:
            return state
        chars, opened = fence.group(2), state[-1].fence
        closes = chars[0] == opened[0] and len(chars) >= len(opened) and not fence.group(3).strip()
        return state[:-1] if closes else state
    if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):
        indent, chars = fence.group(1), fence.group(2)
        return (*state, _Open(reopen=(line,), close=indent + chars, fence=chars))
    for tag in _DETAILS_TAG.finditer(line):
        if tag.group().startswith("</"):
            state = state[:-1] if state else state
        else:
            summary = _SUMMARY.search(line, tag.end())
            title = summary.group(1) if summary else "Show Output"
            reopen = (f"<details><summary>{title} (continued)</summary>", "")
            state = (*state, _Open(reopen=reopen, close="</details>"))
    return state


def render_plan_difference(
    project_label: str,
    difference: PlanDifference,
    *,
    command_prefix: str = "atlas",
    base_ref: str = "main",
) -> str:
    """The comment saying atlas did not apply a project after merge: what was reviewed against what would now happen.

    In each ```diff block `-` lines are the reviewed plan and `+` lines the plan after merge, so
    GitHub colours what was approved red and what would happen instead green.
    """
    changed: list[str] = []
    for reviewed, new in difference.changed:
        same_actions = reviewed.actions == new.actions
        lines = [f"  {new.address}" + (f" ({describe_actions(new.actions)})" if same_actions else "")]
        if not same_actions:
            lines += [
                f"-   actions: {describe_actions(reviewed.actions)}",
                f"+   actions: {describe_actions(new.actions)}",
            ]
        for found in attribute_differences(reviewed, new):
            lines += [
                f"-   {found.path_text} = {format_value(found.reviewed)}",
                f"+   {found.path_text} = {format_value(found.new)}",
            ]
        changed.append("\n".join(lines))
    return _render(
        "plan_difference.md.j2",
        label=project_label,
        base_ref=base_ref,
        command_prefix=command_prefix,
        changed="\n\n".join(changed),
        changed_count=len(difference.changed),
        only_new="\n".join(f"+ {change.address}: {describe_actions(change.actions)}" for change in difference.only_new),
        only_new_count=len(difference.only_new),
        only_reviewed="\n".join(
            f"- {change.address}: {describe_actions(change.actions)}" for change in difference.only_reviewed
        ),
        only_reviewed_count=len(difference.only_reviewed),
    )


def render_template(template: str, **context: object) -> str:
    """One of atlas's comment templates, for the comment kinds rendered in modules of their own."""
    return _render(template, **context)


def footer(head_sha: str, job_url: str | None) -> str:
    """The line under every comment: atlas, the commit, the job log."""
    return _footer(head_sha, job_url)
