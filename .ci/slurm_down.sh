#!/usr/bin/env bash
# Stop the daemons .ci/slurm_up.sh started, by their pid files (never by name).
set -uo pipefail
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
  if [ -s "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
done
