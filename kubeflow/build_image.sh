#!/usr/bin/env bash
# Build the pipeline's image from kubeflow/Dockerfile: with docker when a Docker engine answers,
# otherwise with buildah (no daemon needed). Run from anywhere; the context is the repository.
#
#   kubeflow/build_image.sh IMAGE
#
# Environment (all optional):
#   BASE_IMAGE      base with Python 3.11 (default: the Dockerfile's python:3.11-slim)
#   WITH_CUDA       1 (default) installs TensorFlow's CUDA libraries; 0 makes a CPU-only image
#   SSL_CERT_FILE   CA bundle for downloads during the build (a TLS-intercepting proxy); buildah mounts
#                   it read-only into the build, it is not copied into the image
#   STORAGE_DRIVER, BUILDAH_ISOLATION   buildah's own settings; default vfs and chroot, which work
#                   without a daemon, as root, inside another container
#   BUILDAH_LAYERS  true (default) keeps each step's layer for the next build; false keeps only the image
set -euo pipefail
image="${1:?usage: kubeflow/build_image.sh IMAGE}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
args=(--file "$repo/kubeflow/Dockerfile" --tag "$image" --build-arg "WITH_CUDA=${WITH_CUDA:-1}")
if [ -n "${BASE_IMAGE:-}" ]; then
  args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
fi

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  echo "building $image with docker" >&2
  exec docker build "${args[@]}" "$repo"
fi
if ! command -v buildah >/dev/null; then
  echo "error: neither a Docker engine nor buildah is available (apt-get install buildah)" >&2
  exit 2
fi
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
if [ -n "${SSL_CERT_FILE:-}" ]; then
  args+=(--volume "$SSL_CERT_FILE:/run/build-ca.crt:ro" --build-arg "SSL_CERT_FILE=/run/build-ca.crt")
fi
echo "building $image with buildah ($STORAGE_DRIVER storage, $BUILDAH_ISOLATION isolation)" >&2
exec buildah bud --layers="${BUILDAH_LAYERS:-true}" "${args[@]}" "$repo"
