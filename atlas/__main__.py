"""`python -m atlas` is the same as the `atlas` console script."""

from atlas.cli.main import main

raise SystemExit(main())
