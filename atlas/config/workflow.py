"""Validated workflows: what runs, step by step, for each stage of a project's command.

Parsed from `workflows:` in a repo config or a server-side repos.yaml (atlas.config.raw); run by
atlas.runtime.steps. The default workflow equals Atlantis's default.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StepName(StrEnum):
    INIT = "init"
    PLAN = "plan"
    APPLY = "apply"
    SHOW = "show"
    RUN = "run"
    ENV = "env"
    MULTIENV = "multienv"
    IMPORT = "import"
    STATE_RM = "state_rm"
    POLICY_CHECK = "policy_check"


RunOutput = Literal["show", "hide", "strip_refreshing"]


class Step(BaseModel):
    """One step of a stage.

    - built-in terraform steps (init, plan, apply, show, import, state_rm): `extra_args`;
    - `run`: `command` in `shell` with `shell_args`, its output shown, hidden or stripped of
      refresh lines in the comment, with what `filter_regex` patterns (RE2 syntax, as Atlantis
      writes them) match replaced by `<redacted>` there; the job log keeps the full output;
    - `env`: sets `env_name` to `env_value` or to the output of `command` for later steps;
    - `multienv`: `command` prints `KEY=value` pairs (comma- or newline-separated) to set.
    """

    model_config = ConfigDict(frozen=True)

    name: StepName
    extra_args: tuple[str, ...] = ()
    command: str | None = None
    env_name: str | None = None
    env_value: str | None = None
    output: RunOutput = "show"
    filter_regex: tuple[str, ...] = ()
    shell: str = "sh"
    shell_args: tuple[str, ...] = ("-c",)


class Stage(BaseModel):
    model_config = ConfigDict(frozen=True)

    steps: tuple[Step, ...]


def _stage(*names: StepName) -> Stage:
    return Stage(steps=tuple(Step(name=name) for name in names))


class Workflow(BaseModel):
    """The stages of one named workflow; a stage a config leaves out keeps the default steps."""

    model_config = ConfigDict(frozen=True)

    name: str = "default"
    plan: Stage = Field(default_factory=lambda: _stage(StepName.INIT, StepName.PLAN))
    apply: Stage = Field(default_factory=lambda: _stage(StepName.APPLY))
    import_: Stage = Field(default_factory=lambda: _stage(StepName.INIT, StepName.IMPORT))
    state_rm: Stage = Field(default_factory=lambda: _stage(StepName.INIT, StepName.STATE_RM))
    policy_check: Stage = Field(default_factory=lambda: _stage(StepName.SHOW, StepName.POLICY_CHECK))


DEFAULT_WORKFLOW = Workflow()
"""Atlantis's default workflow: plan = init, plan; apply = apply; import = init, import; state_rm = init, state_rm."""
