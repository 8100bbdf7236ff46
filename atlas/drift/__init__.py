"""Drift detection and reconciliation: does the live infrastructure still match the default branch?

In the order a check runs: `targets` (which repositories and projects, on which cron schedules),
`workdirs` (the check's working copies, files and per-repository lock), `check` (checkout, plan,
what differs), `remediate` (applying the plan under the project's lock, where enabled), `report`
(the project's GitHub issue, the `atlas/drift` status, the audit log), `jobs` (a check as a queued
job, which a worker runs), and `scheduler` (queueing each scheduled slot once across every server
process). Results are kept in the state store for the `/drift` page and `atlas_drift_projects`.
"""
