#!/usr/bin/env bash
# Makes the base images the Dockerfiles name, on a machine that cannot pull
# any (no container registry): both are built from Debian's packages and the
# machine's own Rust toolchain, and kept, so later runs reuse them.
#   debian:bookworm-slim       debootstrap --variant=minbase bookworm, plus
#                              ca-certificates and the machine's own extra CAs
#                              (/usr/local/share/ca-certificates: a TLS proxy
#                              in front of PyPI and crates.io, say)
#   rust:1.95-slim-bookworm    that base with this machine's rustc/cargo at the
#                              paths of the official image (/usr/local/cargo/bin)
# Where a registry exists these tags are pulled instead and nothing here runs.
# Installs debootstrap from Debian's packages when missing.
set -euo pipefail

CACHE=${ACTIONQ_CONTAINER_CACHE:-/var/cache/actionq-containers}
DEBIAN_TAG=debian:bookworm-slim
RUST_TAG=rust:1.95-slim-bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

have() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have "$DEBIAN_TAG"; then
  if ! command -v debootstrap >/dev/null; then
    echo "base-images: installing debootstrap" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y debootstrap >&2 || { apt-get update >&2 && apt-get install -y debootstrap >&2; }
  fi
  mkdir -p "$CACHE"
  tarball="$CACHE/bookworm-minbase.tar"
  if [[ ! -s "$tarball" ]]; then
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    echo "base-images: debootstrap bookworm into $root" >&2
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -30 "$CACHE/debootstrap.log" >&2; exit 1; }
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
      cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
      chroot "$root" update-ca-certificates >/dev/null
    fi
    # What the official slim image leaves out: package lists, caches, docs.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    trap - EXIT
  fi
  docker import -c 'CMD ["bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tarball" "$DEBIAN_TAG" >/dev/null
  echo "base-images: imported $DEBIAN_TAG" >&2
fi

if ! have "$RUST_TAG"; then
  toolchain=$(rustc --print sysroot)
  version=$(rustc --version | awk '{print $2}')
  [[ "$version" == 1.95.* ]] || echo "base-images: warning: host rustc is $version, tagged $RUST_TAG" >&2
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  mkdir -p "$context/rust"
  # The compiler and the standard library; not the docs (most of the size).
  cp -a "$toolchain/bin" "$toolchain/lib" "$context/rust/"
  rm -rf "$context/rust/lib/rustlib/"{src,rustc-src}
  cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
COPY rust /usr/local/rust
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /usr/local/cargo/bin \
 && for b in /usr/local/rust/bin/*; do ln -s "$b" /usr/local/cargo/bin/; done
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
DOCKERFILE
  docker build -q -t "$RUST_TAG" "$context" >/dev/null
  rm -rf "$context"
  trap - EXIT
  echo "base-images: built $RUST_TAG from $toolchain" >&2
fi
