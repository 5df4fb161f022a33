/**
 * The busybox guest has no qemu-guest-agent: this shell stands in for one on the virtio-serial
 * port. It first writes garbage (which must change nothing), then answers the sync, the hostname
 * and OS queries, and (with the guest's own figures) the file system of /tmp and the load
 * averages the way the agent does; other commands get the agent's CommandNotFound.
 * Like qemu-ga on virtio-serial, it reads on after an EOF: the port reads EOF while no host
 * process is connected (between the watcher's attempts, or while a migration moves the guest).
 */
export const SHELL_AGENT = `
while ! ls /dev/vport*p1 >/dev/null 2>&1; do sleep 0.1; done
p=$(ls /dev/vport*p1 | head -n1)
exec 3<>"$p"
printf 'garbage \\001\\002\\n{"return": 42}\\nmore garbage\\n' >&3
while true; do
while read -r l <&3; do
  case "$l" in
  *guest-sync-delimited*) id=$(echo "$l" | sed 's/.*"id":\\([0-9]*\\).*/\\1/'); printf '\\377{"return": %s}\\n' "$id" >&3 ;;
  *guest-get-host-name*) printf '{"return": {"host-name": "%s"}}\\n' "$(hostname)" >&3 ;;
  *guest-get-osinfo*) printf '{"return": {"name": "BusyBox", "version-id": "1.35", "kernel-release": "%s", "machine": "%s"}}\\n' "$(uname -r)" "$(uname -m)" >&3 ;;
  *guest-get-fsinfo*) df -P /tmp | awk 'NR==2 {printf "{\\"return\\": [{\\"name\\": \\"%s\\", \\"mountpoint\\": \\"%s\\", \\"type\\": \\"tmpfs\\", \\"total-bytes\\": %.0f, \\"used-bytes\\": %.0f, \\"disk\\": []}]}\\n", $1, $6, $2 * 1024, $3 * 1024}' >&3 ;;
  *guest-get-load*) read one five fifteen rest </proc/loadavg; printf '{"return": {"load1m": %s, "load5m": %s, "load15m": %s}}\\n' "$one" "$five" "$fifteen" >&3 ;;
  *) printf '{"error": {"class": "CommandNotFound", "desc": "not in this agent"}}\\n' >&3 ;;
  esac
done
usleep 100000
done
`;
