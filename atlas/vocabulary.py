"""The command vocabulary: every command atlas runs, declared once.

Each `CommandSpec` says how a comment spells the command, what arguments it takes, whether it
runs the pull request's code, and which workflow stage it runs. The comment parser, the usage
comment, settings validation (`--allow-commands`) and dispatch (`atlas.commands.dispatch`, which
pairs each spec with its runner) all read `SPECS`, so a new command is one entry here and one
runner there.
"""

from __future__ import annotations

from dataclasses import dataclass

from atlas.models import CommandName


@dataclass(frozen=True)
class Flag:
    """A flag of atlas's own (before `--`), with how the usage text describes it."""

    short: str | None
    long: str
    metavar: str | None
    description: str

    @property
    def spellings(self) -> tuple[str, ...]:
        return (f"-{self.short}", f"--{self.long}") if self.short else (f"--{self.long}",)

    @property
    def synopsis(self) -> str:
        """`-d, --dir DIR`, as the usage text lists it."""
        names = ", ".join(self.spellings)
        return f"{names} {self.metavar}" if self.metavar else names


FLAGS: dict[str, Flag] = {
    "dir": Flag("d", "dir", "DIR", "The project in directory DIR, relative to the repository root."),
    "workspace": Flag("w", "workspace", "WORKSPACE", "The project's Terraform workspace (default: default)."),
    "project": Flag("p", "project", "PROJECT", "The project named PROJECT in the repo config (instead of -d, -w)."),
    "verbose": Flag(None, "verbose", None, "Add atlas's log of the run to the comment."),
    "clear_policy_approval": Flag(None, "clear-policy-approval", None,
                                  "Withdraw your approvals of failing policy sets instead of giving them."),
}
"""atlas's flags by name; a command lists the names it accepts."""


RUN_FLAGS = ("dir", "workspace", "project", "verbose")
"""The flags of the commands that run terraform on a project (names of the parser's `FLAGS`)."""


@dataclass(frozen=True)
class CommandSpec:
    """One command: its comment spelling, its argument rules, and what running it involves."""

    name: CommandName
    spelling: str | None = None
    """How a comment spells it (`state rm`), and how --allow-commands names it; None when no comment asks
    for it (autoplan, cleanup and refuse come from events)."""
    summary: str = ""
    flags: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()
    """Metavars of the required arguments, in order: ("ADDRESS", "ID")."""
    variadic: bool = False
    """The last positional may repeat (`state rm ADDRESS...`)."""
    extra_args: bool = False
    """Whether arguments after `--` are accepted and passed to terraform."""
    example: str = ""
    """Arguments of an example use, after the command's words."""
    runs_pull_request_code: bool = False
    """Whether it executes the pull request's code (terraform with its configuration)."""
    stage: str | None = None
    """The workflow's stage it runs (the attribute of `config.workflow.Workflow`), if any."""
    always_allowed: bool = False
    """No server configuration can turn it off, as in Atlantis."""

    @property
    def words(self) -> list[str]:
        return self.spelling.split() if self.spelling else []

    @property
    def takes_nothing(self) -> bool:
        return not (self.flags or self.positional or self.extra_args)

    @property
    def arguments(self) -> str:
        """The positional part of the synopsis: `ADDRESS ID`, `ADDRESS...`."""
        return " ".join(self.positional) + ("..." if self.variadic else "")


# Comment commands first, in the order of the usage text and of "Allowed commands" lists.
SPECS: tuple[CommandSpec, ...] = (
    CommandSpec(
        CommandName.PLAN, "plan", "Plan the projects this pull request changes, or the one the flags select.",
        RUN_FLAGS, extra_args=True, example="-d app -w staging", runs_pull_request_code=True, stage="plan"),
    CommandSpec(
        CommandName.APPLY, "apply", "Apply this pull request's plans, or only the one the flags select.",
        RUN_FLAGS, extra_args=True, example="-p prod", runs_pull_request_code=True, stage="apply"),
    CommandSpec(CommandName.UNLOCK, "unlock", "Delete this pull request's plans and release its locks."),
    CommandSpec(CommandName.CANCEL, "cancel", "Stop this pull request's queued and running commands."),
    CommandSpec(
        CommandName.IMPORT, "import", "Import an existing object into Terraform state.",
        RUN_FLAGS, ("ADDRESS", "ID"), extra_args=True, example="-d app aws_s3_bucket.logs my-logs-bucket",
        runs_pull_request_code=True, stage="import_"),
    CommandSpec(
        CommandName.STATE_RM, "state rm", "Remove objects from Terraform state, without destroying them.",
        RUN_FLAGS, ("ADDRESS",), variadic=True, extra_args=True, example="-d app aws_s3_bucket.logs",
        runs_pull_request_code=True, stage="state_rm"),
    CommandSpec(
        CommandName.APPROVE_POLICIES, "approve_policies",
        "As an owner, approve the failing policy sets of this pull request's projects (or the one the flags "
        "select); --clear-policy-approval withdraws your approvals.",
        ("dir", "workspace", "project", "clear_policy_approval"), example="-p prod"),
    CommandSpec(CommandName.HELP, "help", "Show this help.", always_allowed=True),
    CommandSpec(CommandName.VERSION, "version", "Show the versions of atlas and Terraform.", always_allowed=True),
    CommandSpec(CommandName.AUTOPLAN, runs_pull_request_code=True, stage="plan"),
    CommandSpec(CommandName.CLEANUP),
    CommandSpec(CommandName.REFUSE),
    CommandSpec(CommandName.DRIFT),
)

BY_NAME: dict[CommandName, CommandSpec] = {spec.name: spec for spec in SPECS}

COMMENT_COMMANDS: dict[CommandName, CommandSpec] = {spec.name: spec for spec in SPECS if spec.spelling}
"""The commands a comment can ask for, in usage order."""

KNOWN_COMMANDS: tuple[str, ...] = tuple(spec.spelling for spec in COMMENT_COMMANDS.values() if spec.spelling)
"""Every comment command's spelling; --allow-commands picks from these."""

ALWAYS_ALLOWED = frozenset(spec.name for spec in SPECS if spec.always_allowed)

RUNS_PULL_REQUEST_CODE = frozenset(spec.name for spec in SPECS if spec.runs_pull_request_code)
"""Commands that execute the pull request's code (terraform with its configuration)."""

assert set(BY_NAME) == set(CommandName), "every CommandName has its spec"


def spelling(name: CommandName) -> str:
    """How a comment spells a command (its name for commands no comment asks for)."""
    return BY_NAME[name].spelling or name.value
