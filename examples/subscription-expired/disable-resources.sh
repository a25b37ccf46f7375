#!/bin/sh
# Worker command of the "disable-resources" activity: reads the task input
# ({"subscriptionId": "..."}) on stdin and answers what it disabled.
read -r input
id=$(printf '%s' "$input" | sed 's/.*"subscriptionId":"\([^"]*\)".*/\1/')
printf '{"subscriptionId": "%s", "disabled": ["vm-%s", "bucket-%s"]}\n' "$id" "$id" "$id"
