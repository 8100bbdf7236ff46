"""Real `terraform show -json` plans of the policy fixture, for the policy engine's tests and benchmark."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[1] / "terraform-fixtures" / "policy"
INSTALL_HINT = "install Terraform 1.11 from https://developer.hashicorp.com/terraform/install"


def terraform_env() -> dict[str, str]:
    env = dict(os.environ)
    # A CLI config file named by the environment but missing makes terraform warn on every command.
    if not os.path.exists(env.get("TF_CLI_CONFIG_FILE", "/nonexistent-atlas")):
        env.pop("TF_CLI_CONFIG_FILE", None)
    env["TF_IN_AUTOMATION"] = "1"
    return env


def prepare_fixture(workdir: Path, state_dir: Path, terraform: str) -> Path:
    """A copy of the fixture in `workdir`, its state in `state_dir` (outside it), initialised."""
    shutil.copytree(FIXTURE, workdir)
    backend = workdir / "backend.tf"
    backend.write_text(backend.read_text().replace("__STATE_DIR__", str(state_dir)))
    subprocess.run([terraform, "init", "-input=false", "-no-color"], cwd=workdir, env=terraform_env(),
                   check=True, capture_output=True, text=True)
    return workdir


def show_plan(workdir: Path, terraform: str, name: str, variables: dict[str, Any]) -> str:
    """Plan the fixture with `variables`, save the plan, and return `terraform show -json` of it."""
    planfile = workdir / f"{name}.tfplan"
    args = [f"-var={key}={value}" for key, value in variables.items()]
    subprocess.run([terraform, "plan", "-input=false", "-no-color", f"-out={planfile}", *args], cwd=workdir,
                   env=terraform_env(), check=True, capture_output=True, text=True)
    shown = subprocess.run([terraform, "show", "-json", planfile.name], cwd=workdir, env=terraform_env(),
                           check=True, capture_output=True, text=True)
    json.loads(shown.stdout)
    return shown.stdout
