#!/bin/sh
# Runs under `ip netns exec`, which gives the command a fresh sysfs without the host's cgroup
# mounts. Mounts them again (same hierarchies, as a node agent's container mounts the host's
# cgroupfs), then execs the command so its pid stays the one the test spawned.
# Usage: netns-cgroups.sh [MOUNTPOINT FSTYPE OPTIONS]... -- COMMAND [ARG]...
set -eu
while [ "$1" != "--" ]; do
  mkdir -p "$1"
  mount -t "$2" -o "$3" "$2" "$1"
  shift 3
done
shift
exec "$@"
