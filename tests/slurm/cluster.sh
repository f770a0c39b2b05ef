#!/usr/bin/env bash
# A throw-away Slurm cluster on this machine for the tests marked `slurm` (Debian/Ubuntu packages,
# root, no systemd, no cgroups): munge, MariaDB + slurmdbd (so sacct works), slurmctld and four slurmd
# emulating nodes node1-node4 on 127.0.0.1: partition debug (the default) is node1 and node2, partition
# debug2 is node3 and node4 (two groups of tests run at once, each on its own two nodes).
#
#   tests/slurm/cluster.sh start [--max-array-size N]   install what is missing, start, wait until idle
#   tests/slurm/cluster.sh stop [--purge]               stop what start started (pid files only);
#                                                        --purge also deletes state, logs, DB, configs
#   tests/slurm/cluster.sh status                       sinfo + squeue, exit 1 when it is not up
#
# Environment: PAS_SLURM_LAB (state folder, default /tmp/pas-slurm), PAS_SLURM_DB_PORT (3307).
# Pitfalls handled (see tests/slurm/README.md): sacct needs slurmdbd; cred_expire=10 so requeued jobs
# start again at once; KillWait=1 (submitit ignores SIGTERM); node names resolve to 127.0.0.1 so
# multi-node rendezvous works; every daemon is stopped by its pid file, never by name.
set -euo pipefail
LAB=${PAS_SLURM_LAB:-/tmp/pas-slurm}
DB_PORT=${PAS_SLURM_DB_PORT:-3307}
NODES=(node1 node2 node3 node4)
HOSTS_MARK="# pas-slurm test cluster"

die() {
  echo "cluster.sh: $*" >&2
  for f in "$LAB"/log/*.log "$LAB"/mysql/mariadb.err; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}
wait_for() { # wait_for <seconds> <what> <command...>
  local t=$1 what=$2; shift 2; local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt $end ] || die "timeout waiting for $what"; sleep 0.2; done
}
need_root() { [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"; }

install_packages() {
  local missing=()
  for cmd in munged slurmctld slurmd sbatch slurmdbd mariadbd; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$cmd")
  done
  [ ${#missing[@]} = 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  echo "installing munge, slurm (slurmctld, slurmd, slurmdbd, client) and mariadb ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # no systemd: postinst "policy-rc.d denied execution of start" is expected
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 \
    munge slurmctld slurmd slurm-client slurmdbd mariadb-server >"$LAB/apt.log" 2>&1 \
    || { tail -n 30 "$LAB/apt.log" >&2; die "apt-get install failed"; }
}

start_munge() {
  [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge && mungekey --create --keyfile=/etc/munge/munge.key; }
  chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge; chmod 0600 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  if ! { [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
    runuser -u munge -- /usr/sbin/munged
    touch "$LAB/run/started-munge"
  fi
  wait_for 10 munged sh -c 'munge -n | unmunge'
}

write_conf() {
  local max_array=$1 ncpu mem
  ncpu=$(nproc)
  mem=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) * 4 / 10 ))  # MB per emulated node
  cat >"$LAB/etc/slurm.conf" <<CONF
# written by tests/slurm/cluster.sh -- a test cluster on one host
ClusterName=pastest
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CryptoType=crypto/munge
AuthInfo=cred_expire=10
MpiDefault=none
StateSaveLocation=$LAB/state/ctld
SlurmdSpoolDir=$LAB/state/d_%n
SlurmctldPidFile=$LAB/run/slurmctld.pid
SlurmdPidFile=$LAB/run/slurmd_%n.pid
SlurmctldLogFile=$LAB/log/slurmctld.log
SlurmdLogFile=$LAB/log/slurmd_%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
KillWait=1
ReturnToService=1
MinJobAge=600
MaxArraySize=$max_array
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
NodeName=node[1-4] NodeHostname=localhost NodeAddr=127.0.0.1 Port=[17001-17004] CPUs=$ncpu RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=node[1-2] Default=YES MaxTime=INFINITE State=UP
PartitionName=debug2 Nodes=node[3-4] MaxTime=INFINITE State=UP
CONF
  install -d /etc/slurm
  install -m 0644 "$LAB/etc/slurm.conf" /etc/slurm/slurm.conf
}

start_db() {
  local sock=$LAB/mysql/run/mysqld.sock
  if [ ! -d "$LAB/mysql/data/mysql" ]; then
    install -d -o mysql -g mysql "$LAB/mysql" "$LAB/mysql/run"
    mariadb-install-db --user=mysql --datadir="$LAB/mysql/data" --auth-root-authentication-method=socket \
      >"$LAB/log/mariadb-install-db.log" 2>&1 || die "mariadb-install-db failed"
  fi
  /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$LAB/mysql/data" --socket="$sock" \
    --pid-file="$LAB/mysql/run/mysqld.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --log-error="$LAB/mysql/mariadb.err" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
  wait_for 30 mariadb mariadb --no-defaults -S "$sock" -uroot -e 'select 1'
  mariadb --no-defaults -S "$sock" -uroot -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat >"$LAB/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$LAB/log/slurmdbd.log
PidFile=$LAB/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
CONF
  install -m 0600 -o root -g root "$LAB/etc/slurmdbd.conf" /etc/slurm/slurmdbd.conf
  /usr/sbin/slurmdbd
  wait_for 60 "slurmdbd on port 6819" bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819'
}

resolve_nodes() {
  local n missing=()
  for n in "${NODES[@]}"; do getent hosts "$n" >/dev/null || missing+=("$n"); done
  [ ${#missing[@]} = 0 ] || echo "127.0.0.1 ${missing[*]} $HOSTS_MARK" >>/etc/hosts
}

start() {
  local max_array=1001
  while [ $# -gt 0 ]; do
    case $1 in --max-array-size) max_array=$2; shift 2;; *) die "start: unknown option $1";; esac
  done
  need_root
  if scontrol ping >/dev/null 2>&1 && [ -f "$LAB/run/slurmctld.pid" ]; then
    echo "already running (stop it first to change options)"; return 0
  fi
  mkdir -p "$LAB"/{etc,log,run,state/ctld}
  install_packages
  # a fresh controller restarts job ids at 1: the accounting database starts fresh with it, or sacct
  # would mix old jobs into new ones with the same ids
  rm -rf "$LAB"/state/ctld/* "$LAB"/log/* "$LAB"/mysql
  start_munge
  write_conf "$max_array"
  start_db
  resolve_nodes
  /usr/sbin/slurmctld
  wait_for 30 slurmctld scontrol ping
  for n in "${NODES[@]}"; do mkdir -p "$LAB/state/d_$n"; /usr/sbin/slurmd -N "$n"; done
  wait_for 60 "every node idle" bash -c "[ \"\$(sinfo -h -N -t idle -o %N | sort -u | wc -l)\" = ${#NODES[@]} ]"
  wait_for 30 "cluster registered in slurmdbd" bash -c 'sacctmgr -n -P show cluster format=cluster | grep -qx pastest'
  echo "slurm test cluster up: nodes ${NODES[*]}, partitions debug (node1, node2) and debug2 (node3, node4), MaxArraySize=$max_array, state in $LAB"
}

stop_pidfile() { # stop_pidfile <name> <pidfile>
  local name=$1 f=$2 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null || true); [ -n "$pid" ] || { rm -f "$f"; return 0; }
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { echo "  $name ($pid) did not stop: SIGKILL"; kill -KILL "$pid"; }
  fi
  rm -f "$f"
}

stop() {
  need_root
  local purge=0
  [ "${1:-}" = --purge ] && purge=1
  if scontrol ping >/dev/null 2>&1; then
    local jobs; jobs=$(squeue -h -o %A | sort -u | tr '\n' ' ')
    if [ -n "$jobs" ]; then
      scancel $jobs
      for _ in $(seq 1 100); do [ -z "$(squeue -h -o %A)" ] && break; sleep 0.2; done
    fi
  fi
  for f in "$LAB"/run/slurmd_*.pid; do [ -e "$f" ] && stop_pidfile "slurmd" "$f"; done
  stop_pidfile slurmctld "$LAB/run/slurmctld.pid"
  stop_pidfile slurmdbd "$LAB/run/slurmdbd.pid"
  stop_pidfile mariadbd "$LAB/mysql/run/mysqld.pid"
  if [ -f "$LAB/run/started-munge" ]; then stop_pidfile munged /run/munge/munged.pid; rm -f "$LAB/run/started-munge"; fi
  if [ "$purge" = 1 ]; then
    rm -rf "$LAB" /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf
    sed -i "/$HOSTS_MARK/d" /etc/hosts 2>/dev/null || true
  fi
  if [ "$purge" = 1 ]; then echo "slurm test cluster stopped and purged"; else echo "slurm test cluster stopped"; fi
}

status() {
  scontrol ping >/dev/null 2>&1 || { echo "slurm test cluster: not running"; exit 1; }
  sinfo; squeue
}

case ${1:-} in
  start) shift; start "$@";;
  stop) shift; stop "$@";;
  status) status;;
  *) echo "usage: $0 start [--max-array-size N] | stop [--purge] | status" >&2; exit 2;;
esac
