#!/usr/bin/env bash
# A single-node SLURM cluster on this machine (slurmctld + slurmd on localhost, munge auth), for testing the
# workflow's SLURM profile against a real SLURM (tests/test_slurm.py, .ci/run).
#
#   bash scripts/local_slurm.sh start    # install (Debian: slurm-wlm, munge) if missing, configure, start; idempotent
#   bash scripts/local_slurm.sh status   # exit 0 when the cluster accepts jobs
#   bash scripts/local_slurm.sh stop     # stop the daemons this script started
#
# Needs root (it writes /etc/slurm/slurm.conf and runs the daemons); refuses to touch a slurm.conf it did not
# write. The node gets this machine's hostname, CPU count and memory, one partition `debug`, and a GPU count
# (Gres=gpu:$LOCAL_SLURM_GPUS, default 4) declared without devices: jobs asking --gpus are scheduled against the
# count (nothing runs on a GPU). No slurmdbd: accounting is off (query job state with squeue/scontrol; finished
# jobs are also written to $STATE/jobcomp.txt by jobcomp/filetxt).
set -euo pipefail

STATE=${LOCAL_SLURM_STATE:-/var/lib/rlrepro-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by rlrepro scripts/local_slurm.sh"
GPUS=${LOCAL_SLURM_GPUS:-4}

die() { echo "local_slurm: $*" >&2; exit 1; }

ready() {
  command -v sinfo >/dev/null && timeout 3 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed and there is no apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null
}

configure() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc --all)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)  # MB, leaving 10% to the system
  if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: not touching a real cluster's configuration"
  fi
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log"
  cat > "$CONF" <<EOF
$MARK
ClusterName=rlrepro
SlurmctldHost=$host
AuthType=auth/munge
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.txt
MinJobAge=3600
SchedulerParameters=sched_interval=1
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  # slurmd counts a GPU only with a device file; plain files stand in for /dev/nvidia* (no cgroup device
  # constraint here: task/none), so jobs are scheduled against the count and given CUDA_VISIBLE_DEVICES
  mkdir -p "$STATE/dev"
  local i
  for ((i = 0; i < GPUS; i++)); do touch "$STATE/dev/nvidia$i"; done
  cat > /etc/slurm/gres.conf <<EOF
$MARK
NodeName=$host Name=gpu File=$STATE/dev/nvidia[0-$((GPUS - 1))]
EOF
}

start_munge() {
  if pgrep -u munge -x munged >/dev/null 2>&1; then return; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
  touch "$STATE/started-munge"
}

start() {
  [[ $(id -u) == 0 ]] || die "needs root (writes $CONF, runs slurmctld/slurmd)"
  if ready; then echo "local_slurm: already running"; return; fi
  install
  configure
  start_munge
  stop_daemons  # ours, if up but not ready (e.g. after a configuration change); then a clean start
  slurmctld -c
  slurmd -c
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if ready; then
      echo "local_slurm: up ($(sinfo -h -N -o '%N %c CPUs %m MB %G %T'))"
      return
    fi
    [[ -s $STATE/slurmctld.pid ]] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null || break  # it died
    sleep 1
  done
  sinfo -N -l >&2 || true
  tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
  die "the cluster did not come up (logs in $STATE/log)"
}

stop_daemons() {
  # only daemons of this script's cluster: those started with its configuration, by pid file
  local pidfile pid
  for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
    if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      pid=$(cat "$pidfile")
      kill "$pid"
      for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
  done
}

stop() {
  stop_daemons
  if [[ -f $STATE/started-munge ]]; then
    local pid
    pid=$(pgrep -u munge -x munged || true)
    [[ -n $pid ]] && kill $pid
    rm -f "$STATE/started-munge"
  fi
  echo "local_slurm: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) ready ;;
  *) die "usage: $0 start|stop|status" ;;
esac
