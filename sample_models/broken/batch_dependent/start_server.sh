#!/bin/sh
# Starts this model's server. DataRobot (and `cmkit test-local`) runs this file with PORT and
# URL_PREFIX set; configure it with the environment variables below rather than editing it.
#
#   PORT                     port to listen on, on all interfaces (default 8080)
#   URL_PREFIX               path the routes are mounted under; may contain "/" or be empty
#   CUSTOM_MODEL_WORKERS     worker processes, each loading its own copy of the model
#                            (default: the number of CPUs, at least 1)
#   CUSTOM_MODEL_THREADS     request threads per worker (default 1: predict() is CPU-bound and holds
#                            Python's GIL, so more threads only add contention; raise it for
#                            models that wait on I/O)
#   CUSTOM_MODEL_ACCESS_LOG  1 logs every request to stdout (default off: it costs throughput)
#   CUSTOM_MODEL_LOAD_WAIT   seconds a prediction arriving during the model load waits for it (default 60)
set -eu

code_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

# Normalise URL_PREFIX to "" or "/a/b": one leading slash and no trailing one. It is read at
# every start because DataRobot may change it between starts.
prefix=${URL_PREFIX:-}
while [ "${prefix#/}" != "$prefix" ]; do
    prefix=${prefix#/}
done
while [ "${prefix%/}" != "$prefix" ]; do
    prefix=${prefix%/}
done
if [ -n "$prefix" ]; then
    prefix=/$prefix
fi
export URL_PREFIX="$prefix"

workers=${CUSTOM_MODEL_WORKERS:-}
if [ -z "$workers" ]; then
    workers=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
fi
threads=${CUSTOM_MODEL_THREADS:-1}
for value in "$workers" "$threads"; do
    case $value in
        '' | *[!0-9]*) value=0 ;;
    esac
    if [ "$value" -lt 1 ]; then
        echo "start_server.sh: CUSTOM_MODEL_WORKERS and CUSTOM_MODEL_THREADS must be positive integers" >&2
        exit 2
    fi
done

# gunicorn's options, built up in "$@" so that values with spaces stay whole.
# gthread workers keep idle keep-alive connections in a poller instead of tying up a thread;
# a 3 s graceful timeout lets in-flight requests finish and still stops well within 5 s.
# The control socket is off: it would be shared by every server of a user.
set -- \
    --config "$code_dir/gunicorn.conf.py" \
    --bind "0.0.0.0:${PORT:-8080}" \
    --chdir "$code_dir" \
    --workers "$workers" \
    --worker-class gthread \
    --threads "$threads" \
    --keep-alive 60 \
    --graceful-timeout 3 \
    --no-control-socket \
    --error-logfile -

# No access log unless asked for: formatting a line per request costs throughput.
if [ "${CUSTOM_MODEL_ACCESS_LOG:-0}" = 1 ]; then
    set -- "$@" --access-logfile -
fi

# gunicorn's workers touch a heartbeat file every second; on a container's overlay filesystem
# that can stall, so use memory-backed /dev/shm where there is one (not on macOS).
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    set -- "$@" --worker-tmp-dir /dev/shm
fi

# exec: gunicorn replaces this shell, so SIGTERM from `docker stop` reaches it directly.
exec python3 -m gunicorn "$@" "server:create_app()"
