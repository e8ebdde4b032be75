#!/bin/sh
# Flags (or nothing) run the sweep launcher; any other command runs as given, so the Ray cluster
# launcher (`docker run ... bash`) and KubeRay (which sets its own command) work with this image.
set -e
case "${1:-}" in
  "" | -*) exec python -m sweep.launch "$@" ;;
  *) exec "$@" ;;
esac
