#!/usr/bin/env bash
# The mail's acceptance test, with curl, against a running kernsim cluster
# (`kernsim up`, or `docker compose up` with the load generator stopped):
#
#   echo 2M > memory.limit_in_bytes; run tasks; kill them all;
#   then memory.memsw.usage_in_bytes must equal memory.usage_in_bytes,
#   and no swap entry may stay in use.
#
# Usage: deploy/acceptance.sh [SECONDS]     (seconds of load, default 9: three kill rounds)
# Env:   KERNSIM_MM, KERNSIM_MEMCG, KERNSIM_TASKS   the admin URLs of mm, memcg and tasks
#        (defaults: the compose main stack, http://127.0.0.1:9101, :9102, :9106)
#        KERNSIM_TOKEN   the cluster's shared token, when it has one
# Exit:  0 memsw.usage == usage with no task left; 1 memsw leak; 2 bad usage or no cluster.
set -euo pipefail
mm=${KERNSIM_MM:-http://127.0.0.1:9101}
memcg=${KERNSIM_MEMCG:-http://127.0.0.1:9102}
tasks=${KERNSIM_TASKS:-http://127.0.0.1:9106}
seconds=${1:-9}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "acceptance: SECONDS must be a whole number > 0" >&2; exit 2; }
auth=()
[[ -n ${KERNSIM_TOKEN:-} ]] && auth=(-H "Authorization: Bearer $KERNSIM_TOKEN")
A=$memcg/cgroup/A
get() { curl -sf "$1" || { echo "acceptance: no answer from $1" >&2; exit 2; }; }
send() { curl -sf "${auth[@]}" -X "$1" ${3:+-d "$3"} "$2" >/dev/null || { echo "acceptance: $1 $2 refused" >&2; exit 2; }; }
# field KEY[.KEY...] < JSON: one value of a JSON object.
field() { python3 -c 'import functools,json,sys; print(functools.reduce(lambda d,k: d[k], sys.argv[1].split("."), json.load(sys.stdin)))' "$1"; }
# quiet DEADLINE_S: poll until no workload, no task and no code path is left, or give up.
quiet() {
  local end=$(( SECONDS + $1 ))
  until [[ $(get "$tasks/workload" | field quiescent) == True ]]; do
    (( SECONDS < end )) || { echo "acceptance: the cluster is not quiet after $1 s" >&2; exit 2; }
    sleep 0.5
  done
}

echo "limit: 2M"
send PUT "$A/memory.limit_in_bytes" 2M
echo "run tasks: kamezawa for $seconds s (three tasks touching 1M, all killed every 3 s)"
send POST "$tasks/workload" "{\"scenario\": \"kamezawa\", \"duration_s\": $seconds, \"seed\": 1}"
quiet $(( seconds * 12 + 120 ))  # each kill may wait for the tasks' progress
echo "kill them all: killed $(curl -sf "${auth[@]}" -X POST "$tasks/kill_all" | field killed)"
quiet 120

tasks_left=$(get "$A/tasks" | wc -l)
usage=$(get "$A/memory.usage_in_bytes")
memsw=$(get "$A/memory.memsw.usage_in_bytes")
stats=$(get "$mm/statistics")
used=$(field mm.swap_slots_used <<<"$stats")
stale=$(field stale_swapcache_pages <<<"$stats")
echo "tasks left:                  $tasks_left"
echo "memory.usage_in_bytes:       $usage"
echo "memory.memsw.usage_in_bytes: $memsw"
echo "swap entries in use:         $used ($stale held by stale swap cache alone)"
if (( memsw > usage )); then
  echo "FAIL: memsw.usage is $(( memsw - usage )) bytes above usage with no task left (the leak)"
  exit 1
fi
if (( used > 0 )); then
  echo "ok: memsw.usage == usage; $used swap entries stay in use until global reclaim"
else
  echo "ok: memsw.usage == usage and no swap entry is in use"
fi
