#!/usr/bin/env bash
# Make a base image with Python 3.11 from Debian's packages alone, for machines that reach Debian's
# archive but no container registry. It stands in for python:3.11-slim (same Debian release):
#
#   kubeflow/debian_base.sh localhost/debian-python:3.11
#   BASE_IMAGE=localhost/debian-python:3.11 kubeflow/build_image.sh localhost/cifar-tfx:dev
#
# Needs root, mmdebstrap and buildah (apt-get install mmdebstrap buildah); about a minute.
set -euo pipefail
name="${1:?usage: kubeflow/debian_base.sh IMAGE_NAME}"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mmdebstrap --quiet --variant=minbase \
  --include=python3.11,python3.11-dev,python3.11-venv,python3-pip,ca-certificates \
  bookworm "$work/rootfs.tar"
container="$(buildah from scratch)"
trap 'buildah rm "$container" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
buildah add --quiet "$container" "$work/rootfs.tar" /
buildah config --env LANG=C.UTF-8 --cmd /bin/bash "$container"
buildah commit --quiet "$container" "$name" >/dev/null
echo "$name"
