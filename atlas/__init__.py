"""atlas: Terraform pull-request automation for GitHub."""

__version__ = "0.1.0"
