"""GitLab (gitlab.com and self-managed): the VCS client, webhook parsing and the hostname rule."""
