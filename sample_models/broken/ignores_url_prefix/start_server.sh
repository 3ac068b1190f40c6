#!/bin/sh
# BROKEN on purpose (cmkit test-local: longRunningService): URL_PREFIX is dropped, so the routes
# stay at / and /predict_no_state/ and everything under the prefix is a 404.
URL_PREFIX='' exec cmkit-runtime serve --code-dir "$(dirname "$0")"
