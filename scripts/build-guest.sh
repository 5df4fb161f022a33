#!/usr/bin/env bash
# Build the vmlet test guest: OUTDIR/vmlinuz and OUTDIR/initrd.img, made from
# Debian's cloud kernel and busybox-static (OUTDIR/VERSION names both).
# Usage: scripts/build-guest.sh [--force] OUTDIR
# Does nothing while the outputs are newer than this script and scripts/guest/
# (the guest's init files; see scripts/guest/rcS for its kernel parameters).
set -euo pipefail

# Modules the guest loads at boot. Entries built into the kernel are skipped;
# dependencies are added from the modules' own "depends=" info.
# ext4/crc32c_generic are listed so that a change of the kernel config (built-in
# today) still yields a guest that can mount ext2/3/4 on /dev/vda.
GUEST_MODULES=(
  virtio_pci virtio_blk virtio_net virtio_console virtio_rng virtio_balloon
  virtio_scsi sd_mod
  ext4 crc32c_generic
  button evdev
  pvpanic_mmio
)
# Modules in the guest for tests to modprobe, not loaded at boot: efivarfs
# fails to load on a BIOS boot.
GUEST_ON_DEMAND_MODULES=(efivarfs)

die() { echo "build-guest: $*" >&2; exit 1; }
log() { echo "build-guest: $*" >&2; }

usage() { echo "usage: $0 [--force] OUTDIR" >&2; exit "${1:-2}"; }

force=0
outdir=
for arg in "$@"; do
  case "$arg" in
    -f | --force) force=1 ;;
    -h | --help) usage 0 ;;
    -*) usage ;;
    *) [[ -z $outdir ]] || usage; outdir=$arg ;;
  esac
done
[[ -n $outdir ]] || usage

script=$(readlink -f "${BASH_SOURCE[0]}")
guest_dir=$(dirname "$script")/guest
[[ -d $guest_dir ]] || die "missing $guest_dir"

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
cache=$outdir/.cache

up_to_date() {
  [[ -s $outdir/vmlinuz && -s $outdir/initrd.img ]] || return 1
  # initrd.img is written last, so its mtime marks a complete build.
  [[ -z $(find "$script" "$guest_dir" -newer "$outdir/initrd.img" -print -quit) ]]
}

if ((!force)) && up_to_date; then
  log "$outdir is up to date (use --force to rebuild)"
  exit 0
fi

# Serialise concurrent builds into the same OUTDIR; the winner's result is reused.
exec 9>"$outdir/.lock"
flock 9
if ((!force)) && up_to_date; then
  log "$outdir is up to date (built concurrently)"
  exit 0
fi

apt_install() {
  ((EUID == 0)) || die "need root to install: $*"
  log "installing $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
  fi
}

for tool in apt-get apt-cache dpkg-deb gzip flock; do
  command -v "$tool" >/dev/null || die "$tool not found (is this Debian?)"
done
command -v cpio >/dev/null || apt_install cpio

# Prints the name of the versioned kernel package behind the cloud metapackage.
kernel_package() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
kpkg=$(kernel_package)
if [[ -z $kpkg ]]; then
  ((EUID == 0)) || die "linux-image-cloud-amd64 unknown to apt; run apt-get update"
  apt-get update >&2
  kpkg=$(kernel_package)
  [[ -n $kpkg ]] || die "cannot resolve the kernel package of linux-image-cloud-amd64"
fi

# Fetches the candidate .debs of the given packages into $cache (apt's own
# archive cache first) and removes any other .deb there.
fetch_debs() {
  local uri file size _ keep=()
  # One apt call for all packages: each one takes about a second.
  while read -r uri file size _; do
    [[ $uri == \'* && -n $size ]] || continue
    keep+=("$file")
    [[ ! -s $cache/$file ]] || continue
    if [[ -s /var/cache/apt/archives/$file ]]; then
      cp "/var/cache/apt/archives/$file" "$cache/$file.part"
      mv "$cache/$file.part" "$cache/$file"
    else
      log "downloading ${file%%_*}"
      mkdir -p "$cache/partial"
      # As root, apt drops to _apt for downloads, which may not reach $cache.
      (cd "$cache/partial" && apt-get download -q -o APT::Sandbox::User=root "${file%%_*}" >&2)
      mv "$cache/partial/$file" "$cache/$file"
    fi
  done < <(apt-get download --print-uris "$@")
  ((${#keep[@]} == $#)) || die "apt cannot download all of: $*"
  for file in "$cache"/*; do
    [[ " ${keep[*]} " == *" ${file##*/} "* ]] || rm -rf "$file"
  done
}

mkdir -p "$cache"
fetch_debs "$kpkg" busybox-static
kdeb=$(echo "$cache/${kpkg}"_*.deb)
bdeb=$(echo "$cache"/busybox-static_*.deb)
[[ -s $kdeb && -s $bdeb ]] || die "downloads missing in $cache"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/build-guest.XXXXXX")
trap 'rm -rf "$tmp" "$outdir/.initrd.img.new" "$outdir/.vmlinuz.new"' EXIT
dpkg-deb -x "$kdeb" "$tmp/kernel"
dpkg-deb -x "$bdeb" "$tmp/busybox"

kvers=("$tmp"/kernel/lib/modules/*)
((${#kvers[@]} == 1)) || die "expected one kernel in $kdeb, found ${#kvers[@]}"
kver=${kvers[0]##*/}
kmods=$tmp/kernel/lib/modules/$kver
[[ -f $tmp/kernel/boot/vmlinuz-$kver ]] || die "no vmlinuz-$kver in $kdeb"
busybox=$tmp/busybox/bin/busybox
[[ -x $busybox ]] || die "no bin/busybox in $bdeb"

# Module name -> path (relative to $kmods); "-" and "_" are the same in names.
declare -A mod_path=() builtin=()
while IFS= read -r path; do
  name=${path##*/}
  name=${name%%.ko*}
  mod_path[${name//-/_}]=${path#"$kmods"/}
done < <(find "$kmods/kernel" -name '*.ko*')
while IFS= read -r path; do
  name=${path##*/}
  name=${name%.ko}
  builtin[${name//-/_}]=1
done <"$kmods/modules.builtin"

mod_cat() {
  case "$1" in
    *.ko) cat "$1" ;;
    *.ko.xz) xz -dc "$1" ;;
    *.ko.zst) zstd -dcq "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
    *) die "unknown module format: $1" ;;
  esac
}

declare -A seen=()
included=() skipped=()
add_module() {
  local name=${1//-/_} deps dep
  [[ -z ${seen[$name]:-} ]] || return 0
  seen[$name]=1
  if [[ -n ${builtin[$name]:-} ]]; then
    skipped+=("$name")
    return 0
  fi
  [[ -n ${mod_path[$name]:-} ]] || die "module $name is neither built in nor in $kpkg"
  # No early exit in this pipeline: it would kill mod_cat with SIGPIPE.
  deps=$(mod_cat "$kmods/${mod_path[$name]}" | tr '\0' '\n' | sed -n 's/^depends=//p')
  deps=${deps%%$'\n'*}
  local -a dep_list=()
  IFS=, read -ra dep_list <<<"$deps"
  for dep in "${dep_list[@]}"; do add_module "$dep"; done
  included+=("$name")
}
for m in "${GUEST_MODULES[@]}" "${GUEST_ON_DEMAND_MODULES[@]}"; do add_module "$m"; done

root=$tmp/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,root,mnt,var/log,etc/init.d,etc/acpi/PWRF}
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
ln -s /run "$root/var/run"

cp "$busybox" "$root/bin/busybox"
while IFS= read -r applet; do
  [[ $applet == bin/busybox ]] || ln -s /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)
for applet in bin/sh sbin/init sbin/acpid sbin/modprobe sbin/ip sbin/poweroff; do
  # -L: the links point at /bin/busybox inside the guest, not on this host.
  [[ -L $root/$applet ]] || die "busybox-static lacks $applet"
done

install -m 755 "$guest_dir/init" "$root/init"
install -m 755 "$guest_dir/rcS" "$root/etc/init.d/rcS"
install -m 755 "$guest_dir/console" "$root/sbin/vmlet-console"
install -m 644 "$guest_dir/inittab" "$root/etc/inittab"
install -m 644 "$guest_dir/profile" "$root/etc/profile"
# busybox acpid maps the power button event to /etc/acpi/PWRF/00000080.
install -m 755 "$guest_dir/acpi-power" "$root/etc/acpi/PWRF/00000080"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' >"$root/etc/group"

gmods=$root/lib/modules/$kver
mkdir -p "$gmods"
cp "$kmods/modules.builtin" "$kmods/modules.order" "$gmods/"
for m in "${included[@]}"; do
  path=${mod_path[$m]}
  mkdir -p "$gmods/$(dirname "$path")"
  # Stored uncompressed: the kernel decompresses in-kernel only if configured to.
  mod_cat "$kmods/$path" >"$gmods/${path%%.ko*}.ko"
done
"$busybox" depmod -b "$root" "$kver"
printf '%s\n' "${GUEST_MODULES[@]}" | while IFS= read -r m; do
  [[ -n ${builtin[${m//-/_}]:-} ]] || echo "$m"
done >"$root/etc/modules"

bb_version=$(dpkg-deb -f "$bdeb" Version)
k_version=$(dpkg-deb -f "$kdeb" Version)
{
  echo "kernel=$kver"
  echo "kernel_package=$kpkg $k_version"
  echo "busybox_package=busybox-static $bb_version"
  echo "modules=${included[*]}"
  echo "builtin=${skipped[*]}"
} >"$root/etc/vmlet-guest-release"

# Fixed mtimes (and cpio's --reproducible) make equal inputs give equal bytes.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
  cpio --quiet -o -H newc -R 0:0 --reproducible | gzip -n) >"$outdir/.initrd.img.new"

cp "$tmp/kernel/boot/vmlinuz-$kver" "$outdir/.vmlinuz.new"
mv "$outdir/.vmlinuz.new" "$outdir/vmlinuz"
cp "$root/etc/vmlet-guest-release" "$outdir/VERSION"
mv "$outdir/.initrd.img.new" "$outdir/initrd.img"

log "built $outdir/vmlinuz ($kver) and $outdir/initrd.img ($(du -k "$outdir/initrd.img" | cut -f1) KiB)"
log "modules: ${included[*]}"
