"""The table of Atlantis keys (atlas/config/atlantis_keys.py) against Atlantis's documented lists and atlas's loaders.

Complete: every key of tests/data/atlantis/ is in the table, and the table holds no other.
True today: every `supported` or `equivalent` key is accepted by atlas's loaders (the repo config
parser, the repos.yaml parser, the settings loader), and every `refused` key is refused by them with
a message naming it (or the block that holds it). What each key does is tested where it is built.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas.cli.main import build_parser
from atlas.config.atlantis_keys import KEYS, AtlantisKey, Status, Where, refusal, render_markdown
from atlas.config.loading import parse_repo_config
from atlas.config.raw import ConfigError
from atlas.config.server import parse_server_config
from atlas.config.settings import SettingsError, load_settings, setting_infos

DATA = Path(__file__).parent / "data" / "atlantis"
DOCS = Path(__file__).parents[1] / "docs" / "atlantis-compatibility.md"

ACCEPTED_TODAY_THOUGH_REFUSED: set[tuple[Where, str]] = set()
"""Keys refused by design that a loader still accepts: each a defect to fix there. Marked strict xfail,
so the test fails, asking to take a key out of this set, once its loader refuses it."""


def documented(*files: str) -> set[str]:
    names: set[str] = set()
    for file in files:
        for line in (DATA / file).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                names.add(line.strip())
    return names


def table(where: Where) -> list[str]:
    return [key.name for key in KEYS if key.where is where]


@pytest.mark.parametrize(
    ("where", "files"),
    [
        (Where.REPO, ("repo_config_keys.txt", "workflow_keys.txt")),
        (Where.REPOS, ("repos_yaml_keys.txt", "workflow_keys.txt")),
        (Where.SERVER, ("server_flags.txt",)),
    ],
)
def test_the_table_lists_every_documented_key_and_no_other(where: Where, files: tuple[str, ...]) -> None:
    names = table(where)
    assert len(names) == len(set(names)), "a key is listed twice"
    expected = documented(*files)
    assert sorted(expected - set(names)) == [], "documented by Atlantis, missing from atlas/config/atlantis_keys.py"
    assert sorted(set(names) - expected) == [], "in the table but not among Atlantis's documented keys"


def test_every_key_says_what_atlas_does() -> None:
    for key in KEYS:
        if key.status in (Status.SUPPORTED, Status.EQUIVALENT, Status.PLANNED):
            assert key.atlas.partition(":")[0] in ("setting", "repo", "repos", "cli"), key
        if key.status in (Status.PLANNED, Status.REFUSED):
            assert key.reason, f"{key.name}: a {key.status} key needs its reason"


def test_the_docs_table_is_generated_from_the_data_module() -> None:
    assert DOCS.read_text() == render_markdown(), (
        "regenerate it: python -m atlas.config.atlantis_keys > docs/atlantis-compatibility.md"
    )


# --- minimal documents that set one key ------------------------------------------------------------

LEAF: dict[str, Any] = {
    "version": 3, "automerge": True, "ignore_paths": ["vendor/*"], "parallel_plan": True, "parallel_apply": True,
    "abort_on_execution_order_fail": True, "silence_pr_comments": ["apply"], "name": "app", "branch": "/main/",
    "dir": ".", "workspace": "default", "execution_order_group": 1, "repo_locking": True, "enabled": True,
    "when_modified": ["*.tf"], "terraform_version": "1.9.8", "plan_requirements": ["approved"],
    "apply_requirements": ["approved"], "import_requirements": ["approved"], "depends_on": [],
    "workflow": "default", "id": "/.*/", "repo_config_file": "atlantis.yaml", "allowed_overrides": ["workflow"],
    "allowed_workflows": ["default"], "allow_custom_workflows": True, "run": "echo hook", "description": "a hook",
    "shell": "bash", "shellArgs": "-c", "commands": "plan", "remediate": True, "delete_source_branch_on_merge": True,
    "terraform_distribution": "opentofu",
    "allowed_regexp_prefixes": ["dev/"], "emoji_reaction": "eyes",
    "autodiscover": {"mode": "auto"}, "repo_locks": {"mode": "on_plan"}, "autoplan": {"enabled": True},
    "projects": [{"dir": "."}], "repos": [{"id": "/.*/"}], "pre_workflow_hooks": [{"run": "echo"}],
    "post_workflow_hooks": [{"run": "echo"}], "drift": {"enabled": True},
    "policy_check": True, "owners": {"users": ["olga"]}, "users": ["olga"], "teams": ["platform"], "approve_count": 1,
    "policy_sets": [{"name": "p", "path": "policies", "source": "local"}], "path": "policies", "source": "local",
    "prevent_self_approve": True, "conftest_version": "v0.46.0",
    "policies": {"policy_sets": [{"name": "p", "path": "policies", "source": "local"}]},
}
CONTEXT_LEAF = {("autodiscover", "mode"): "enabled", ("repo_locks", "mode"): "on_apply"}
POLICY_SETS = [{"name": "p", "path": "policies", "source": "local"}]
"""What a `policies:` block needs besides the key under test."""
LIST_ITEM: dict[str, dict[str, Any]] = {
    "projects": {"dir": "."}, "repos": {"id": "/.*/"}, "pre_workflow_hooks": {"run": "echo"},
    "post_workflow_hooks": {"run": "echo"}, "policy_sets": {"name": "p", "path": "policies", "source": "local"},
}
STEP: dict[str, Any] = {
    "run": {"run": "echo hi"},
    "run.command": {"run": {"command": "echo hi"}},
    "run.shell": {"run": {"command": "echo hi", "shell": "bash"}},
    "run.shellArgs": {"run": {"command": "echo hi", "shell": "bash", "shellArgs": ["-e", "-c"]}},
    "run.output": {"run": {"command": "echo hi", "output": "hide"}},
    "run.output.filter_regex": {"run": {"command": "echo hi", "output": [{"filter_regex": "secret"}]}},
    "env": {"env": {"name": "A", "value": "b"}},
    "env.name": {"env": {"name": "A", "value": "b"}},
    "env.value": {"env": {"name": "A", "value": "b"}},
    "env.command": {"env": {"name": "A", "command": "echo b"}},
    "env.shell": {"env": {"name": "A", "command": "echo b", "shell": "bash"}},
    "env.shellArgs": {"env": {"name": "A", "command": "echo b", "shell": "bash", "shellArgs": "-c"}},
    "multienv": {"multienv": "echo A=b"},
    "multienv.command": {"multienv": {"command": "echo A=b"}},
    "multienv.shell": {"multienv": {"command": "echo A=b", "shell": "bash"}},
    "multienv.shellArgs": {"multienv": {"command": "echo A=b", "shell": "bash", "shellArgs": ["-c"]}},
    "multienv.output": {"multienv": {"command": "echo A=b", "output": "hide"}},
    "*.extra_args": {"plan": {"extra_args": ["-lock=false"]}},
}


def workflow_document(path: str) -> dict[str, Any]:
    """`workflows:` with one workflow that uses the workflow or step key `path`."""
    if path == "workflows":
        return {"workflows": {"custom": None}}
    if path.startswith("workflows.*."):
        stage = path.split(".")[2]
        stage = "plan" if stage == "*" else stage
        return {"workflows": {"custom": {stage: {"steps": ["init"]}}}}
    step_key = path.removeprefix("steps[].")
    step = STEP.get(step_key, step_key)
    return {"workflows": {"custom": {"plan": {"steps": [step]}}}}


def document(where: Where, path: str) -> dict[str, Any]:
    """A minimal repo config or repos.yaml that sets the key `path`."""
    base: dict[str, Any] = {"version": 3} if where is Where.REPO else {}
    if path.startswith(("workflows", "steps[]")):
        return {**base, **workflow_document(path)}
    node: dict[str, Any] = base
    parts = path.split(".")
    for position, part in enumerate(parts):
        name, is_list = part.removesuffix("[]"), part.endswith("[]")
        last = position == len(parts) - 1
        if is_list:
            item = dict(LIST_ITEM.get(name, {}))
            node[name] = [item]
            node = item
        elif last:
            parent = parts[position - 1].removesuffix("[]") if position else ""
            node[name] = CONTEXT_LEAF.get((parent, name), LEAF.get(name, "x"))
        else:
            node = node.setdefault(name, {})
    if isinstance(base.get("policies"), dict):
        base["policies"].setdefault("policy_sets", POLICY_SETS)
    return base


def load(where: Where, path: str) -> None:
    """Run atlas's loader for a document setting `path`; ConfigError when it is refused."""
    text = yaml.safe_dump(document(where, path))
    if where is Where.REPO:
        parse_repo_config(text, "atlantis.yaml")
    else:
        parse_server_config(text, "repos.yaml")


SETTING_VALUES: dict[str, Any] = {
    "redis-url": "redis://localhost:6379/0",
    "comment-prefix": ["atlas"], "repo-allowlist": ["github.com/acme/*"], "allow-commands": ["plan", "apply"],
}


def load_setting(tmp_path: Path, name: str) -> None:
    """Load a settings file that sets `name` (with what it must be given with); SettingsError when refused."""
    infos = {info.key: info for info in setting_infos()}
    data: dict[str, Any] = {}
    info = infos.get(name)
    if name in ("web-username", "web-password"):
        data = {"web-username": "operator", "web-password": "a-long-password"}
    elif name == "markdown-template-overrides-dir":
        data = {name: str(tmp_path)}
    elif name.endswith("-file"):
        secret = tmp_path / "secret"
        secret.write_text("s3cret-value\n")
        data = {name: str(secret)}
    elif info is not None:
        value = SETTING_VALUES.get(name, info.example if info.example is not None else info.default)
        value = str(value) if hasattr(value, "__fspath__") or isinstance(value, StrEnum) else value
        data = {name: True if info.is_bool else value}
    else:
        data = {name: "x"}
    if name.startswith("gh-app-"):
        # The App's settings go with its id and key (which the server parses at start-up).
        data = {"gh-app-id": 42, **data, **({} if name == "gh-app-key-file" else {"gh-app-key": "PEM"})}
    file = tmp_path / "server.yaml"
    file.write_text(yaml.safe_dump(data))
    load_settings(config_file=file, env={})


def check_accepted(reference: str, tmp_path: Path) -> None:
    kind, _, target = reference.partition(":")
    if kind == "setting":
        load_setting(tmp_path, target)
    elif kind == "repo":
        load(Where.REPO, target)
    elif kind == "repos":
        load(Where.REPOS, target)
    else:
        server_help = build_parser()._subparsers._group_actions[0].choices["server"].format_help()  # type: ignore[union-attr]
        assert target in server_help, f"atlas server has no {target}"


def cases(*statuses: Status) -> list[Any]:
    found = []
    for key in KEYS:
        if key.status not in statuses:
            continue
        marks = []
        if (key.where, key.name) in ACCEPTED_TODAY_THOUGH_REFUSED:
            marks.append(pytest.mark.xfail(strict=True, reason="the repos.yaml loader still accepts it"))
        found.append(pytest.param(key, id=f"{key.where}:{key.name}", marks=marks))
    return found


@pytest.mark.parametrize("key", cases(Status.SUPPORTED, Status.EQUIVALENT))
def test_supported_and_equivalent_keys_are_accepted_today(key: AtlantisKey, tmp_path: Path) -> None:
    if key.status is Status.SUPPORTED and key.where is not Where.SERVER:
        load(key.where, key.name)
    check_accepted(key.atlas, tmp_path)


@pytest.mark.parametrize("key", cases(Status.REFUSED))
def test_refused_keys_are_refused_naming_them(key: AtlantisKey, tmp_path: Path) -> None:
    if key.where is Where.SERVER:
        with pytest.raises(SettingsError) as refused:
            load_setting(tmp_path, key.name)
        assert f'"{key.name}"' in str(refused.value)
        assert str(refused.value).endswith(refusal(key)), "the start-up line gives the table's reason"
        return
    with pytest.raises(ConfigError) as error:
        load(key.where, key.name)
    named = error.value.key_path.replace("[0]", "[]")
    assert key.name == named or key.name.startswith(named + "."), str(error.value)
    holders = [k for k in KEYS if k.where is key.where and (k.name == key.name or key.name.startswith(k.name + "."))]
    assert error.value.problem in {refusal(holder) for holder in holders}, "the message gives the table's reason"


def test_the_table_imports_nothing_from_atlas() -> None:
    import ast

    import atlas.config.atlantis_keys as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert [name for name in imported if name.split(".")[0] == "atlas"] == []


@pytest.mark.parametrize("key", cases(Status.PLANNED))
def test_planned_keys_are_refused_until_built_saying_so(key: AtlantisKey, tmp_path: Path) -> None:
    """Nothing atlas has not built is accepted: a planned key is refused, naming it, with what Atlantis does."""
    if key.where is Where.SERVER:
        with pytest.raises(SettingsError) as refused:
            load_setting(tmp_path, key.name)
        assert f'atlas does not support "{key.name}" yet' in str(refused.value)
        return
    with pytest.raises(ConfigError) as error:
        load(key.where, key.name)
    # A key inside a planned block is refused with its block.
    holders = [k for k in KEYS if k.where is key.where and (k.name == key.name or key.name.startswith(k.name + "."))]
    assert error.value.problem in {refusal(holder) for holder in holders}, str(error.value)
    assert " yet" in error.value.problem


def _test_functions(file: Path) -> set[str]:
    import ast

    tree = ast.parse(file.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


@pytest.mark.parametrize("key", cases(Status.SUPPORTED, Status.EQUIVALENT))
def test_every_supported_key_names_the_test_that_shows_its_effect(key: AtlantisKey) -> None:
    """The table test proper: a key atlas claims to do points at the test that shows it done.

    Flipping a planned key to supported takes its row a `test=` (or a SHOWN_BY line); without one, or
    with one that names no test, this fails.
    """
    assert key.test, f"{key.where}:{key.name} is {key.status}: give its row test='tests/FILE.py::test_name'"
    file, _, name = key.test.partition("::")
    path = Path(__file__).parents[1] / file
    assert path.is_file() and file.startswith("tests/test_"), f"{key.name}: {file} is no test file"
    assert name in _test_functions(path), f"{key.name}: {file} has no test {name}"
