"""Policy checks: Rego policy sets over terraform plans, evaluated in-process."""
