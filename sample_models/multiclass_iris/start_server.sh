#!/bin/sh
exec cmkit-runtime serve --code-dir "$(dirname "$0")"  # the model runtime the environment provides
