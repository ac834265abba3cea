#!/usr/bin/env bash
# Two real, independent Slurm clusters on this one machine, for slurmgate's tests, demo and CI.
#
#   bash test/slurm/cluster.sh up            start (or check) everything; idempotent
#   bash test/slurm/cluster.sh down          stop only the daemons that `up` started
#   bash test/slurm/cluster.sh status        pids, cgroup mode, sinfo of both clusters (exit 1 if not all up)
#   bash test/slurm/cluster.sh env alpha     print `export ...` lines; use with eval "$(... env alpha)"
#   bash test/slurm/cluster.sh purge         down + delete the whole state directory
#
# Layout (DIR=${SLURMGATE_TEST_DIR:-/var/tmp/slurmgate-test}):
#   DIR/alpha/etc/{slurm,gres,cgroup}.conf   DIR/alpha/{state,spool,run}   (same for beta)
#   DIR/dbd/slurmdbd.conf   DIR/mysql/{data,...}   DIR/log/*.log   DIR/dev/<cluster>/nvidia*   DIR/run/*
#   DIR/shared              the "shared filesystem" job root (0755)
#   DIR/clusters.json       machine-readable description for test code
#
# Must run as root (SlurmUser=root, mknod, cgroups). Needs Debian's slurm-wlm, munge, slurmdbd and
# mariadb-server; they are installed with apt-get when missing.
#
# Two slurmd on one host: both clusters use NodeName=$(hostname -s) with NodeAddr=127.0.0.1. Each slurmd
# reads its own slurm.conf (-f) and so has its own port, spool dir and pid file; nothing else is shared
# between them except the cgroup v1 hierarchy, where job cgroups are named .../slurm/uid_<uid>/job_<id>.
# Both clusters would start counting job ids at 1 and two jobs with the same id would then share (and
# tear down) one cgroup, so beta's job ids start at FirstJobId=5000000.
#
# Alpha has a second node, $(hostname -s)-2, on this same host, for multi-node jobs (partition `multi`):
# a second slurmd of alpha started with `-N <node>`, on its own Port. Debian's Slurm is built with
# multiple-slurmd support (cgroups are .../slurm_<node>/...), so the two nodes' job cgroups are apart;
# alpha's spool, pid and log paths carry the node name (%n) so its two slurmd share none of them.
set -euo pipefail

DIR=${SLURMGATE_TEST_DIR:-/var/tmp/slurmgate-test}
PORT_BASE=${SLURMGATE_PORT_BASE:-16800}
UP_TIMEOUT=${SLURMGATE_UP_TIMEOUT:-120}
HOST=$(hostname -s)
CLUSTERS=(alpha beta)

DBD_PORT=$((PORT_BASE + 19))
MYSQL_PORT=$((PORT_BASE + 6))
MYSQL_DIR=$DIR/mysql
MYSQL_SOCK=$MYSQL_DIR/mysqld.sock
MYSQL_PID=$MYSQL_DIR/mariadbd.pid
DB_PASS=slurmgate-test
RUN=$DIR/run
LOG=$DIR/log

ctld_port() { case $1 in alpha) echo $((PORT_BASE + 17)) ;; beta) echo $((PORT_BASE + 27)) ;; esac; }
slurmd_port() { case $1 in alpha) echo $((PORT_BASE + 18)) ;; beta) echo $((PORT_BASE + 28)) ;; esac; }
# The second node of alpha and its slurmd port.
NODE2=$HOST-2
NODE2_PORT=$((PORT_BASE + 16))
# cluster_nodes CLUSTER: the NodeNames whose slurmd runs here (the first one holds the GPUs).
cluster_nodes() { case $1 in alpha) echo "$HOST $NODE2" ;; beta) echo "$HOST" ;; esac; }
# slurmd_pidfile CLUSTER NODE: where that node's slurmd writes its pid (SlurmdPidFile below).
slurmd_pidfile() { case $1 in alpha) echo "$DIR/$1/run/slurmd-$2.pid" ;; *) echo "$DIR/$1/run/slurmd.pid" ;; esac; }
cluster_gres() { case $1 in alpha) echo gpu:a100:2 ;; beta) echo gpu:h100:1 ;; esac; }
conf_of() { echo "$DIR/$1/etc/slurm.conf"; }

say() { echo "[cluster.sh] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Print the last lines of the given logs (used before failing).
show_logs() {
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    echo "----- last lines of $f -----" >&2
    tail -n 25 "$f" >&2
  done
}
fail() { local msg=$1; shift; show_logs "$@"; die "$msg"; }

require_root() { [ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root, cgroups, mknod)"; }

# pid_alive PIDFILE COMM: true when the pid in PIDFILE is running and its command name is COMM
# (so a recycled pid never makes us think a daemon is up, nor lets `down` kill a stranger).
pid_alive() {
  local pidfile=$1 comm=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(tr -dc '0-9' 2>/dev/null <"$pidfile") || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 1
  # A zombie (exited, not yet reaped by its parent) is not alive.
  local st
  st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$st" != Z ] && [ "$st" != X ]
}

# stop_pidfile PIDFILE COMM: SIGTERM, wait up to 15 s, then SIGKILL. Only the recorded pid.
stop_pidfile() {
  local pidfile=$1 comm=$2 pid i
  if pid_alive "$pidfile" "$comm"; then
    pid=$(tr -dc '0-9' 2>/dev/null <"$pidfile")
    say "stopping $comm (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      pid_alive "$pidfile" "$comm" || break
      sleep 0.1
    done
    if pid_alive "$pidfile" "$comm"; then
      say "$comm (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- packages
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_packages() {
  local need=() p
  for p in slurm-wlm slurmdbd munge mariadb-server openssh-server; do
    pkg_installed "$p" || need+=("$p")
  done
  for p in slurmctld slurmd slurmdbd sacctmgr munged mariadbd mariadb-install-db; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || need+=(slurm-wlm slurmdbd munge mariadb-server)
  done
  [ ${#need[@]} -eq 0 ] && return 0
  say "installing packages: ${need[*]} (apt-get update first)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >"$LOG/apt.log" 2>&1 || fail "apt-get update failed" "$LOG/apt.log"
  # shellcheck disable=SC2046
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq $(printf '%s\n' "${need[@]}" | sort -u) >>"$LOG/apt.log" 2>&1 ||
    fail "apt-get install failed" "$LOG/apt.log"
}

# ---------------------------------------------------------------- munge
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge() {
  munge_works && return 0
  say "starting munged"
  mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null 2>&1; then mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 || true; fi
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  # munged refuses to start unless these belong to the munge user and are not group/world writable.
  chown -R munge: /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 0700 /etc/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged >"$LOG/munged-start.log" 2>&1 9>&- ||
    fail "munged did not start" "$LOG/munged-start.log" /var/log/munge/munged.log
  local i
  for ((i = 0; i < 50; i++)); do munge_works && break; sleep 0.1; done
  munge_works || fail "munge does not work" /var/log/munge/munged.log
  # Remember that we started it, so `down` stops it (and only then).
  cp /run/munge/munged.pid "$RUN/munged.pid" 2>/dev/null || pgrep -n -x munged >"$RUN/munged.pid"
}

# ---------------------------------------------------------------- MariaDB (private instance)
sql() { mariadb --no-defaults -S "$MYSQL_SOCK" -uroot -e "$1"; }
mysql_ready() { mariadb-admin --no-defaults -S "$MYSQL_SOCK" -uroot ping >/dev/null 2>&1; }

ensure_mariadb() {
  if pid_alive "$MYSQL_PID" mariadbd && mysql_ready; then return 0; fi
  stop_pidfile "$MYSQL_PID" mariadbd
  mkdir -p "$MYSQL_DIR"
  chown mysql: "$MYSQL_DIR"
  if [ ! -d "$MYSQL_DIR/data/mysql" ]; then
    say "initialising MariaDB datadir"
    rm -rf "$MYSQL_DIR/data"
    mariadb-install-db --no-defaults --user=mysql --datadir="$MYSQL_DIR/data" \
      --auth-root-authentication-method=socket --skip-test-db >"$LOG/mariadb-install.log" 2>&1 ||
      fail "mariadb-install-db failed" "$LOG/mariadb-install.log"
  fi
  say "starting mariadbd (port $MYSQL_PORT)"
  # Started as root with --user=mysql: mariadbd drops privileges itself. setsid+nohup so it outlives us.
  setsid nohup /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$MYSQL_DIR/data" \
    --socket="$MYSQL_SOCK" --port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --pid-file="$MYSQL_PID" --log-error="$LOG/mariadb.log" \
    --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 --innodb-flush-log-at-trx-commit=2 \
    </dev/null >/dev/null 2>&1 9>&- &
  local i
  for ((i = 0; i < 300; i++)); do mysql_ready && break; sleep 0.1; done
  mysql_ready || fail "mariadbd did not come up" "$LOG/mariadb.log"
  sql "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
       CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
       CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" || fail "could not create the slurm database" "$LOG/mariadb.log"
}

# ---------------------------------------------------------------- cgroup mode
# v1: proctrack/task/jobacct_gather via cgroup v1 with ConstrainRAMSpace -> over-memory jobs end OUT_OF_MEMORY.
# none: linuxproc + OverMemoryKill polling -> over-memory jobs are killed (FAILED, signal 9).
# Override with SLURMGATE_CGROUP=v1|none.
detect_cgroup_mode() {
  case ${SLURMGATE_CGROUP:-auto} in
  v1 | none) echo "$SLURMGATE_CGROUP"; return ;;
  esac
  local probe=/sys/fs/cgroup/memory/slurmgate-probe-$$
  if grep -qE '^cgroup /sys/fs/cgroup/memory cgroup .*memory' /proc/mounts &&
    grep -qE '^cgroup /sys/fs/cgroup/freezer cgroup ' /proc/mounts &&
    mkdir "$probe" 2>/dev/null; then
    local ok=no
    [ -e "$probe/memory.limit_in_bytes" ] && echo $((64 << 20)) >"$probe/memory.limit_in_bytes" 2>/dev/null && ok=yes
    rmdir "$probe" 2>/dev/null || true
    [ $ok = yes ] && { echo v1; return; }
  fi
  echo none
}

# ---------------------------------------------------------------- configuration
# write_if_changed FILE MODE: stdin -> FILE, touched only when the content differs.
write_if_changed() {
  local f=$1 mode=$2 tmp
  tmp=$(mktemp "$f.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$f" ] && cmp -s "$tmp" "$f"; then rm -f "$tmp"; else mv -f "$tmp" "$f"; fi
}

real_memory_mb() {
  local total
  total=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
  # Slurm drains a node whose real memory is below RealMemory; stay under what the machine has.
  if [ "$total" -ge 5000 ]; then echo 4000; else echo $((total * 7 / 10)); fi
}

make_fake_gpus() {
  local c=$1 n=$2 i d=$DIR/dev/$1
  mkdir -p "$d"
  for ((i = 0; i < n; i++)); do
    [ -e "$d/nvidia$i" ] && continue
    # A char device (NVIDIA's major 195) keeps slurmd from warning; a plain file also works.
    mknod "$d/nvidia$i" c 195 "$i" 2>/dev/null || : >"$d/nvidia$i"
  done
}

write_configs() {
  local mode=$1 cpus mem c etc
  cpus=$(nproc)
  mem=$(real_memory_mb)
  mkdir -p "$DIR/dbd" "$DIR/shared" "$LOG" "$RUN"
  chmod 0755 "$DIR" "$DIR/shared"

  write_if_changed "$DIR/dbd/slurmdbd.conf" 0600 <<EOF
# generated by test/slurm/cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF

  for c in "${CLUSTERS[@]}"; do
    etc=$DIR/$c/etc
    mkdir -p "$etc" "$DIR/$c/state" "$DIR/$c/spool" "$DIR/$c/run"
    local gres_line partitions first_job=1 extra_nodes="" node_tag=""
    case $c in
    alpha)
      make_fake_gpus alpha 2
      gres_line="NodeName=$HOST Name=gpu Type=a100 File=$DIR/dev/alpha/nvidia[0-1]"
      partitions="PartitionName=cpu Nodes=$HOST Default=YES MaxTime=01:00:00 State=UP
PartitionName=short Nodes=$HOST MaxTime=00:10:00 State=UP
PartitionName=gpu Nodes=$HOST MaxTime=02:00:00 State=UP
PartitionName=multi Nodes=$HOST,$NODE2 MaxTime=01:00:00 State=UP"
      # Two slurmd of one cluster on one host: each node's own spool, pid file and log (%n = node name).
      node_tag=%n
      extra_nodes="NodeName=$NODE2 NodeAddr=127.0.0.1 NodeHostname=$HOST Port=$NODE2_PORT CPUs=$cpus RealMemory=$mem State=UNKNOWN"
      ;;
    beta)
      make_fake_gpus beta 1
      first_job=5000000
      gres_line="NodeName=$HOST Name=gpu Type=h100 File=$DIR/dev/beta/nvidia0"
      partitions="PartitionName=cpu Nodes=$HOST Default=YES MaxTime=01:00:00 State=UP
PartitionName=gpu Nodes=$HOST MaxTime=04:00:00 State=UP"
      ;;
    esac

    local plugins
    if [ "$mode" = v1 ]; then
      plugins="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/cgroup"
      write_if_changed "$etc/cgroup.conf" 0644 <<EOF
# generated by test/slurm/cluster.sh
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
ConstrainCores=no
ConstrainDevices=no
EOF
    else
      plugins="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill"
      rm -f "$etc/cgroup.conf"
    fi

    write_if_changed "$etc/gres.conf" 0644 <<EOF
# generated by test/slurm/cluster.sh: fake GPUs (no real devices behind these files)
AutoDetect=off
$gres_line
EOF

    write_if_changed "$etc/slurm.conf" 0644 <<EOF
# generated by test/slurm/cluster.sh -- cluster $c (cgroup mode: $mode)
ClusterName=$c
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$(ctld_port "$c")
SlurmdPort=$(slurmd_port "$c")
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
StateSaveLocation=$DIR/$c/state
SlurmdSpoolDir=$DIR/$c/spool${node_tag:+/$node_tag}
SlurmctldPidFile=$DIR/$c/run/slurmctld.pid
SlurmdPidFile=$DIR/$c/run/slurmd${node_tag:+-$node_tag}.pid
SlurmctldLogFile=$LOG/$c-slurmctld.log
SlurmdLogFile=$LOG/$c-slurmd${node_tag:+-$node_tag}.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
FirstJobId=$first_job
MaxJobCount=30000
MinJobAge=300
KillWait=2
OverTimeLimit=0
InactiveLimit=0
ReturnToService=2
SlurmdTimeout=300
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
$plugins
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/gpu,gres/gpu:a100,gres/gpu:h100
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$cpus RealMemory=$mem Gres=$(cluster_gres "$c") State=UNKNOWN
${extra_nodes:+$extra_nodes
}$partitions
EOF
  done
}

config_hash() {
  cat "$DIR/dbd/slurmdbd.conf" "$DIR"/alpha/etc/*.conf "$DIR"/beta/etc/*.conf 2>/dev/null | sha256sum | cut -d' ' -f1
}

write_clusters_json() {
  local mode=$1 c first=1 parts
  {
    echo "{"
    for c in "${CLUSTERS[@]}"; do
      case $c in
      alpha) parts='["cpu", "short", "gpu", "multi"]' ;;
      beta) parts='["cpu", "gpu"]' ;;
      esac
      [ $first = 1 ] || echo ","
      first=0
      printf '  "%s": {"slurmConf": "%s", "sharedRoot": "%s", "ctldPort": %s, "slurmdPort": %s, "node": "%s", "nodes": ["%s"], "gres": "%s", "partitions": %s, "cgroupMode": "%s"}' \
        "$c" "$(conf_of "$c")" "$DIR/shared" "$(ctld_port "$c")" "$(slurmd_port "$c")" "$HOST" "$(cluster_nodes "$c" | sed 's/ /", "/g')" "$(cluster_gres "$c")" "$parts" "$mode"
    done
    printf '\n}\n'
  } | write_if_changed "$DIR/clusters.json" 0644
}

# ---------------------------------------------------------------- slurm daemons
with_conf() { local c=$1; shift; SLURM_CONF=$(conf_of "$c") "$@"; }

dbd_ready() { with_conf alpha timeout 10 sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }

ensure_slurmdbd() {
  if pid_alive "$RUN/slurmdbd.pid" slurmdbd && dbd_ready; then return 0; fi
  stop_pidfile "$RUN/slurmdbd.pid" slurmdbd
  say "starting slurmdbd (port $DBD_PORT)"
  # slurmdbd looks for slurmdbd.conf next to $SLURM_CONF.
  SLURM_CONF=$DIR/dbd/slurm.conf slurmdbd >"$LOG/slurmdbd-start.log" 2>&1 9>&- ||
    fail "slurmdbd did not start" "$LOG/slurmdbd-start.log" "$LOG/slurmdbd.log"
  local i
  for ((i = 0; i < 120; i++)); do dbd_ready && break; sleep 0.25; done
  dbd_ready || fail "slurmdbd does not answer" "$LOG/slurmdbd.log" "$LOG/mariadb.log"
}

ensure_accounting() {
  local c
  for c in "${CLUSTERS[@]}"; do
    if ! with_conf "$c" sacctmgr -n -P show cluster format=cluster | grep -qx "$c"; then
      with_conf "$c" sacctmgr -i add cluster "$c" >/dev/null || fail "sacctmgr add cluster $c failed" "$LOG/slurmdbd.log"
    fi
    if [ -z "$(with_conf "$c" sacctmgr -n -P show assoc cluster="$c" account=default user= format=account)" ]; then
      with_conf "$c" sacctmgr -i add account default cluster="$c" Description=slurmgate-tests Organization=slurmgate >/dev/null ||
        fail "sacctmgr add account failed on $c" "$LOG/slurmdbd.log"
    fi
    if [ -z "$(with_conf "$c" sacctmgr -n -P show assoc cluster="$c" account=default user=root format=user)" ]; then
      with_conf "$c" sacctmgr -i add user root account=default cluster="$c" DefaultAccount=default >/dev/null ||
        fail "sacctmgr add user root failed on $c" "$LOG/slurmdbd.log"
    fi
  done
}

ctld_ready() { with_conf "$1" timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_cluster() {
  local c=$1 conf n
  conf=$(conf_of "$c")
  if ! pid_alive "$DIR/$c/run/slurmctld.pid" slurmctld; then
    say "starting slurmctld $c (port $(ctld_port "$c"))"
    SLURM_CONF=$conf slurmctld -f "$conf" >"$LOG/$c-slurmctld-start.log" 2>&1 9>&- ||
      fail "slurmctld $c did not start" "$LOG/$c-slurmctld-start.log" "$LOG/$c-slurmctld.log"
  fi
  for n in $(cluster_nodes "$c"); do
    pid_alive "$(slurmd_pidfile "$c" "$n")" slurmd && continue
    say "starting slurmd $c node $n"
    [ "$c" = beta ] || mkdir -p "$DIR/$c/spool/$n"
    # -N: which NodeName this slurmd is (both of alpha's nodes have NodeHostname=$HOST).
    SLURM_CONF=$conf slurmd -f "$conf" -N "$n" >"$LOG/$c-slurmd-$n-start.log" 2>&1 9>&- ||
      fail "slurmd $c $n did not start" "$LOG/$c-slurmd-$n-start.log" "$LOG/$c-slurmd.log" "$LOG/$c-slurmd-$n.log"
  done
}

stop_cluster() {
  local c=$1 n
  for n in $(cluster_nodes "$c"); do stop_pidfile "$(slurmd_pidfile "$c" "$n")" slurmd; done
  # A slurmd started before alpha had two nodes wrote this pid file.
  stop_pidfile "$DIR/$c/run/slurmd.pid" slurmd
  stop_pidfile "$DIR/$c/run/slurmctld.pid" slurmctld
}

node_state() { with_conf "$1" timeout 10 sinfo -h -N -n "${2:-$HOST}" -o '%T' 2>/dev/null | head -n1; }
node_gres() { with_conf "$1" timeout 10 sinfo -h -N -n "${2:-$HOST}" -o '%G' 2>/dev/null | head -n1; }

# wait_node_ready CLUSTER DEADLINE [NODE]: node idle (or busy), the first one with its GPUs; resumes drained/down nodes.
wait_node_ready() {
  local c=$1 deadline=$2 n=${3:-$HOST} st resumed=0 want
  want=$(cluster_gres "$c")
  [ "$n" = "$HOST" ] || want="(null)"
  while :; do
    st=$(node_state "$c" "$n")
    case $st in
    idle | mixed | allocated | completing)
      [ "$(node_gres "$c" "$n")" = "$want" ] && return 0
      ;;
    *drain* | down* | fail*)
      if [ $resumed -lt 3 ]; then
        say "$c: node $n is $st; resuming it"
        with_conf "$c" scontrol update nodename="$n" state=resume >/dev/null 2>&1 || true
        resumed=$((resumed + 1))
      fi
      ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      with_conf "$c" sinfo -N -l >&2 2>/dev/null || true
      with_conf "$c" scontrol show node "$n" 2>/dev/null | grep -iE 'State|Reason|Gres' >&2 || true
      fail "$c: node $n not ready (state '$st', gres '$(node_gres "$c" "$n")')" "$LOG/$c-slurmctld.log" "$LOG/$c-slurmd.log" "$LOG/$c-slurmd-$n.log"
    fi
    sleep 0.25
  done
}

# smoke_job CLUSTER: a trivial batch job must reach COMPLETED within 60 s. (Polled with scontrol rather than
# `sbatch -W`, whose own polling interval grows to several seconds.)
smoke_job() {
  local c=$1 id st="" i
  id=$(with_conf "$c" sbatch --parsable -J slurmgate-smoke -o /dev/null -e /dev/null -t 1 --mem=10 --wrap true 2>&1) ||
    fail "$c: smoke job submission failed: $id" "$LOG/$c-slurmctld.log"
  id=${id%%;*}
  [[ $id =~ ^[0-9]+$ ]] || fail "$c: smoke job submission printed no job id: $id" "$LOG/$c-slurmctld.log"
  for ((i = 0; i < 300; i++)); do
    st=$(with_conf "$c" scontrol -o show job "$id" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p')
    case $st in
    COMPLETED) return 0 ;;
    PENDING | CONFIGURING | RUNNING | COMPLETING | "") ;;
    *) break ;;
    esac
    sleep 0.2
  done
  fail "$c: smoke job $id did not complete (state '$st')" "$LOG/$c-slurmctld.log" "$LOG/$c-slurmd.log"
}

all_answering() {
  local c n st
  pid_alive "$RUN/slurmdbd.pid" slurmdbd || return 1
  pid_alive "$MYSQL_PID" mariadbd || return 1
  munge_works || return 1
  for c in "${CLUSTERS[@]}"; do
    pid_alive "$DIR/$c/run/slurmctld.pid" slurmctld || return 1
    for n in $(cluster_nodes "$c"); do
      pid_alive "$(slurmd_pidfile "$c" "$n")" slurmd || return 1
      st=$(node_state "$c" "$n") || return 1
      [ -n "$st" ] || return 1
    done
  done
}

# ---------------------------------------------------------------- subcommands
cmd_up() {
  require_root
  local t0 mode c n deadline
  t0=$(date +%s.%N)
  mkdir -p "$DIR" "$LOG" "$RUN"
  # Serialise concurrent `up`/`down` (parallel test files). Daemons are started with fd 9 closed
  # (`9>&-`): a daemon that inherited it would hold the lock for ever.
  exec 9>"$DIR/.lock"
  flock -w 300 9 || die "another cluster.sh holds $DIR/.lock"
  ensure_packages

  mode=$(detect_cgroup_mode)
  write_configs "$mode"
  echo "$mode" >"$RUN/cgroup_mode"
  write_clusters_json "$mode"

  local hash old
  hash=$(config_hash)
  old=$(cat "$RUN/config.sha" 2>/dev/null || true)
  if all_answering && [ "$old" = "$hash" ]; then
    deadline=$(($(date +%s) + UP_TIMEOUT))
    for c in "${CLUSTERS[@]}"; do for n in $(cluster_nodes "$c"); do wait_node_ready "$c" "$deadline" "$n"; done; done
    say "already up (cgroup mode $mode) in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
    return 0
  fi
  # Also when not all of them answer: a daemon left from the old configuration (say, alpha's slurmd
  # from before it had two nodes, under another pid file) would hold its port against the new ones.
  if [ -n "$old" ] && [ "$old" != "$hash" ]; then
    say "configuration changed; restarting the slurm daemons"
    for c in "${CLUSTERS[@]}"; do stop_cluster "$c"; done
    stop_pidfile "$RUN/slurmdbd.pid" slurmdbd
  fi

  ensure_munge
  ensure_mariadb
  ensure_slurmdbd
  ensure_accounting
  for c in "${CLUSTERS[@]}"; do start_cluster "$c"; done
  deadline=$(($(date +%s) + UP_TIMEOUT))
  for c in "${CLUSTERS[@]}"; do
    until ctld_ready "$c"; do
      [ "$(date +%s)" -lt "$deadline" ] || fail "$c: slurmctld does not answer" "$LOG/$c-slurmctld.log"
      sleep 0.2
    done
  done
  for c in "${CLUSTERS[@]}"; do for n in $(cluster_nodes "$c"); do wait_node_ready "$c" "$deadline" "$n"; done; done
  for c in "${CLUSTERS[@]}"; do smoke_job "$c" & done
  local failed=0
  for c in "${CLUSTERS[@]}"; do wait -n || failed=1; done
  [ $failed = 0 ] || die "smoke job failed"
  echo "$hash" >"$RUN/config.sha"
  say "up (cgroup mode $mode) in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s; clusters: $DIR/clusters.json"
}

cmd_down() {
  require_root
  local c
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock -w 300 9 || die "another cluster.sh holds $DIR/.lock"
  # gamma (gamma.sh, one test's cluster) lives on this slurmdbd and under DIR: never leave it behind.
  if [ -f "$DIR/gamma/run/slurmctld.pid" ] || [ -f "$DIR/gamma/run/slurmd.pid" ]; then
    bash "$(dirname "${BASH_SOURCE[0]}")/gamma.sh" down 9>&- || true
  fi
  for c in "${CLUSTERS[@]}"; do stop_cluster "$c"; done
  stop_pidfile "$RUN/slurmdbd.pid" slurmdbd
  stop_pidfile "$MYSQL_PID" mariadbd
  # munged only if this script started it (RUN/munged.pid exists only then).
  stop_pidfile "$RUN/munged.pid" munged
  rm -f "$RUN/config.sha"
  say "down"
}

cmd_status() {
  local c n ok=0 mode
  mode=$(cat "$RUN/cgroup_mode" 2>/dev/null || echo unknown)
  case $mode in
  v1) echo "cgroup mode: v1 (proctrack/cgroup, task/cgroup, ConstrainRAMSpace; over-memory jobs end OUT_OF_MEMORY)" ;;
  none) echo "cgroup mode: none (proctrack/linuxproc, OverMemoryKill; over-memory jobs end FAILED by signal 9)" ;;
  *) echo "cgroup mode: unknown (never brought up)" ;;
  esac
  echo "state dir: $DIR   shared root: $DIR/shared"
  show() { if pid_alive "$1" "$2"; then echo "  $3: running (pid $(tr -dc 0-9 <"$1"))"; else echo "  $3: stopped"; ok=1; fi; }
  if munge_works; then
    if [ -f "$RUN/munged.pid" ]; then echo "  munged: running (started by cluster.sh)"; else echo "  munged: running (not ours)"; fi
  else
    echo "  munged: not working"; ok=1
  fi
  show "$MYSQL_PID" mariadbd "mariadbd (port $MYSQL_PORT)"
  show "$RUN/slurmdbd.pid" slurmdbd "slurmdbd (port $DBD_PORT)"
  for c in "${CLUSTERS[@]}"; do
    show "$DIR/$c/run/slurmctld.pid" slurmctld "$c slurmctld (port $(ctld_port "$c"))"
    for n in $(cluster_nodes "$c"); do
      show "$(slurmd_pidfile "$c" "$n")" slurmd "$c slurmd $n (port $([ "$n" = "$HOST" ] && slurmd_port "$c" || echo "$NODE2_PORT"))"
    done
  done
  for c in "${CLUSTERS[@]}"; do
    echo "== $c ($(conf_of "$c"))"
    with_conf "$c" timeout 10 sinfo -o '%P %a %l %D %T %G %N' 2>&1 || ok=1
  done
  return $ok
}

cmd_env() {
  local c=${1:-}
  case $c in
  alpha | beta) ;;
  *) die "usage: $0 env alpha|beta" ;;
  esac
  echo "export SLURM_CONF=$(conf_of "$c")"
  echo "export SLURMGATE_TEST_CLUSTER=$c"
  echo "export SLURMGATE_SHARED_ROOT=$DIR/shared"
  echo "export SLURMGATE_TEST_DIR=$DIR"
}

cmd_purge() {
  cmd_down
  case $DIR in / | "") die "refusing to remove '$DIR'" ;; esac
  rm -rf "$DIR"
  say "removed $DIR"
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) shift; cmd_env "$@" ;;
purge) cmd_purge ;;
*)
  echo "usage: $0 up|down|status|env <alpha|beta>|purge" >&2
  exit 2
  ;;
esac
