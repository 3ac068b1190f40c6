#!/bin/sh
# BROKEN on purpose (cmkit test-local: longRunningService): the server never starts. The script
# says why and exits with code 3, as a start script with a fatal configuration error would.
echo "exits_at_start: refusing to start: this purpose-built broken bundle always exits with code 3" >&2
exit 3
