"""The value types of the raw config models: each checks one kind of value as written and says what is wrong.

Texts, flags, whole numbers, choices, regexes, repository ids, terraform versions, project names and
directories, apply-on-merge modes and cron schedules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from atlas.config.versions import VersionConstraint, VersionSyntaxError
from atlas.config.yaml_doc import written_text

REQUIREMENTS = ("approved", "mergeable", "undiverged", "policies_passed")


SILENCEABLE_STAGES = ("plan", "apply")


REPO_LOCK_MODES = ("on_plan", "on_apply", "disabled")


AUTODISCOVER_MODES = ("auto", "enabled", "disabled")


DISTRIBUTIONS = ("terraform", "opentofu")


OVERRIDABLE_KEYS = (
    "plan_requirements",
    "apply_requirements",
    "import_requirements",
    "workflow",
    "delete_source_branch_on_merge",
    "repo_locking",
    "repo_locks",
    "policy_check",
    "custom_policy_check",
    "silence_pr_comments",
    "apply_on_merge",
    "drift",
)
"""Keys a repo config may set only where repos.yaml lists them in `allowed_overrides`."""


def invalid(message: str) -> PydanticCustomError:
    # The message travels in the context: a template would read braces in a user's value as fields.
    return PydanticCustomError("atlas_config", "{message}", {"message": message})


def quoted(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else json.dumps(written_text(value) or repr(value))


def as_text(value: object) -> object:
    if value is None:
        return None
    text = written_text(value)
    if text is None:
        raise invalid("must be a string")
    return text


def _flag(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    raise invalid(f"must be true or false, got {quoted(value)}")


def _whole(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise invalid(f"must be an integer, got {quoted(value)}")


def _text_list(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid("must be a list of strings")
    texts = [written_text(item) for item in value]
    if any(text is None for text in texts):
        raise invalid("must be a list of strings")
    return texts


def choice(*choices: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value is None:
            return None
        text = written_text(value)
        if text not in choices:
            raise invalid(f"must be one of {', '.join(choices)}, got {quoted(value)}")
        return text

    return check


def _choices(what: str, *choices: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        texts = _text_list(value)
        if texts is None:
            return None
        assert isinstance(texts, list)
        for text in texts:
            if text not in choices:
                raise invalid(f"unknown {what} {json.dumps(text)}; known: {', '.join(choices)}")
        return texts

    return check


Text = Annotated[str, BeforeValidator(as_text)]


Flag = Annotated[bool, BeforeValidator(_flag)]


Whole = Annotated[int, BeforeValidator(_whole)]


TextList = Annotated[list[str], BeforeValidator(_text_list)]


Requirements = Annotated[list[str], BeforeValidator(_choices("requirement", *REQUIREMENTS))]


SilencedStages = Annotated[list[str], BeforeValidator(_choices("stage", *SILENCEABLE_STAGES))]


OverridableKeys = Annotated[list[str], BeforeValidator(_choices("key", *OVERRIDABLE_KEYS))]


def _slashed_regex(value: object) -> object:
    """Atlantis writes regexes as `/REGEX/`; returns the pattern between the slashes."""
    text = as_text(value)
    if text is None:
        return None
    assert isinstance(text, str)
    if len(text) < 2 or not text.startswith("/") or not text.endswith("/"):
        raise invalid(f"must be a regex between slashes, such as /main/, got {json.dumps(text)}")
    try:
        re.compile(text[1:-1])
    except re.error as error:
        raise invalid(f"{json.dumps(text)} is not a valid regex: {error}") from None
    return text


SlashedRegex = Annotated[str, BeforeValidator(_slashed_regex)]


def _repo_id(value: object) -> object:
    """repos.yaml ids: an exact `HOST/OWNER/NAME`, or a `/regex/`."""
    text = as_text(value)
    if isinstance(text, str) and text.startswith("/") and text.endswith("/") and len(text) >= 2:
        return _slashed_regex(text)
    if not text:
        raise invalid("must be a repository id such as github.com/OWNER/NAME, or a /regex/")
    return text


RepoId = Annotated[str, BeforeValidator(_repo_id)]


# hashicorp/go-version's grammar, which Atlantis parses terraform_version with.
_GO_VERSION = re.compile(
    r"v?([0-9]+(\.[0-9]+)*?)"
    r"(-([0-9]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)|(-?([A-Za-z\-~]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)))?"
    r"(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))?"
)


def _terraform_version(value: object) -> object:
    """An exact version, as Atlantis takes it, or (atlas) a constraint such as `~> 1.6.0` or `>= 1.5, < 2`."""
    text = as_text(value)
    if isinstance(text, str) and not _GO_VERSION.fullmatch(text):
        try:
            VersionConstraint.parse(text)
        except VersionSyntaxError:
            raise invalid(f"{json.dumps(text)} is not a version such as 1.9.8 or v1.9.8, nor a constraint "
                           'such as "~> 1.9.0" or ">= 1.5, < 2"') from None
    return text


TerraformVersion = Annotated[str, BeforeValidator(_terraform_version)]


_URL_SAFE = re.compile(r"[A-Za-z0-9._~/-]+")


def _project_name(value: object) -> object:
    text = as_text(value)
    if text is None:
        return None
    assert isinstance(text, str)
    if not text:
        raise invalid("must not be empty when set")
    if not _URL_SAFE.fullmatch(text):
        raise invalid(
            f"{json.dumps(text)} is not allowed: use only letters, digits and - _ . ~ / "
            "(names appear in URLs and file names)"
        )
    return text


ProjectName = Annotated[str, BeforeValidator(_project_name)]


def _project_dir(value: object) -> object:
    text = as_text(value)
    if text is None:
        return None
    assert isinstance(text, str)
    if not text.strip():
        raise invalid("must not be empty; use . for the repository root")
    if ".." in text.replace("\\", "/").split("/"):
        raise invalid(f"{json.dumps(text)} leaves the repository: dir cannot contain ..")
    if any(char in text for char in "*?["):
        raise invalid(
            f"{json.dumps(text)} is a glob; atlas does not expand globs in dir, list each directory as a project"
        )
    return text


ProjectDir = Annotated[str, BeforeValidator(_project_dir)]


def _apply_on_merge(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if value in ("always", "only"):
        return value
    raise invalid(f"must be true, false, always or only, got {quoted(value)}")


ApplyOnMergeValue = Annotated[str, BeforeValidator(_apply_on_merge)]


_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def cron_problem(expression: str) -> str | None:
    """What is wrong with a five-field cron expression (or @daily-style macro), or None."""
    if expression.strip().lower() in _CRON_MACROS:
        return None
    fields = expression.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields; a cron schedule has 5 (minute hour day-of-month month day-of-week)"
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            problem = _cron_item_problem(item.lower(), low, high, names)
            if problem:
                return f"{name} field {json.dumps(text)}: {problem}"
    return None


def _cron_item_problem(item: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    base, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return f"step {json.dumps(step)} must be a positive number"
    if base == "*":
        return None

    def number(text: str) -> int | None:
        if text in names:
            return names.index(text) + (1 if names is _MONTHS else 0)
        return int(text) if text.isdigit() else None

    bounds = base.split("-")
    if len(bounds) > 2 or not all(bounds):
        return f"{json.dumps(item)} is not a number, range or *"
    values = [number(bound) for bound in bounds]
    if any(value is None for value in values):
        return f"{json.dumps(item)} is not a number, range or *"
    if any(value is not None and not low <= value <= high for value in values):
        return f"{json.dumps(item)} is outside {low}-{high}"
    if len(values) == 2 and values[0] is not None and values[1] is not None and values[0] > values[1]:
        return f"range {json.dumps(base)} runs backwards"
    return None


def _schedule(value: object) -> object:
    text = as_text(value)
    if isinstance(text, str):
        problem = cron_problem(text)
        if problem:
            raise invalid(f"{json.dumps(text)} is not a cron schedule: {problem}")
    return text


Schedule = Annotated[str, BeforeValidator(_schedule)]
