#!/bin/sh
# Starts raw_server.py: a bare-bones server WITHOUT the template's checks, so that this broken
# bundle's misbehaviour reaches the wire (see sample_models/broken/README.md).
set -eu
cd "$(dirname -- "$0")"
exec python3 raw_server.py
