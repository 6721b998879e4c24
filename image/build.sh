#!/usr/bin/env bash
# `make image`: the CPU image grocery-planner-ai:cpu (Dockerfile.gpu's `cpu` target: no torch,
# no CUDA) with podman, on a machine like this one: no Docker daemon, no reachable image
# registry, package registries only.
#   - installs podman and what it needs when missing (Debian's packages; root or sudo);
#   - uses the project's own containers.conf (image/containers.conf), not the system's;
#   - makes the base image (Debian 12, Python 3.11) with mmdebstrap when none can be pulled;
#   - builds with the host's local package folders and CA bundle mounted for the build only
#     (pip.conf and the CA travel as build secrets; neither ends up in the image); torch for
#     the embedding model's export stage comes from them too (PyTorch's own index is not
#     reachable here).
# Settings: IMAGE_TAG (grocery-planner-ai:cpu), IMAGE_BASE (localhost/debian:bookworm),
# IMAGE_PYTHON (python3.11), IMAGE_BUILD_ARGS (more --build-arg ..., e.g. EMBEDDINGS_MODEL).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/image/containers.conf"
tag=${IMAGE_TAG:-grocery-planner-ai:cpu}
base=${IMAGE_BASE:-localhost/debian:bookworm}
python=${IMAGE_PYTHON:-python3.11}
started=$(date +%s)

sudo_cmd() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@";
  else echo "image: $1 needs root (or passwordless sudo)" >&2; return 1; fi
}

missing=""
for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  command -v apt-get >/dev/null 2>&1 || { echo "image: missing:$missing and no apt-get to install them" >&2; exit 1; }
  echo "image: installing podman, buildah, runc, mmdebstrap (Debian's packages) ..."
  sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive sudo_cmd apt-get install -y -qq --no-install-recommends \
    podman buildah runc mmdebstrap uidmap >/dev/null
fi

if ! podman image exists "$base"; then
  if [ "$base" = localhost/debian:bookworm ]; then
    echo "image: no $base yet; trying the registry first ..."
    if timeout 60 podman pull -q docker.io/library/debian:bookworm >/dev/null 2>&1; then
      podman tag docker.io/library/debian:bookworm "$base"
    else
      echo "image: no registry reachable; making $base with mmdebstrap (Debian's mirror) ..."
      tmp=$(mktemp -d)
      sudo_cmd mmdebstrap --quiet --variant=minbase bookworm "$tmp/base.tar"
      podman import -q "$tmp/base.tar" "$base" >/dev/null
      rm -rf "$tmp"
    fi
  else
    podman pull "$base"
  fi
fi

# The host's pip setup for this build only: its local package folders (mounted read-only)
# and its CA bundle (pip behind this machine's TLS proxy).
secrets=(); volumes=()
conf=$(mktemp); trap 'rm -f "$conf"' EXIT
pip_py=$(command -v python3)
"$pip_py" - "$conf" <<'PY' > "$conf.volumes"
import subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
values = {}
for line in out.splitlines():
    key, _, value = line.partition("=")
    values[key.split(".", 1)[-1]] = value.strip().strip("'\"")
lines = ["[global]"]
paths = set()
for key in ("extra-index-url", "find-links"):
    if values.get(key):
        lines.append(f"{key} = {values[key]}")
        for item in values[key].split():
            path = item.removeprefix("file://")
            if path.startswith("/"):
                paths.add(path.rstrip("/").rsplit("/simple", 1)[0])
lines.append("cert = /etc/ssl/host-ca.pem")
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
print("\n".join(sorted(paths)))
PY
while read -r path; do [ -d "$path" ] && volumes+=(-v "$path:$path:ro"); done < "$conf.volumes"
rm -f "$conf.volumes"
secrets+=(--secret "id=pip.conf,src=$conf")
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  [ -f "$ca" ] && { secrets+=(--secret "id=host-ca,src=$ca"); break; }
done

# Room for the build: a failed build leaves buildah's working containers behind (each holds a
# copy of a virtual environment: the export stage's has torch, several GB), which filled this
# disk once. Drop those, then check
# the space left where podman keeps its layers.
leftover=$(podman ps -a --external --format '{{.ID}} {{.Names}}' | awk '$2 ~ /-working-container$/ {print $1}')
if [ -n "$leftover" ]; then
  echo "image: removing $(echo "$leftover" | wc -l) working container(s) left by an earlier build ..."
  # shellcheck disable=SC2086
  podman rm -f --storage $leftover >/dev/null 2>&1 || buildah rm $leftover >/dev/null 2>&1 || true
fi
root=$(podman info --format '{{.Store.GraphRoot}}')
free_gb() { echo $(( $(df -Pk "$root" | awk 'NR==2 {print $4}') / 1048576 )); }
# A build from nothing writes about 15 GB here (the export stage's torch, from this machine's
# CUDA build); a rebuild after a code change reuses the dependency layers.
# Older builds' images are pruned after each build (below), this build's kept as the cache.
if [ "$(free_gb)" -lt 30 ]; then
  echo "image: note: $(free_gb) GB free under $root (enough for a cached rebuild; a build" \
       "from nothing needs about 30)"
fi
if [ "$(free_gb)" -lt "${IMAGE_MIN_FREE_GB:-5}" ]; then
  echo "image: only $(free_gb) GB free under $root: free some space" \
       "(a cached rebuild needs a few GB, a build from nothing about 30)" >&2
  exit 1
fi

echo "image: building $tag from Dockerfile.gpu, target cpu (base $base, $python) ..."
# shellcheck disable=SC2206
build_args=(--network host --force-rm -f Dockerfile.gpu
  --build-arg CPU_BASE="$base" --build-arg CPU_PYTHON="$python"
  --build-arg CPU_TORCH_INDEX=https://pypi.org/simple ${IMAGE_BUILD_ARGS:-}
  "${secrets[@]}" "${volumes[@]}")
# The dependency stages get tags of their own (IMAGE_TAG's name with :deps and :torch):
# untagged, they are images no tag leads to, which the prune below removed, so the next
# build installed every dependency again.
name="${tag%%:*}"
podman build "${build_args[@]}" --target cpu-deps -t "$name:deps" .
podman build "${build_args[@]}" --target cpu-torch -t "$name:torch" .
podman build "${build_args[@]}" --target cpu -t "$tag" .
# Older builds' layers (dangling images made before this build) are several GB each: drop
# them, keeping this build's (and the tagged dependency stage) as the cache for the next.
podman image prune -f --filter "until=$(date -u -d "@$started" +%Y-%m-%dT%H:%M:%SZ)" >/dev/null || true
size=$(podman image inspect "$tag" --format '{{.Size}}')
echo "image: $tag built in $(( $(date +%s) - started )) s, $(( size / 1000000 )) MB"
