"""The names settings go by, and their error, without the settings model: what the CLI's cheap paths read.

`atlas version` and `atlas --help` need the `ATLAS_` prefix and `SettingsError`, not pydantic and the
model (over half a second to import); `setting_types` re-exports all of these.
"""

from __future__ import annotations

ENV_PREFIX = "ATLAS_"
"""The prefix of every setting's environment variable (`gh_token` → `ATLAS_GH_TOKEN`)."""

CONFIG_ENV = "ATLAS_CONFIG"
"""The environment variable that names the config file when `--config` is not given."""

ALIASES = {
    "default_tf_distribution": "tf_distribution",
    "atlantis_url": "atlas_url",
    "executable_name": "comment_prefix",
}
"""Other names of settings, as flags and config-file keys: Atlantis's names of settings atlas has under
another name, so that an Atlantis config.yaml (or command line) reads unchanged."""


class SettingsError(Exception):
    """A setting has a wrong value; the message is one line that names it as the user wrote it."""
