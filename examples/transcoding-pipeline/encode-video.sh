#!/bin/sh
# Worker command of "encode-video": answers where the encoded file is.
read -r input
video=$(printf '%s' "$input" | sed 's/.*"video":"\([^"]*\)".*/\1/')
profile=$(printf '%s' "$input" | sed 's/.*"profile":"\([^"]*\)".*/\1/')
printf '{"output": "encoded/%s.%s.mp4", "profile": "%s"}\n' "$video" "$profile" "$profile"
