#!/usr/bin/env bash
# A real single-node SLURM on loopback, with accounting (slurmdbd + a private MariaDB), for trying
# the sweep launcher's SLURM path on one machine and for CI. Debian/Ubuntu, run as root.
#
#   bash scripts/slurm_local.sh start            # install if missing, start, wait until idle
#   bash scripts/slurm_local.sh status           # exit 0 iff every daemon runs and the node is up
#   bash scripts/slurm_local.sh stop [--purge]   # cancel jobs, stop daemons; --purge wipes state + DB
#
# Idempotent: `start` on a running cluster only checks it. State, logs and the database live
# under $LOCAL_SLURM_DIR (default /tmp/local_slurm); the config goes to /etc/slurm/slurm.conf
# (the path every SLURM client reads), which is never overwritten unless this script wrote it.
# Why each step is the way it is: docs/slurm.md ("A real SLURM on one machine").
set -euo pipefail

DIR="${LOCAL_SLURM_DIR:-/tmp/local_slurm}"
ETC=/etc/slurm
MARK="# written by timestep-bench scripts/slurm_local.sh"
DB_PORT=3307
DBD_PORT=6819
DB_USER=slurm
DB_PASS=slurm_local_pw
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
HOST="$(hostname -s)"

log() { printf '[slurm_local] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------ helpers
pid_alive() {  # pid_alive PIDFILE
  [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

detach() {  # detach CMD... : run without holding the caller's stdio (docs/slurm.md, point 5)
  setsid -f "$@" </dev/null >/dev/null 2>&1
}

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "timed out after ${secs}s waiting for $what (logs: $DIR/log)"
    sleep 0.5
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_pidfile() {  # stop_pidfile PIDFILE NAME: TERM, then KILL after a timeout
  local f=$1 name=$2 pid
  pid_alive "$f" || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not exit after TERM; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# ------------------------------------------------------------------ install
install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  log "installing ${missing[*]}"
  # Post-install scripts must not start system services (docs/slurm.md, point 6).
  local tmp_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    tmp_policy=1
  fi
  local rc=0
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
      >"/tmp/slurm_local_apt.log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >>"/tmp/slurm_local_apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
      >>"/tmp/slurm_local_apt.log" 2>&1 || rc=$?
  fi
  [[ -n "$tmp_policy" ]] && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "apt-get install failed (see /tmp/slurm_local_apt.log)"
}

# ------------------------------------------------------------------ configuration
write_configs() {
  mkdir -p "$DIR"/{ctld,d,run,log,db} "$ETC"
  getent hosts "$HOST" >/dev/null || die "hostname '$HOST' does not resolve; add '127.0.0.1 $HOST' to /etc/hosts"
  if [[ -e "$ETC/slurm.conf" ]] && ! grep -qF "$MARK" "$ETC/slurm.conf"; then
    die "$ETC/slurm.conf exists and was not written by this script; refusing to overwrite it"
  fi
  # The node line comes from the hardware (slurmd -C), plus the loopback address.
  local node
  node=$(slurmd -C | head -1)
  [[ "$node" == NodeName=* ]] || die "slurmd -C gave no node line: $node"
  cat >"$ETC/slurm.conf" <<EOF
$MARK
ClusterName=localcluster
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Requeued jobs wait cred_expire seconds (default 120) before they may start again.
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# submitit polls sacct: without accounting a cancelled job's state is never known.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# Schedule at once (default batch_sched_delay=3 s) and re-run the scheduler every second.
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=300
KillWait=5
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  umask 077
  cat >"$ETC/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=$HOST
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
EOF
  umask 022
  chown root:root "$ETC/slurmdbd.conf"
  chmod 600 "$ETC/slurmdbd.conf"
}

# ------------------------------------------------------------------ daemons, in order
# The start order and why: docs/slurm.md, point 3.
start_munge() {
  if [[ -S /run/munge/munge.socket.2 ]] && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  log "starting munged"
  [[ -s /etc/munge/munge.key ]] || {
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 755 /run/munge
  rm -f /run/munge/munge.socket.2 /run/munge/munged.pid
  detach runuser -u munge -- /usr/sbin/munged
  wait_for 20 "munged" bash -c 'munge -n </dev/null | unmunge'
}

start_mariadb() {
  local data="$DIR/db/data" sock="$DIR/run/mariadb.sock"
  if pid_alive "$DIR/run/mariadb.pid" && port_open "$DB_PORT"; then return 0; fi
  if [[ ! -d "$data/mysql" ]]; then
    log "initialising a private MariaDB in $data"
    mkdir -p "$data"
    chown -R mysql:mysql "$DIR/db"
    mariadb-install-db --no-defaults --user=mysql --datadir="$data" --auth-root-authentication-method=socket \
      --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed ($DIR/log/mariadb-install.log)"
  fi
  chown mysql:mysql "$DIR/run"
  log "starting MariaDB on 127.0.0.1:$DB_PORT"
  detach /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$data" --bind-address=127.0.0.1 \
    --port="$DB_PORT" --socket="$sock" --pid-file="$DIR/run/mariadb.pid" \
    --log-error="$DIR/log/mariadb.log" --skip-name-resolve
  wait_for 60 "MariaDB" port_open "$DB_PORT"
  wait_for 30 "the MariaDB socket" mariadb --no-defaults -uroot --socket="$sock" -e "SELECT 1"
  mariadb --no-defaults -uroot --socket="$sock" <<EOF
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
  if pid_alive "$DIR/run/slurmdbd.pid" && port_open "$DBD_PORT"; then return 0; fi
  log "starting slurmdbd"
  detach /usr/sbin/slurmdbd
  wait_for 60 "slurmdbd on port $DBD_PORT" port_open "$DBD_PORT"
}

start_slurmctld() {
  if pid_alive "$DIR/run/slurmctld.pid"; then return 0; fi
  log "starting slurmctld"
  detach /usr/sbin/slurmctld
  wait_for 60 "slurmctld" scontrol ping
}

start_slurmd() {
  if pid_alive "$DIR/run/slurmd.pid"; then return 0; fi
  log "starting slurmd"
  detach /usr/sbin/slurmd
}

node_ready() {
  local state
  state=$(sinfo -h -N -o '%t' 2>/dev/null | head -1)
  [[ "$state" =~ ^(idle|mix|mixed|alloc|allocated|comp|completing)$ ]]
}

cmd_start() {
  [[ $EUID -eq 0 ]] || die "run as root (it installs packages and starts system daemons)"
  local t0=$SECONDS
  install_packages
  write_configs
  start_munge
  start_mariadb
  start_slurmdbd
  start_slurmctld
  start_slurmd
  wait_for 60 "the node to become idle (sinfo)" node_ready
  # A node left DOWN/DRAIN by an earlier unclean stop comes back with ReturnToService=2.
  log "SLURM is up on $HOST after $((SECONDS - t0)) s: $(sinfo -h -o '%P %a %D %t' | head -1)"
}

cmd_status() {
  local ok=0 name f
  for name in mariadb slurmdbd slurmctld slurmd; do
    f="$DIR/run/$name.pid"
    if pid_alive "$f"; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: stopped"; ok=1; fi
  done
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then echo "munged: running"; else
    echo "munged: stopped"; ok=1; fi
  if node_ready; then sinfo; else echo "node: not ready"; ok=1; fi
  return $ok
}

cmd_stop() {
  local purge=${1:-}
  if command -v squeue >/dev/null && scontrol ping >/dev/null 2>&1; then
    local jobs
    jobs=$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')
    if [[ -n "${jobs// /}" ]]; then
      log "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      sleep 1
    fi
  fi
  stop_pidfile "$DIR/run/slurmd.pid" slurmd
  stop_pidfile "$DIR/run/slurmctld.pid" slurmctld
  stop_pidfile "$DIR/run/slurmdbd.pid" slurmdbd
  stop_pidfile "$DIR/run/mariadb.pid" mariadb
  stop_pidfile /run/munge/munged.pid munged
  if [[ "$purge" == "--purge" ]]; then
    # State and accounting DB go together: job ids restart at 1, so keeping one without the
    # other would duplicate job ids in sacct (docs/slurm.md, point 7).
    log "purging $DIR and the config files this script wrote"
    rm -rf "$DIR"
    for f in "$ETC/slurm.conf" "$ETC/slurmdbd.conf"; do
      if [[ -e "$f" ]] && grep -qF "$MARK" "$f"; then rm -f "$f"; fi
    done
  fi
  log "stopped"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) shift; cmd_stop "${1:-}" ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop [--purge]|status" >&2; exit 2 ;;
esac
