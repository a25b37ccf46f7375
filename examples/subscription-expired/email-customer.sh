#!/bin/sh
# Worker command of the "email-customer" activity: reads the task input
# ({"customer": "...", "subscriptionId": "..."}) on stdin and answers whom it
# wrote to.
read -r input
customer=$(printf '%s' "$input" | sed 's/.*"customer":"\([^"]*\)".*/\1/')
printf '{"sent": "%s"}\n' "$customer"
