#!/bin/sh
# Runs the app script given as $1 (default /app/main.sh) with the runtime library loaded.
. "$RUNTIME_HOME/lib.sh"
exec /bin/sh "${1:-/app/main.sh}"
