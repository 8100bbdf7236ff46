"""Pull-request comments → the atlas commands they ask for.

Pure: a comment's text in; out comes the `CommentCommand` it asks for, a `NotForAtlas` for an
ordinary comment, or a `CommentError` whose message the commenter reads when the comment is
addressed to atlas but cannot run. The syntax is Atlantis's, so teams can move over unchanged:

    atlas plan -d app -w staging --verbose -- -var-file=staging.tfvars

Commands and their arguments are declared once, in `atlas.vocabulary`; the parser and the usage
comment both read that table (here `COMMANDS`), and the flags are declared in `FLAGS`.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from atlas.models import CommandName
from atlas.vocabulary import COMMENT_COMMANDS, FLAGS, CommandSpec


@dataclass(frozen=True)
class CommentCommand:
    """A command a comment asks for, with its flags checked and normalised."""

    kind: CommandName
    dir: str | None = None
    """Repo-relative and normalised (`.` for the root); None when `-d` was not given."""
    workspace: str | None = None
    project: str | None = None
    verbose: bool = False
    clear_policy_approval: bool = False
    extra_args: tuple[str, ...] = ()
    """What followed `--`, passed on to terraform."""
    positional: tuple[str, ...] = ()
    """The arguments before `--`: `import`'s ADDRESS ID, `state rm`'s ADDRESS..."""
    prefix: str = "atlas"
    """The word the comment addressed atlas with (`atlas`, or `atlantis` for a migrating team)."""

    @property
    def command_line(self) -> str:
        """The command as one would type it, flags in a fixed order: `atlas plan -d app -- -var x=1`."""
        words = [self.prefix, *COMMANDS[self.kind].words]
        for flag, value in (("-p", self.project), ("-d", self.dir), ("-w", self.workspace)):
            if value is not None:
                words += [flag, value]
        if self.verbose:
            words.append("--verbose")
        if self.clear_policy_approval:
            words.append("--clear-policy-approval")
        words += self.positional
        if self.extra_args:
            words += ["--", *self.extra_args]
        return shlex.join(words)


@dataclass(frozen=True)
class NotForAtlas:
    """A comment that does not address atlas (most comments); atlas stays silent."""

    reason: str


class CommentError(Exception):
    """A comment addressed to atlas that cannot run; `message` says what was wrong and how to fix it.

    `usage` says whether the reply should include the usage text; `prefix` is the word the
    comment used, so that the usage shows the commands as that user types them.
    """

    def __init__(self, message: str, *, usage: bool = False, prefix: str = "atlas") -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage
        self.prefix = prefix


COMMANDS = COMMENT_COMMANDS
"""The comment commands and their argument rules, from the command vocabulary."""


_HELP_FLAGS = ("-h", "--help")
_FLAG_BY_SPELLING = {spelling: name for name, flag in FLAGS.items() for spelling in flag.spellings}
# Terraform's rule for workspace names is `name == url.PathEscape(name)`: these characters only.
_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9_.~$&+:=@-]+")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
# Every Unicode space separates words, as in the comment box a non-breaking space looks like one.
_WHITESPACE = "".join(chr(code) for code in range(0x3001) if chr(code).isspace())
_ECHO_LIMIT = 80
_GO_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_BACKEND_FLAGS = ("backend-config", "backend", "migrate-state", "force-copy")


def parse_comment(
    body: str,
    *,
    prefixes: Sequence[str] = ("atlas",),
    allowed_commands: Sequence[str] | None = None,
    allow_backend_config: bool = False,
) -> CommentCommand | NotForAtlas:
    """The command a pull-request comment asks for, or `NotForAtlas` when it addresses someone else.

    `prefixes` are the words that address atlas (case-sensitive, as in Atlantis); the first is the
    one suggestions use. `allowed_commands` (command spellings, as --allow-commands gives them)
    restricts the commands; help and version are always allowed. Raises `CommentError` when the
    comment is addressed to atlas but is not a command it can run.
    """
    home = prefixes[0] if prefixes else "atlas"
    text = body.strip()
    if not text:
        return NotForAtlas("the comment is empty")
    lines = text.splitlines()
    first_word = lines[0].split(maxsplit=1)[0]
    if first_word not in prefixes:
        # Only a one-line comment is taken for a mistyped command; longer ones are discussion.
        if first_word == "terraform" and len(lines) == 1:
            raise CommentError(_did_you_mean(lines[0], home), usage=True, prefix=home)
        return NotForAtlas(f"the comment does not start with {' or '.join(map(repr, prefixes))}")
    prefix = first_word
    if len(lines) > 1:
        raise CommentError(
            f"A command for {_code(prefix)} must be the whole comment, on one line; this one continues after "
            f"{_code(lines[0].strip())}. Post the command as a comment of its own.",
            prefix=prefix,
        )
    words = _split(lines[0], prefix)
    return _parse_words(words[1:], prefix, allowed_commands, allow_backend_config)


def resolve_dir(repo_root: Path, dir: str) -> Path:
    """The real path of `-d DIR` in a checkout; CommentError if it leaves the repository or is missing.

    `parse_comment` refuses paths that leave the repository by their text; only a checkout can show
    a symbolic link that leads out, so the pipeline calls this once the pull request is checked out.
    """
    relative = _repo_relative_dir(dir, "-d")
    root = repo_root.resolve()
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise CommentError(
            f"{_code(f'-d {relative}')} leads outside the repository through a symbolic link; atlas only runs "
            "in directories inside the repository."
        )
    if not resolved.is_dir():
        what = "is not a directory" if resolved.exists() else "does not exist"
        raise CommentError(
            f"{_code(relative)} {what} in this pull request's head commit. Give `-d` a directory "
            "relative to the repository root, such as `-d app`."
        )
    return resolved


def refused_terraform_flag(argument: str, *, allow_backend_config: bool = False) -> str | None:
    """Why an argument after `--` may not reach terraform, or None when it may.

    These would let a comment take over what atlas controls: where terraform runs (`-chdir`),
    where state and plans are read and written (`-state*`, `-backup`, `-out`), files written or
    read beside the working copy (`-generate-config-out`, import's `-config`, init's `-plugin-dir`
    and `-from-module`), state locking (`-lock=false`; plain `-lock` and `-lock=true` pass) and,
    unless the server allows it, the backend (`-backend-config`, and init's `-backend`,
    `-migrate-state`, `-force-copy`). The flag token decides, so `-flag`, `--flag`, `-flag=value`
    and `-flag value` are all recognised. (`-var-file` is checked against the checkout, where its
    path can be resolved: `atlas.runtime.steps.check_file_arguments`.)
    """
    if not argument.startswith("-"):
        return None
    name, has_value, value = argument.lstrip("-").partition("=")
    if name == "chdir":
        return "atlas runs terraform in the project's directory; choose another project with `-d DIR`."
    if name.startswith("state") or name == "backup":
        return "atlas does not let a comment choose where Terraform state is read or written."
    if name == "out":
        return "atlas saves the plan file itself, so that apply runs exactly what was planned."
    if name == "generate-config-out":
        return ("atlas does not let a comment write files. Generate the configuration locally "
                "(`terraform plan -generate-config-out=FILE`) and commit it.")
    if name == "config":
        return "atlas imports into the project's own configuration; choose the project with `-d DIR` or `-p NAME`."
    if name in ("plugin-dir", "from-module"):
        return "atlas installs providers and modules itself, from the project's own configuration."
    if name == "lock" and has_value and value not in _GO_TRUE:
        return "state locking stays on for every run atlas starts."
    if name in _BACKEND_FLAGS and not allow_backend_config:
        return (
            "this server does not let comments change the Terraform backend "
            "(an administrator can allow it with --allow-backend-config-args)."
        )
    return None


def _parse_words(
    words: list[str], prefix: str, allowed: Sequence[str] | None, allow_backend_config: bool
) -> CommentCommand:
    """The command in the words after the prefix."""
    if not words:
        raise CommentError(f"{_code(prefix)} needs a command, as in {_code(prefix + ' plan')}.", usage=True,
                           prefix=prefix)
    if words[0] in _HELP_FLAGS:
        return CommentCommand(CommandName.HELP, prefix=prefix)
    kind = _command_named(words, prefix, allowed)
    spec = COMMANDS[kind]
    name = f"{prefix} {spec.spelling}"
    if allowed is not None and not _allowed(spec, allowed):
        enabled = ", ".join(str(c.spelling) for c in COMMANDS.values() if _allowed(c, allowed))
        raise CommentError(
            f"{_code(name)} is not enabled on this server. Allowed commands: {enabled}.", prefix=prefix
        )
    rest = words[len(spec.words):]
    before, separator, extra = _split_at_separator(rest)
    if any(word in _HELP_FLAGS for word in before):
        return CommentCommand(CommandName.HELP, prefix=prefix)
    if spec.takes_nothing and rest:
        raise CommentError(
            f"{_code(name)} takes no flags or arguments, but was given {_code(shlex.join(rest))}. "
            f"Comment just {_code(name)}.",
            prefix=prefix,
        )
    if separator and not spec.extra_args:
        raise CommentError(f"{_code(name)} passes no arguments to terraform, so it takes no `--`.", prefix=prefix)

    values, switches, positional = _read_flags(before, spec, name, prefix)
    _check_positional(positional, spec, name, prefix)
    if "project" in values and ("dir" in values or "workspace" in values):
        raise CommentError(
            "Use either `-p PROJECT` or `-d DIR [-w WORKSPACE]`, not both: a project's name already "
            "selects its directory and workspace.",
            prefix=prefix,
        )
    directory = _repo_relative_dir(values["dir"], "-d", prefix) if "dir" in values else None
    workspace = values.get("workspace")
    if workspace is not None:
        _check_workspace(workspace, prefix)
    project = values.get("project")
    if project is not None and _CONTROL_CHARACTER.search(project):
        raise CommentError(f"The project name {_code(project)} contains a control character.", prefix=prefix)
    for argument in extra:
        reason = refused_terraform_flag(argument, allow_backend_config=allow_backend_config)
        if reason:
            raise CommentError(f"{_code(argument)} cannot be passed to terraform: {reason}", prefix=prefix)
    return CommentCommand(
        kind=kind,
        dir=directory,
        workspace=workspace,
        project=project,
        verbose="verbose" in switches,
        clear_policy_approval="clear_policy_approval" in switches,
        extra_args=tuple(extra),
        positional=tuple(positional),
        prefix=prefix,
    )


def _allowed(spec: CommandSpec, allowed: Sequence[str] | None) -> bool:
    return allowed is None or spec.always_allowed or spec.spelling in allowed


def _command_named(words: list[str], prefix: str, allowed: Sequence[str] | None) -> CommandName:
    """The command the first words name (the longest match, for `state rm`), or a CommentError."""
    matches = [spec for spec in COMMANDS.values() if words[: len(spec.words)] == spec.words]
    if matches:
        return max(matches, key=lambda spec: len(spec.words)).name
    word = words[0]
    if word.startswith("-"):
        raise CommentError(
            f"The command comes before its flags, as in {_code(prefix + ' plan -d app')}; "
            f"{_code(word)} is not a command.",
            usage=True,
            prefix=prefix,
        )
    subcommands = [str(spec.spelling) for spec in COMMANDS.values() if spec.words[0] == word]
    if subcommands:
        given = shlex.join(words[:2])
        known = " or ".join(_code(f"{prefix} {sub}") for sub in subcommands)
        raise CommentError(f"{_code(f'{prefix} {given}')} is not a command; did you mean {known}?", usage=True,
                           prefix=prefix)
    choices = [spec.words[0] for spec in COMMANDS.values() if _allowed(spec, allowed)]
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    hint = f" Did you mean {_code(f'{prefix} {close[0]}')}?" if close else ""
    raise CommentError(f"{_code(f'{prefix} {word}')} is not a command.{hint}", usage=True, prefix=prefix)


def _read_flags(
    words: list[str], spec: CommandSpec, name: str, prefix: str
) -> tuple[dict[str, str], set[str], list[str]]:
    """The flag values (by flag name), the flags without values given, and the positional arguments in `words`."""
    values: dict[str, str] = {}
    seen: set[str] = set()
    switches: set[str] = set()
    positional: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        spelling, has_value, inline = word.partition("=")
        flag_name = _FLAG_BY_SPELLING.get(spelling)
        if flag_name is None:
            # The word after an unknown flag is most likely its value, so the suggestion moves both.
            value = words[index] if index < len(words) and not words[index].startswith("-") else None
            raise CommentError(_unknown_flag(word, spelling, spec, name, value), usage=True, prefix=prefix)
        flag = FLAGS[flag_name]
        if flag_name not in spec.flags:
            raise CommentError(f"{_code(name)} does not take {_code(spelling)}.", usage=True, prefix=prefix)
        if flag_name in seen:
            raise CommentError(f"{_code(spelling)} is given twice; give it once.", prefix=prefix)
        seen.add(flag_name)
        if flag.metavar is None:
            if has_value:
                raise CommentError(f"{_code(spelling)} takes no value; write just {_code(spelling)}.",
                                   prefix=prefix)
            switches.add(flag_name)
            continue
        if has_value:
            value = inline
        elif index < len(words) and not words[index].startswith("-"):
            value = words[index]
            index += 1
        else:
            follows = f", but is followed by {_code(words[index])}" if index < len(words) else ""
            raise CommentError(
                f"{_code(spelling)} needs a value{follows}: write {_code(f'{spelling} {flag.metavar}')}.",
                prefix=prefix,
            )
        if not value:
            raise CommentError(
                f"{_code(spelling)} was given an empty value: write {_code(f'{spelling} {flag.metavar}')}.",
                prefix=prefix,
            )
        values[flag_name] = value
    return values, switches, positional


def _unknown_flag(word: str, spelling: str, spec: CommandSpec, name: str, value: str | None) -> str:
    """Why a flag is not atlas's, with the flag it resembles or how to pass it to terraform instead."""
    meant = _meant_flag(spelling, spec)
    if meant:
        return f"{_code(word)} is not a flag of {_code(name)}. Did you mean {_code(meant)}?"
    accepted = [" ".join(filter(None, (FLAGS[flag].spellings[0], FLAGS[flag].metavar))) for flag in spec.flags]
    flags = f"Its flags are {', '.join(accepted)}. " if accepted else ""
    if not spec.extra_args:
        return f"{_code(word)} is not a flag of {_code(name)}. {flags}".rstrip()
    return (
        f"{_code(word)} is not a flag of {_code(name)}. {flags}To pass a flag to terraform, put it after "
        f"`--`, as in {_code(shlex.join([*name.split(), '--', word, *([value] if value else [])]))}."
    )


def _meant_flag(spelling: str, spec: CommandSpec) -> str | None:
    """The flag of `spec` that a wrongly dashed or misspelt flag stands for: `-dir` → `--dir`."""
    typed = spelling.lstrip("-")
    names = {name: FLAGS[name].spellings[-1] for name in spec.flags}
    for name in spec.flags:
        short = FLAGS[name].short
        if short:
            names[short] = f"-{short}"
    if typed in names:
        return names[typed]
    close = difflib.get_close_matches(typed, list(spec.flags), n=1, cutoff=0.8)
    return FLAGS[close[0]].spellings[-1] if close else None


def _check_positional(positional: list[str], spec: CommandSpec, name: str, prefix: str) -> None:
    count, required = len(positional), len(spec.positional)
    if count == required or (spec.variadic and count > required):
        return
    if not spec.positional:
        word = positional[0]
        raise CommentError(
            f"{_code(name)} takes no arguments before `--`, but was given {_code(shlex.join(positional))}. "
            f"To choose a directory, write {_code(f'{name} -d {word}')}; to pass arguments to terraform, "
            "put them after `--`.",
            prefix=prefix,
        )
    given = _code(shlex.join(positional)) if positional else "nothing"
    raise CommentError(
        f"{_code(name)} takes {spec.arguments}, as in {_code(f'{name} {spec.example}')}, but was given {given}.",
        usage=True,
        prefix=prefix,
    )


def _repo_relative_dir(value: str, flag: str, prefix: str = "atlas") -> str:
    """`value` as a normalised path inside the repository (`./app/` → `app`), or a CommentError."""
    shown = _code(f"{flag} {value}")
    fix = f"Give a directory relative to the repository root, such as {_code(flag + ' app')}."
    if _CONTROL_CHARACTER.search(value):
        raise CommentError(f"The directory {_code(value)} contains a control character. {fix}", prefix=prefix)
    if "\\" in value:
        raise CommentError(f"{shown} contains a backslash; separate directories with `/`. {fix}", prefix=prefix)
    if value.startswith("~"):
        raise CommentError(f"{shown} names a home directory, outside the repository. {fix}", prefix=prefix)
    if value.startswith("/"):
        raise CommentError(f"{shown} is an absolute path; atlas only runs inside the repository. {fix}",
                           prefix=prefix)
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise CommentError(f"{shown} leads outside the repository. {fix}", prefix=prefix)
    return normal


def _check_workspace(workspace: str, prefix: str) -> None:
    if _WORKSPACE_NAME.fullmatch(workspace) and ".." not in workspace and workspace != ".":
        return
    raise CommentError(
        f"{_code(workspace)} is not a valid workspace name: Terraform workspace names use letters, digits "
        "and `- _ . ~ $ & + : = @`, without `/`, spaces or `..`.",
        prefix=prefix,
    )


def _split(line: str, prefix: str) -> list[str]:
    """The words of a command line, split like a shell would (quotes group, backslash escapes)."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace = _WHITESPACE
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as error:
        if "quotation" in str(error):
            raise CommentError(
                "The command has a quote that is never closed. Close it, or put a backslash before a quote "
                "meant literally.",
                prefix=prefix,
            ) from None
        raise CommentError(
            "The command ends with a backslash that escapes nothing. Remove it, or put another backslash "
            "before it.",
            prefix=prefix,
        ) from None


def _split_at_separator(words: list[str]) -> tuple[list[str], bool, list[str]]:
    """The words before the first `--`, whether there was one, and the words after it."""
    if "--" not in words:
        return words, False, []
    at = words.index("--")
    return words[:at], True, words[at + 1 :]


def _did_you_mean(line: str, prefix: str) -> str:
    """The reply to a comment that starts with `terraform`: the atlas command it probably meant."""
    words = line.split()
    meant = f"{prefix} plan"
    if len(words) > 1 and any(words[1:][: len(spec.words)] == spec.words for spec in COMMANDS.values()):
        meant = " ".join([prefix, *words[1:]])
    return (
        f"Did you mean {_code(meant)}? atlas runs terraform for you: start the comment with "
        f"{_code(prefix)}, not `terraform`."
    )


def _code(text: str) -> str:
    """Text the user wrote as an inline code span that it cannot break out of, cut if very long."""
    if len(text) > _ECHO_LIMIT:
        text = text[: _ECHO_LIMIT - 1] + "…"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
