#!/usr/bin/env bash
# Start a single-node Slurm cluster (Debian 12's slurm-wlm 22.05) on this machine, as root and
# without systemd, for the `--launcher slurm` tests. Stop it with .ci/slurm_down.sh.
#
# Recipe (verified on Debian 12): slurmctld, slurmd and munge from Debian's packages; munged runs
# as the munge user, slurmctld and slurmd as root; the daemons write pid files under /run, which
# slurm_down.sh uses to stop exactly these processes. `sinfo` shows the node idle in seconds.
set -euo pipefail

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
# Slurm refuses a node whose RealMemory exceeds what it finds; half of the available memory.
mem=$(awk '/MemAvailable/ {print int($2 / 1024 / 2)}' /proc/meminfo)

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=capreolus
SlurmctldHost=${host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
# Jobs may be requeued (preemption, time-out: capreolus-opt requeues itself after checkpointing).
JobRequeue=1
KillWait=30
MinJobAge=300
NodeName=${host} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF

if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key /run/munge
chmod 400 /etc/munge/munge.key

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running /run/munge/munged.pid || su -s /bin/sh munge -c /usr/sbin/munged
running /run/slurmctld.pid || slurmctld
running /run/slurmd.pid || slurmd

for _ in $(seq 60); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    sinfo
    exit 0
  fi
  sleep 1
done
echo "slurm_up: the node did not become idle within 60 s" >&2
sinfo -N -l >&2 || true
exit 1
