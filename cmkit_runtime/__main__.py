"""`python -m cmkit_runtime`: the same as the `cmkit-runtime` command."""

from cmkit_runtime.cli import main

raise SystemExit(main())
