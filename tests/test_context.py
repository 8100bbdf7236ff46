"""What the command context derives from settings: where a project's plan file lives."""

from __future__ import annotations

from pathlib import Path

from atlas.commands.context import build_context
from atlas.config.settings import Settings
from atlas.models import Project, PullRequest, Repo

REPO = Repo(full_name="acme/infra", clone_url="http://git.invalid/acme/infra.git",
            html_url="http://git.invalid/acme/infra")
PULL = PullRequest(repo=REPO, number=3, head_sha="c" * 40, head_ref="x", base_ref="main", author="me")


def test_projects_whose_names_differ_only_in_punctuation_get_their_own_plan_files(tmp_path: Path) -> None:
    ctx = build_context(Settings(data_dir=tmp_path, gh_token="x"))
    paths = {ctx.planfile(PULL, Project(dir=d, workspace=w)) for d, w in
             [("a/b", "default"), ("a_b", "default"), ("a-b", "default"), ("a/b", "prod")]}
    assert len(paths) == 4
    assert all(path.parent == ctx.plans_dir(PULL) and path.parent.is_dir() for path in paths)
