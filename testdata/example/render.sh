#!/bin/sh
# Frames the greeting so the output shows the build ran.
set -eu
echo "+--------------------+"
while IFS= read -r line; do echo "| $line"; done < "$1"
echo "+--------------------+"
