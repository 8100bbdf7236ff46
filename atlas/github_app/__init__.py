"""GitHub App authentication and the Checks API (to become part of `atlas.github`)."""
