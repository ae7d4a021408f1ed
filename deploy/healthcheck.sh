#!/bin/bash
# Container healthcheck for the kernsim image: exit 0 when healthy, 1 when not.
#
# A service is healthy when its admin port answers /healthz with 200; the load
# generator (no port) when its heartbeat file (KERNSIM_HEARTBEAT) was touched
# less than KERNSIM_HEARTBEAT_MAX_AGE_S (30) seconds ago.
#
# Bash and coreutils only, no Python: the engine runs it in each of fourteen
# containers every 10 s, and a Python start costs about 0.1-0.15 s of CPU on a
# loaded 2-core machine (a tenth of it, taken from the services the check
# watches); this costs a few milliseconds.
set -u

if [[ -n ${KERNSIM_HEARTBEAT:-} ]]; then
  mtime=$(stat -c %Y -- "$KERNSIM_HEARTBEAT" 2>/dev/null) || exit 1
  max_age=${KERNSIM_HEARTBEAT_MAX_AGE_S:-30}
  (( EPOCHSECONDS - mtime < ${max_age%.*} )) && exit 0
  exit 1
fi

host=${KERNSIM_HOST:-127.0.0.1}
port=${KERNSIM_ADMIN_PORT:-0}
[[ $port =~ ^[0-9]+$ && $port != 0 ]] || exit 1
# bash's /dev/tcp: one HTTP/1.0 request, the status line read back within 2 s.
{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3 || exit 1
read -r -t 2 _ status _ <&3 || exit 1
[[ $status == 200 ]]
