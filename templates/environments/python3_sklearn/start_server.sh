#!/bin/sh
# Provided by the environment: DRUM's prediction server for the bundle in $CODE_DIR. DRUM reads
# its settings from the container's variables (ADDRESS, URL_PREFIX, TARGET_TYPE, the labels).
exec drum server "$@"
