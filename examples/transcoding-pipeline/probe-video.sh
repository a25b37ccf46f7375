#!/bin/sh
# Worker command of "probe-video": answers the video's name and height.
read -r input
video=$(printf '%s' "$input" | sed 's/.*"video":"\([^"]*\)".*/\1/')
case "$video" in
  *4k*) height=2160 ;;
  *hd*) height=1080 ;;
  *) height=480 ;;
esac
printf '{"video": "%s", "height": %d}\n' "$video" "$height"
