#!/bin/sh
# Worker command of "check-output": says whether the encoded file exists
# (here: every output under encoded/ does).
read -r input
case "$input" in
  *'"output":"encoded/'*) printf '{"exists": true}\n' ;;
  *) printf '{"exists": false}\n' ;;
esac
