#!/usr/bin/env bash
# `make test` / `make test-slurm`: pytest, with the throw-away SLURM cluster of the tests marked `slurm`
# started first and always stopped after, when this machine can run it (root, and apt-get or the Slurm
# packages already installed). Otherwise the `slurm` tests are skipped and the reason is printed.
#
#   tests/slurm/run-tests.sh PYTHON [pytest args...]
#
# PAS_SLURM_TESTS=auto (default): run them where possible; a cluster that should start but does not
#                                 is an error (CI must never skip them silently)
#                 yes: they must run (error when this machine cannot)
#                 no:  skip them
# A cluster that is already up (tests/slurm/cluster.sh start) is used as it is and left running.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=$1; shift
MODE=${PAS_SLURM_TESTS:-auto}
here=tests/slurm/cluster.sh

why_not() {
  [ "$(id -u)" = 0 ] || { echo "not running as root (the cluster script installs packages and starts daemons)"; return; }
  command -v apt-get >/dev/null 2>&1 || command -v slurmctld >/dev/null 2>&1 || [ -x /usr/sbin/slurmctld ] \
    || { echo "no apt-get to install Slurm and no Slurm installed"; return; }
}

case $MODE in
  no) echo "make test: SLURM tests skipped (PAS_SLURM_TESTS=no)"; exec "$PY" -m pytest "$@";;
  auto|yes) ;;
  *) echo "PAS_SLURM_TESTS must be auto, yes or no (got '$MODE')" >&2; exit 2;;
esac

if scontrol ping >/dev/null 2>&1; then
  echo "make test: using the SLURM cluster already running (scontrol ping answers)"
  exec "$PY" -m pytest "$@"
fi
reason=$(why_not)
if [ -n "$reason" ]; then
  if [ "$MODE" = yes ]; then echo "make test: PAS_SLURM_TESTS=yes but $reason" >&2; exit 2; fi
  echo "make test: the tests marked slurm will be SKIPPED: $reason. Run \`make test-slurm\` as root for them."
  export PAS_SLURM_SKIP_REASON="$reason"
  exec "$PY" -m pytest "$@"
fi
start=$(date +%s)
if ! bash "$here" start --max-array-size 3; then
  echo "make test: the SLURM test cluster did not start (see above); PAS_SLURM_TESTS=no skips its tests" >&2
  bash "$here" stop >/dev/null 2>&1
  exit 1
fi
echo "make test: SLURM test cluster up in $(( $(date +%s) - start )) s"
trap 'bash "$here" stop' EXIT
"$PY" -m pytest "$@"
