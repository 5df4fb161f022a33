#!/usr/bin/env bash
# Build a bootable Debian 12 (bookworm) cloud disk image: OUTDIR/debian-12.qcow2.
# Usage: scripts/build-debian-image.sh [--force] [--kernel cloud|generic] OUTDIR
#
# The image is a stock Debian cloud image in miniature: systemd, the cloud kernel,
# cloud-init, qemu-guest-agent and openssh-server from Debian's repositories only
# (the list is scripts/debian-image/packages), with no users, passwords or
# cloud-init settings of its own: a NoCloud seed, config drive or metadata
# service configures it at first boot, as it would a Debian cloud image.
#
# --kernel generic builds OUTDIR/debian-12-generic.qcow2 instead: the same image with
# Debian's generic kernel (linux-image-amd64), which has what a guest imported from
# vSphere is given (AHCI, e1000e) and the cloud kernel leaves out.
#
# Disk (GPT, the layout of Debian's cloud images; 3 GiB, root grows to fill it):
#   partition 14  BIOS boot  1 MiB..4 MiB    GRUB i386-pc core.img (SeaBIOS)
#   partition 15  ESP        4 MiB..128 MiB  shim + signed GRUB (UEFI, Secure Boot)
#   partition 1   root ext4  128 MiB..end    last on disk, so growpart can extend it
# All of it is made in plain files: mmdebstrap into a directory, sfdisk on the
# image file, mke2fs -d and mkfs.vfat/mcopy at partition offsets, GRUB's boot.img
# and core.img written with dd where grub-install would put them. No loop device,
# no mount of the image. Both firmwares load the same /boot/grub/grub.cfg, which
# boots the kernel with root=PARTUUID=... and a serial console on ttyS0.
#
# Does nothing while OUTDIR/debian-12.qcow2 exists and OUTDIR/debian-12.inputs
# holds the hash of this script and scripts/debian-image/ (and DEBIAN_MIRROR /
# DEBIAN_SECURITY_MIRROR, if set). Needs root (mmdebstrap, ownership in the image).
# DEBIAN_IMAGE_KEEP_WORK=1 keeps the work directory (root tree, raw disk) for inspection.
set -euo pipefail

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DISK_SIZE_MIB=3072
# GPT partition types (UAPI Discoverable Partitions for root).
TYPE_BIOS_BOOT=21686148-6449-6E6F-744E-656564454649
TYPE_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
TYPE_ROOT_X86_64=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
# Debian's cloud images: BIOS boot = 14, ESP = 15, root = 1 and last on disk.
BIOS_START=2048 BIOS_SECTORS=6144   # 1 MiB, 3 MiB
ESP_START=8192 ESP_SECTORS=253952   # 4 MiB, 124 MiB
ROOT_START=262144                   # 128 MiB, to the end of the disk

# Host tools: command -> Debian package.
declare -A HOST_TOOLS=(
  [mmdebstrap]=mmdebstrap
  [sfdisk]=fdisk
  [mke2fs]=e2fsprogs
  [mkfs.vfat]=dosfstools
  [mcopy]=mtools
  [qemu-img]=qemu-utils
  [flock]=util-linux
)

die() { echo "build-debian-image: $*" >&2; exit 1; }
log() { echo "build-debian-image: [$(date +%T)] $*" >&2; }

usage() { echo "usage: $0 [--force] [--kernel cloud|generic] OUTDIR" >&2; exit "${1:-2}"; }

force=0
kernel=cloud
outdir=
while (($#)); do
  case "$1" in
    -f | --force) force=1 ;;
    --kernel) (($# > 1)) || usage; kernel=$2; shift ;;
    --kernel=*) kernel=${1#--kernel=} ;;
    -h | --help) usage 0 ;;
    -*) usage ;;
    *) [[ -z $outdir ]] || usage; outdir=$1 ;;
  esac
  shift
done
[[ -n $outdir ]] || usage
# The kernel package, and the image's name (its stamp, lock and manifest are named after it).
case "$kernel" in
  cloud) KERNEL_PACKAGE=linux-image-cloud-amd64 IMAGE_NAME=debian-12 ;;
  generic) KERNEL_PACKAGE=linux-image-amd64 IMAGE_NAME=debian-12-generic ;;
  *) die "--kernel: expected cloud or generic, got '$kernel'" ;;
esac

script=$(readlink -f "${BASH_SOURCE[0]}")
conf_dir=$(dirname "$script")/debian-image
[[ -f $conf_dir/packages ]] || die "missing $conf_dir/packages"

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
image=$outdir/$IMAGE_NAME.qcow2
stamp=$outdir/$IMAGE_NAME.inputs

inputs_hash() {
  {
    echo "suite=$SUITE mirror=$MIRROR security=$SECURITY_MIRROR kernel=$KERNEL_PACKAGE"
    sha256sum "$script" | cut -d' ' -f1
    (cd "$conf_dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}
hash=$(inputs_hash)

up_to_date() {
  [[ -s $image && -s $stamp && $(<"$stamp") == "$hash" ]]
}

if ((!force)) && up_to_date; then
  log "$image is up to date (use --force to rebuild)"
  exit 0
fi

((EUID == 0)) || die "must run as root (mmdebstrap, file ownership inside the image)"

# Serialise concurrent builds into the same OUTDIR; the winner's result is reused.
exec 9>"$outdir/.$IMAGE_NAME.lock"
flock 9
if ((!force)) && up_to_date; then
  log "$image is up to date (built concurrently)"
  exit 0
fi

started=$SECONDS
missing=()
for cmd in "${!HOST_TOOLS[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${HOST_TOOLS[$cmd]}")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
fi

mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$conf_dir/packages")
((${#packages[@]})) || die "no packages in $conf_dir/packages"
packages+=("$KERNEL_PACKAGE")

work=$(mktemp -d "${TMPDIR:-/tmp}/build-debian-image.XXXXXX")
cleanup() {
  if [[ -n ${DEBIAN_IMAGE_KEEP_WORK:-} ]]; then
    log "keeping $work (DEBIAN_IMAGE_KEEP_WORK)"
    return
  fi
  # mmdebstrap's unshare mode keeps its mounts in its own namespace; never follow
  # a mount out of the work directory anyway.
  rm -rf --one-file-system "$work" "$outdir/.$IMAGE_NAME.qcow2.new"
}
trap cleanup EXIT
root=$work/root
disk=$work/disk.raw

# --- the root filesystem -------------------------------------------------------------------
uuid() { cat /proc/sys/kernel/random/uuid; }
disk_guid=$(uuid)
root_partuuid=$(uuid)
bios_partuuid=$(uuid)
esp_partuuid=$(uuid)
root_fsuuid=$(uuid)
esp_volid=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
cmdline="root=PARTUUID=$root_partuuid ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"

log "mmdebstrap $SUITE: ${packages[*]}"
t0=$SECONDS
# minbase + the list, no Recommends (mmdebstrap's default). Documentation, man pages and
# translations are left out (copyright files stay); the rule stays in the image, so packages
# installed later in the guest follow it too. The one debconf answer: the system locale is
# C.UTF-8 (built into glibc), as locales' own question offers; left unset, cloud-init 22.4
# falls back to en_US.UTF-8, which Debian's locale-gen does not generate on request, and
# its locale module fails (cloud-init issue 4195; cloud-init 23.4 defaults to C.UTF-8).
# shellcheck disable=SC2016 # "$1" of the hook is mmdebstrap's, not ours
mmdebstrap --mode=unshare --variant=minbase --format=directory --components=main \
  --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
  --essential-hook='echo "locales locales/default_environment_locale select C.UTF-8" | chroot "$1" debconf-set-selections' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --include="$(IFS=,; echo "${packages[*]}")" \
  "$SUITE" "$root" \
  "deb $MIRROR $SUITE main" \
  "deb $MIRROR $SUITE-updates main" \
  "deb $SECURITY_MIRROR $SUITE-security main" >&2
log "mmdebstrap took $((SECONDS - t0)) s"

kvers=("$root"/lib/modules/*)
((${#kvers[@]} == 1)) || die "expected one kernel in the image, found ${#kvers[@]}"
kver=${kvers[0]##*/}
[[ -s $root/boot/vmlinuz-$kver && -s $root/boot/initrd.img-$kver ]] ||
  die "missing /boot/vmlinuz-$kver or /boot/initrd.img-$kver in the image"

# What Debian's cloud image build leaves out: identity of the build host and of this
# instance (machine-id, ssh host keys: systemd and cloud-init make them at first boot),
# logs, and everything mmdebstrap's chroot had mounted.
log "cleaning and configuring the boot"
for dir in dev proc run sys tmp var/tmp var/cache/apt var/lib/apt/lists; do
  find "$root/$dir" -mindepth 1 -delete
done
rm -f "$root"/etc/ssh/ssh_host_* "$root/var/lib/dbus/machine-id" \
  "$root"/var/log/{alternatives.log,bootstrap.log,dpkg.log} "$root"/var/cache/debconf/*-old \
  "$root"/var/lib/dpkg/*-old "$root/etc/.resolv.conf.systemd-resolved.bak"
rm -rf "$root/var/log/apt"
: >"$root/etc/machine-id"
# (mmdebstrap copied the build host's, with its mode)
rm -f "$root/etc/hostname"
install -m 644 /dev/null "$root/etc/hostname"
: >"$root/var/lib/dpkg/available"
# systemd-resolved's stub resolver, as in Debian's images (mmdebstrap left the host's file).
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
mkdir -p "$root/boot/efi"
# By PARTUUID like the kernel's root=. (initramfs-tools probes the root device rather than
# reading its type here, so the initramfs has no fsck.ext4: systemd-fsck-root checks the
# root once the initramfs has mounted it read-only. The guest's update-initramfs adds it.)
cat >"$root/etc/fstab" <<EOF
# <file system>	<mount point>	<type>	<options>	<dump>	<pass>
PARTUUID=$root_partuuid	/	ext4	rw,discard,errors=remount-ro,x-systemd.growfs	0	1
PARTUUID=$esp_partuuid	/boot/efi	vfat	umask=0077	0	0
EOF
# grub-cloud-amd64's postinst and triggers (grub-install for both firmwares, then
# update-grub) run in the guest only with this flag; set last, so that they did not run in
# the chroot. In the guest they keep the bootloader current on GRUB and shim upgrades.
touch "$root/etc/grub.d/enable_cloud"

# GRUB, as grub-install --target=i386-pc and update-grub would leave it, built from the
# image's own packages so that modules, core.img and signed binaries are one version.
grub_dir=$root/boot/grub
mkdir -p "$grub_dir/i386-pc"
cp "$root"/usr/lib/grub/i386-pc/*.{mod,lst} "$grub_dir/i386-pc/"
chroot "$root" grub-editenv /boot/grub/grubenv create
# The menu update-grub writes from /etc/default/grub of grub-cloud-amd64 (serial console,
# 5 s menu), reduced to its one entry. The guest's update-grub replaces it on kernel updates.
cat >"$grub_dir/grub.cfg" <<EOF
# Written by build-debian-image.sh; update-grub regenerates it in the guest.
if [ -s \$prefix/grubenv ]; then
  load_env
fi
set default=0
set timeout_style=menu
set timeout=5
serial --speed=115200
terminal_input console serial
terminal_output console serial
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root $root_fsuuid
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os {
	insmod gzio
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root $root_fsuuid
	echo 'Loading Linux $kver ...'
	linux /boot/vmlinuz-$kver $cmdline
	echo 'Loading initial ramdisk ...'
	initrd /boot/initrd.img-$kver
}
EOF
# Both firmwares' first GRUB stage finds the root filesystem the way grub-install's does.
cat >"$work/load.cfg" <<EOF
search.fs_uuid $root_fsuuid root hd0,gpt1
set prefix=(\$root)'/boot/grub'
EOF
cp "$work/load.cfg" "$root/tmp/load.cfg"
chroot "$root" grub-mkimage -O i386-pc -d /usr/lib/grub/i386-pc -c /tmp/load.cfg \
  -p '(hd0,gpt1)/boot/grub' -o /tmp/core.img biosdisk part_gpt ext2 search_fs_uuid
mv "$root/tmp/core.img" "$work/core.img"
rm "$root/tmp/load.cfg"
cp "$root/usr/lib/grub/i386-pc/boot.img" "$work/boot.img"
core_sectors=$((($(stat -c %s "$work/core.img") + 511) / 512))
((core_sectors <= BIOS_SECTORS)) || die "core.img ($core_sectors sectors) exceeds the BIOS boot partition"

# The ESP of grub-install --uefi-secure-boot --force-extra-removable: shim, which loads
# Debian's signed GRUB next to it, which reads EFI/debian/grub.cfg. The removable path
# (EFI/BOOT/BOOTX64.EFI) boots without NVRAM entries; no fbx64.efi there, so shim goes
# straight to GRUB instead of creating boot entries first.
esp=$work/esp
mkdir -p "$esp/EFI/BOOT" "$esp/EFI/debian"
cp "$root/usr/lib/shim/shimx64.efi.signed" "$esp/EFI/debian/shimx64.efi"
cp "$root/usr/lib/shim/mmx64.efi.signed" "$esp/EFI/debian/mmx64.efi"
cp "$root/usr/lib/shim/fbx64.efi.signed" "$esp/EFI/debian/fbx64.efi"
cp "$root/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" "$esp/EFI/debian/grubx64.efi"
if [[ -f $root/usr/lib/shim/BOOTX64.CSV ]]; then
  cp "$root/usr/lib/shim/BOOTX64.CSV" "$esp/EFI/debian/BOOTX64.CSV"
fi
{
  cat "$work/load.cfg"
  echo "configfile \$prefix/grub.cfg"
} >"$esp/EFI/debian/grub.cfg"
cp "$esp/EFI/debian/shimx64.efi" "$esp/EFI/BOOT/BOOTX64.EFI"
cp "$esp/EFI/debian/grubx64.efi" "$esp/EFI/BOOT/grubx64.efi"
cp "$esp/EFI/debian/mmx64.efi" "$esp/EFI/BOOT/mmx64.efi"

# The manifest, as Debian's images publish one: every installed package and its version.
# shellcheck disable=SC2016 # dpkg-query's format
chroot "$root" dpkg-query -W -f='${binary:Package}\t${Version}\n' >"$work/packages.tsv"
root_kib=$(du -sk --apparent-size "$root" | cut -f1)

# --- the disk --------------------------------------------------------------------------------
log "assembling the ${DISK_SIZE_MIB} MiB disk"
t0=$SECONDS
truncate -s "${DISK_SIZE_MIB}M" "$disk"
# Partitions named by number ("disk.raw14") so that the numbers match Debian's images.
sfdisk --quiet --no-reread --no-tell-kernel "$disk" <<EOF
label: gpt
label-id: $disk_guid
unit: sectors
sector-size: 512

${disk}14 : start=$BIOS_START, size=$BIOS_SECTORS, type=$TYPE_BIOS_BOOT, uuid=$bios_partuuid
${disk}15 : start=$ESP_START, size=$ESP_SECTORS, type=$TYPE_ESP, uuid=$esp_partuuid
${disk}1 : start=$ROOT_START, type=$TYPE_ROOT_X86_64, uuid=$root_partuuid
EOF
root_sectors=$(sfdisk --dump "$disk" | sed -n "s|^${disk}1 :.*size= *\\([0-9]*\\).*|\\1|p")
[[ -n $root_sectors ]] || die "cannot read the root partition back from the partition table"

# ext4 with the options of Debian's mke2fs.conf, filled from the directory, written in
# place at the partition's offset. Discard punches holes only within its own range.
mke2fs -F -q -t ext4 -U "$root_fsuuid" -d "$root" -E "offset=$((ROOT_START * 512))" \
  "$disk" "$((root_sectors / 2))k"
# FAT32 as the UEFI specification asks of an ESP; one-sector clusters give it enough of them.
# (It warns that the file is larger than the file system; that is the point of --offset.)
mkfs.vfat -F 32 -s 1 -n EFI -i "$esp_volid" --offset="$ESP_START" "$disk" "$((ESP_SECTORS / 2))" \
  >"$work/mkfs.vfat.log" 2>&1 || { cat "$work/mkfs.vfat.log" >&2; die "mkfs.vfat failed"; }
export MTOOLS_SKIP_CHECK=1
mcopy -s -i "$disk@@$((ESP_START * 512))" "$esp/EFI" ::/

# GRUB for BIOS, as grub-install writes it on a GPT disk: core.img at the start of the BIOS
# boot partition, its first sector's block list pointing at the rest of it; boot.img in the
# MBR's code area (the protective partition table stays) pointing at core.img, with the
# boot-drive check disabled as for any hard disk.
le64() { printf '%016x' "$1" | sed -E 's/(..)(..)(..)(..)(..)(..)(..)(..)/\\x\8\\x\7\\x\6\\x\5\\x\4\\x\3\\x\2\\x\1/'; }
printf %b "$(le64 $((BIOS_START + 1)))" | dd of="$work/core.img" bs=1 seek=$((0x200 - 12)) conv=notrunc status=none
printf %b "$(le64 "$BIOS_START")" | dd of="$work/boot.img" bs=1 seek=$((0x5c)) conv=notrunc status=none
printf '\x90\x90' | dd of="$work/boot.img" bs=1 seek=$((0x66)) conv=notrunc status=none
dd if="$work/core.img" of="$disk" bs=512 seek="$BIOS_START" conv=notrunc status=none
dd if="$work/boot.img" of="$disk" bs=440 count=1 conv=notrunc status=none
log "disk took $((SECONDS - t0)) s"

log "converting to qcow2"
t0=$SECONDS
qemu-img convert -c -O qcow2 -o cluster_size=65536 "$disk" "$outdir/.$IMAGE_NAME.qcow2.new"
log "qcow2 took $((SECONDS - t0)) s"
mv "$work/packages.tsv" "$outdir/$IMAGE_NAME.packages"
mv "$outdir/.$IMAGE_NAME.qcow2.new" "$image"
echo "$hash" >"$outdir/.$IMAGE_NAME.inputs.new"
mv "$outdir/.$IMAGE_NAME.inputs.new" "$stamp"

log "built $image in $((SECONDS - started)) s: kernel $kver, $(wc -l <"$outdir/$IMAGE_NAME.packages") packages," \
  "root $((root_kib / 1024)) MiB, qcow2 $(($(stat -c %s "$image") / 1048576)) MiB of ${DISK_SIZE_MIB} MiB"
