"""A project's saved plan judged by the policy sets its `policy_check` stage selects.

Shared by the pull request's policy check (`commands.policy_check`) and drift remediation: the input
is `terraform show -json` of the saved plan, evaluated in-process. It fails closed: a stage atlas
cannot run, or a plan it cannot show, is an error result for every set, never a pass.
"""

from __future__ import annotations

from pathlib import Path

from atlas.config.server import ProjectSettings
from atlas.config.workflow import StepName
from atlas.policy.engine import PolicySetCache, evaluate_policy_sets
from atlas.policy.results import PolicyOutcome, PolicyProblem, PolicySetResult
from atlas.policy.sets import PolicyConfigError, PolicySet, PolicySets, namespaces_from_extra_args
from atlas.runtime.joblog import JobLog
from atlas.runtime.plans import show_json
from atlas.runtime.terraform import TerraformRunner


def evaluate_plan(policies: PolicySets, settings: ProjectSettings, runner: TerraformRunner, workdir: Path,
                  planfile: Path, joblog: JobLog, cache: PolicySetCache) -> list[PolicySetResult]:
    """Every policy set's verdict on the project's saved plan."""
    project = settings.project
    joblog.section(f"policy check {project.dir}/{project.workspace}")
    try:
        policy_sets = sets_for_project(policies, settings)
    except PolicyConfigError as error:
        return [error_result(s, "; ".join(error.problems)) for s in policies.policy_sets]
    try:
        document = show_json(runner, workdir, project, planfile, joblog)
    except Exception as error:  # fail closed: a plan atlas cannot show is not a plan that passed
        return [error_result(s, f"terraform show -json of the saved plan failed: {error}")
                for s in policies.policy_sets]
    return evaluate_policy_sets(policy_sets, document, cache=cache)


def sets_for_project(policies: PolicySets, settings: ProjectSettings) -> list[PolicySet]:
    """The policy sets as the project's `policy_check` step selects their namespaces (`extra_args`)."""
    stage = settings.workflow.policy_check
    steps = [step for step in stage.steps if step.name is StepName.POLICY_CHECK]
    others = [step.name.value for step in stage.steps if step.name not in (StepName.POLICY_CHECK, StepName.SHOW)]
    if others:
        raise PolicyConfigError([
            f"the workflow's policy_check stage has {', '.join(others)} step(s): atlas evaluates policies "
            "in-process and runs only `show` and `policy_check` steps there"])
    extra_args: list[str] = [arg for step in steps for arg in step.extra_args]
    selected = []
    for policy_set in policies.policy_sets:
        namespaces = namespaces_from_extra_args(extra_args, default=policy_set.namespaces)
        # None (`--all-namespaces`) reaches the engine as "every package the files declare".
        selected.append(policy_set.model_copy(update={"namespaces": namespaces}))
    return selected


def error_result(policy_set: PolicySet, message: str) -> PolicySetResult:
    return PolicySetResult(policy_set=policy_set.name, directory=policy_set.path, outcome=PolicyOutcome.ERROR,
                           errors=(PolicyProblem(message=message),))
