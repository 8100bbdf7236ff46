"""Orchestration: `dispatch.run_job` runs a job with the command it names, one module per command.

`context` is what every command is handed; `registry` is the command vocabulary.
"""
