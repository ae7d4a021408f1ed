#!/usr/bin/env bash
# End-to-end check of the compose deployment on a real Docker engine, as far as
# a machine without a registry allows (docs/compose.md, "Checking it"):
#
#   1. start a private dockerd (own data/exec roots and socket, no bridge);
#   2. build stand-ins for the base images, tagged with the official names the
#      Dockerfile and compose file ask for: python:3.11-slim from debootstrap,
#      prom/prometheus from this machine's /usr/bin/prometheus;
#   3. docker-compose build, then up everything but Grafana (not installable here);
#   4. deploy/e2e_check.py: every container healthy, every Prometheus target up,
#      the leak metric scraped under variant none;
#   5. down, stop dockerd, unmount what it leaves.
#
# Usage: deploy/e2e.sh            (as root; needs docker.io docker-compose debootstrap prometheus)
# Env:   KERNSIM_E2E_WORK=DIR     engine state and image cache (default /tmp/kernsim-e2e;
#                                 a second run reuses the images and takes ~1 min)
#        KERNSIM_E2E_PROFILES=compare   also run the side-by-side upstream stack
#        KERNSIM_E2E_KEEP=1       leave the stack and engine running for a look
#        KERNSIM_E2E_FAIR_CPU=0   leave the containers the engine's default CPU weight
#                                 (below, "CPU weight")
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${KERNSIM_E2E_WORK:-/tmp/kernsim-e2e}
profiles=${KERNSIM_E2E_PROFILES:-}
project=kernsim-e2e
mkdir -p "$work"
sock="$work/docker.sock"
export DOCKER_HOST="unix://$sock"
t0=$(date +%s)
say() { printf '[e2e %4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

for tool in dockerd docker docker-compose debootstrap prometheus python3; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool missing (apt-get install -y docker.io docker-compose debootstrap prometheus)" >&2; exit 2; }
done

compose() {
  # Every profile enabled, so that `config`, `up` and `down` agree on the services;
  # which ones start is the explicit list given to `up` below.
  (cd "$repo" && COMPOSE_PROFILES=compare docker-compose -p "$project" "$@")
}

cleanup() {
  status=$?
  if [[ ${KERNSIM_E2E_KEEP:-0} == 1 ]]; then
    say "kept running: DOCKER_HOST=$DOCKER_HOST docker-compose -p $project ps"
    exit $status
  fi
  if [[ $status != 0 ]] && docker info >/dev/null 2>&1; then
    compose ps || true
    compose logs --tail 30 || true
  fi
  compose down --timeout 10 >/dev/null 2>&1 || true
  if [[ -f "$work/dockerd.pid" ]]; then
    pid=$(cat "$work/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # dockerd leaves its default network namespace mounted when stopped.
  if mountpoint -q "$work/exec/netns/default" 2>/dev/null; then umount "$work/exec/netns/default"; fi
  # ... and the (now empty) parent cgroups that runc made under every controller.
  if [[ -n ${cpu_parent:-} ]]; then rmdir /sys/fs/cgroup/*"$cpu_parent" 2>/dev/null || true; fi
  say "done (exit $status)"
  exit $status
}
trap cleanup EXIT

# CPU weight.  With the cgroupfs driver on cgroup v1, dockerd puts every container
# in one cgroup, /docker, whose cpu.shares (1024) are those of one process: on a
# machine with N other busy processes the containers together get 1/(N+1)
# of the CPU, however many of them have work.  The engine here gets a cgroup of its
# own instead, weighted as one process per container (as the six services weigh when
# `kernsim run` starts them as plain processes); set once the services are known.
# Only there: under systemd a parent must be a slice, and cgroup v2 has no cpu.shares.
cpu_root=/sys/fs/cgroup/cpu
cpu_parent=
if [[ ${KERNSIM_E2E_FAIR_CPU:-1} == 1 && -f $cpu_root/cpu.shares && ! -d /run/systemd/system ]]; then
  cpu_parent=/$project
  mkdir -p "$cpu_root$cpu_parent"
fi

say "starting dockerd (log: $work/dockerd.log)"
dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
  ${cpu_parent:+--cgroup-parent="$cpu_parent"} \
  -H "unix://$sock" --bridge=none --iptables=false --ip6tables=false >"$work/dockerd.log" 2>&1 &
for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
docker info >/dev/null

if ! docker image inspect python:3.11-slim >/dev/null 2>&1; then
  root="$work/rootfs"
  if [[ ! -x "$root/usr/bin/python3" ]]; then
    say "debootstrap bookworm (about 40-70 s)"
    rm -rf "$root"
    # wget for the Prometheus healthcheck, which the official image has from busybox.
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,wget \
      bookworm "$root" >"$work/debootstrap.log" 2>&1
  fi
  # Without the machine's CA bundle pip inside a container cannot reach the index here.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  say "importing the stand-in python:3.11-slim"
  tar -C "$root" -c . | docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - python:3.11-slim >/dev/null
fi

prom_image=$(cd "$repo" && docker-compose config | sed -n 's/^ *image: \(prom\/prometheus.*\)$/\1/p' | head -1)
if ! docker image inspect "$prom_image" >/dev/null 2>&1; then
  say "building the stand-in $prom_image from $(command -v prometheus)"
  ctx="$work/prom-image"
  mkdir -p "$ctx"
  cp "$(command -v prometheus)" "$ctx/prometheus"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM python:3.11-slim
COPY prometheus /bin/prometheus
RUN mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
DOCKERFILE
  docker build -q --network host -t "$prom_image" "$ctx" >/dev/null
fi

# One build of the one image every kernsim service runs (compose would build it per
# service: fourteen times the same context).
image=$(cd "$repo" && docker-compose config | sed -n 's/^ *image: \(kernsim.*\)$/\1/p' | head -1)
say "docker build $image"
docker build -q --network host -f "$repo/deploy/Dockerfile" -t "$image" "$repo" >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; exit 1; }
services="mm memcg blockdev vmscan workqueue tasks load prometheus"
if [[ $profiles == *compare* ]]; then
  services+=" mm-compare memcg-compare blockdev-compare vmscan-compare workqueue-compare"
  services+=" tasks-compare load-compare"
fi
if [[ -n $cpu_parent ]]; then
  n=$(wc -w <<<"$services")
  echo $(( 1024 * n )) >"$cpu_root$cpu_parent/cpu.shares"
  say "CPU weight: cgroup $cpu_parent, cpu.shares $(( 1024 * n )) (one process per container)"
else
  say "CPU weight: the engine's default"
fi
say "docker-compose up -d $services"
# shellcheck disable=SC2086
compose up -d --no-build $services >"$work/up.log" 2>&1 || { cat "$work/up.log"; exit 1; }

say "checking health, targets and the leak metric"
# shellcheck disable=SC2086
python3 "$repo/deploy/e2e_check.py" --project "$project" --prometheus http://127.0.0.1:9090 $services
say "all checks passed"
