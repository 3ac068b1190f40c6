"""cmkit's model runtime: the one model server, shipped by the execution environment.

A bundle holds only the model (cmkit hooks, DRUM hooks or a bare artifact); the environment
provides this package and `/opt/code/start_server.sh`, which runs `cmkit-runtime serve`.
`cmkit --runtime process` serves bundles with the copy installed alongside cmkit.

This package must stay importable with the environment's serving stack alone (flask, gunicorn,
pandas, numpy, PyYAML, optionally orjson): it never imports cmkit.
"""

__version__ = "0.6.1"
