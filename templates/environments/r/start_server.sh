#!/bin/sh
# Provided by the environment: serves the bundle in $CODE_DIR with cmkit's model runtime (see
# `cmkit-runtime serve --help` for its settings). A bundle's own start_server.sh replaces it.
exec cmkit-runtime serve --code-dir "${CODE_DIR:-/opt/code}"
