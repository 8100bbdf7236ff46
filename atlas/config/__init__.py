"""Configuration as teams and operators write it (`raw`), and as atlas uses it (`valid`).

The split follows Atlantis: YAML is parsed into permissive-but-typed raw models that report every
problem with its key path, then turned into validated models the pipeline trusts.
"""
