/*
 * fork + exec for the spawn helper, with the confinement applied in the child between the two:
 * a new session, stdio, optionally a network namespace, then (for an unprivileged QEMU) the
 * groups, gid and uid, an empty capability bounding set, no inheritable or ambient capabilities
 * and no_new_privs. Done here rather than by exec'ing setpriv first, because each extra exec of
 * a wrapper costs a start as much as the rest of vmlet's bookkeeping (docs/spawn-helper.md).
 *
 * Only system calls run in the child (no allocation, no locks): everything it needs is prepared
 * in the parent before fork. A failure in the child is written to a close-on-exec pipe, so the
 * parent learns of it (stage and errno) before fork returns to JavaScript; an exec that worked
 * closes the pipe. Each child is waited for by a thread of its own, which reports the exit
 * through a thread-safe function: libuv only waits for the pids it started itself.
 *
 * N-API only, so one build loads on every Node version.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <node_api.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define MAX_GROUPS 64
/* Past the highest capability any kernel has; PR_CAPBSET_DROP answers EINVAL beyond the last. */
#define MAX_CAP 64

extern char **environ;

struct request {
  char *file;
  char **argv;
  int log_fd;
  int netns_fd;
  int drop;
  uid_t uid;
  gid_t gid;
  size_t ngroups;
  gid_t groups[MAX_GROUPS];
};

/* What the child tells the parent when it cannot exec: the step that failed and its errno. */
struct child_error {
  int stage;
  int err;
};

enum { STAGE_SETSID = 1, STAGE_STDIO, STAGE_NETNS, STAGE_GROUPS, STAGE_GID, STAGE_BOUNDING, STAGE_UID, STAGE_CAPS, STAGE_NNP, STAGE_EXEC };

static const char *stage_name(int stage) {
  switch (stage) {
    case STAGE_SETSID: return "setsid";
    case STAGE_STDIO: return "stdio";
    case STAGE_NETNS: return "setns";
    case STAGE_GROUPS: return "setgroups";
    case STAGE_GID: return "setresgid";
    case STAGE_BOUNDING: return "dropping the capability bounding set";
    case STAGE_UID: return "setresuid";
    case STAGE_CAPS: return "capset";
    case STAGE_NNP: return "no_new_privs";
    case STAGE_EXEC: return "exec";
    default: return "start";
  }
}

static void child_fail(int pipe_fd, int stage) {
  struct child_error e = {stage, errno};
  ssize_t unused = write(pipe_fd, &e, sizeof e);
  (void)unused;
  _exit(127);
}

/* Runs in the child: system calls only. */
static void child(const struct request *r, int pipe_fd) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  /* Ignored signals stay ignored across exec; Node ignores SIGPIPE, QEMU must get the default. */
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);

  if (setsid() < 0) child_fail(pipe_fd, STAGE_SETSID);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(r->log_fd, 1) < 0 || dup2(r->log_fd, 2) < 0) child_fail(pipe_fd, STAGE_STDIO);
  /* Nothing of the helper's beyond stdio reaches QEMU (the error pipe closes at exec too). */
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (r->netns_fd >= 0 && setns(r->netns_fd, CLONE_NEWNET) < 0) child_fail(pipe_fd, STAGE_NETNS);

  if (r->drop) {
    /* Raw system calls: glibc's wrappers would try to signal threads that no longer exist here. */
    if (syscall(SYS_setgroups, r->ngroups, r->groups) < 0) child_fail(pipe_fd, STAGE_GROUPS);
    if (syscall(SYS_setresgid, r->gid, r->gid, r->gid) < 0) child_fail(pipe_fd, STAGE_GID);
    for (int cap = 0; cap < MAX_CAP; cap++) {
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) child_fail(pipe_fd, STAGE_BOUNDING);
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    /* Leaving uid 0 clears the permitted and effective sets; the inheritable set is cleared below. */
    if (syscall(SYS_setresuid, r->uid, r->uid, r->uid) < 0) child_fail(pipe_fd, STAGE_UID);
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &header, data) < 0) child_fail(pipe_fd, STAGE_CAPS);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(pipe_fd, STAGE_NNP);
  }
  execvp(r->file, r->argv);
  child_fail(pipe_fd, STAGE_EXEC);
}

/* --- the exit watcher ------------------------------------------------------------------------ */

struct exit_report {
  pid_t pid;
  int status;
};

static void call_on_exit(napi_env env, napi_value callback, void *context, void *data) {
  (void)context;
  struct exit_report *report = data;
  if (env != NULL && callback != NULL) {
    napi_value undefined, args[2];
    napi_get_undefined(env, &undefined);
    if (WIFSIGNALED(report->status)) {
      napi_get_null(env, &args[0]);
      napi_create_int32(env, WTERMSIG(report->status), &args[1]);
    } else {
      napi_create_int32(env, WEXITSTATUS(report->status), &args[0]);
      napi_get_null(env, &args[1]);
    }
    napi_call_function(env, undefined, callback, 2, args, NULL);
  }
  free(report);
}

static void *wait_for_exit(void *arg) {
  napi_threadsafe_function tsfn = arg;
  struct exit_report *report;
  napi_get_threadsafe_function_context(tsfn, (void **)&report);
  pid_t r;
  do r = waitpid(report->pid, &report->status, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) report->status = 0;
  napi_call_threadsafe_function(tsfn, report, napi_tsfn_blocking);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return NULL;
}

/* --- argument handling ----------------------------------------------------------------------- */

static char *string_of(napi_env env, napi_value value) {
  size_t len;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s && napi_get_value_string_utf8(env, value, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

static int has(napi_env env, napi_value obj, const char *name, napi_value *out) {
  bool present = false;
  napi_valuetype type;
  if (napi_has_named_property(env, obj, name, &present) != napi_ok || !present) return 0;
  if (napi_get_named_property(env, obj, name, out) != napi_ok) return 0;
  return napi_typeof(env, *out, &type) == napi_ok && type != napi_undefined && type != napi_null;
}

static void free_request(struct request *r) {
  if (r->argv) {
    for (char **a = r->argv; *a; a++) free(*a);
    free(r->argv);
  }
  free(r->file);
}

/* Fills `r` from (file, args, logFd, options); false with a JavaScript exception pending. */
static bool read_request(napi_env env, napi_value *argv, struct request *r) {
  memset(r, 0, sizeof *r);
  r->netns_fd = -1;
  uint32_t argc = 0;
  if (!(r->file = string_of(env, argv[0])) || napi_get_array_length(env, argv[1], &argc) != napi_ok ||
      napi_get_value_int32(env, argv[2], &r->log_fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "spawn(file, args, logFd, options): bad arguments");
    return false;
  }
  r->argv = calloc(argc + 2, sizeof(char *));
  if (!r->argv || !(r->argv[0] = strdup(r->file))) return napi_throw_error(env, NULL, "out of memory"), false;
  for (uint32_t i = 0; i < argc; i++) {
    napi_value item;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || !(r->argv[i + 1] = string_of(env, item))) {
      napi_throw_type_error(env, NULL, "spawn: every argument must be a string");
      return false;
    }
  }
  napi_value v;
  if (has(env, argv[3], "netnsFd", &v) && napi_get_value_int32(env, v, &r->netns_fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "spawn: netnsFd must be a number");
    return false;
  }
  if (!has(env, argv[3], "runAs", &v)) return true;
  napi_value uid, gid, groups;
  uint32_t n = 0;
  if (!has(env, v, "uid", &uid) || !has(env, v, "gid", &gid) || !has(env, v, "groups", &groups) ||
      napi_get_value_uint32(env, uid, &r->uid) != napi_ok || napi_get_value_uint32(env, gid, &r->gid) != napi_ok ||
      napi_get_array_length(env, groups, &n) != napi_ok || n > MAX_GROUPS) {
    napi_throw_type_error(env, NULL, "spawn: runAs needs uid, gid and at most 64 groups");
    return false;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value g;
    if (napi_get_element(env, groups, i, &g) != napi_ok || napi_get_value_uint32(env, g, &r->groups[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "spawn: runAs.groups must be numbers");
      return false;
    }
  }
  r->ngroups = n;
  r->drop = 1;
  return true;
}

/* Waits for the child's verdict: 0 once it exec'd, else the errno it failed with (and where). */
static int child_verdict(int read_fd, pid_t pid, int *stage) {
  struct child_error e;
  ssize_t n;
  do n = read(read_fd, &e, sizeof e);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t)sizeof e) return 0;
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) continue;
  *stage = e.stage;
  return e.err;
}

/*
 * spawn(file: string, args: string[], logFd: number,
 *       options: { runAs?: { uid, gid, groups }, netnsFd?: number },
 *       onExit: (code: number | null, signal: number | null) => void): number (the pid)
 */
static napi_value spawn(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) {
    napi_throw_type_error(env, NULL, "spawn(file, args, logFd, options, onExit)");
    return NULL;
  }
  struct request r;
  if (!read_request(env, argv, &r)) {
    free_request(&r);
    return NULL;
  }
  struct exit_report *report = calloc(1, sizeof *report);
  napi_threadsafe_function tsfn = NULL;
  napi_value name;
  napi_create_string_utf8(env, "vmlet spawn exit", NAPI_AUTO_LENGTH, &name);
  if (!report || napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, report, call_on_exit, &tsfn) != napi_ok) {
    free(report);
    free_request(&r);
    napi_throw_error(env, NULL, "spawn: cannot watch for the child's exit");
    return NULL;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    int err = errno;
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    free(report);
    free_request(&r);
    napi_throw_error(env, NULL, strerror(err));
    return NULL;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    child(&r, fds[1]);
  }
  int fork_errno = errno;
  close(fds[1]);
  int stage = 0;
  int err = pid < 0 ? fork_errno : child_verdict(fds[0], pid, &stage);
  close(fds[0]);
  free_request(&r);
  if (pid < 0 || err != 0) {
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    free(report);
    char message[256];
    const char *code = strerrorname_np(err);
    snprintf(message, sizeof message, "%s: %s (%s)", pid < 0 ? "fork" : stage_name(stage), strerror(err), code ? code : "?");
    napi_throw_error(env, NULL, message);
    return NULL;
  }
  report->pid = pid;
  /* The watcher must not keep the helper's loop alive; the helper exits when the daemon goes. */
  napi_unref_threadsafe_function(env, tsfn);
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int rc = pthread_create(&thread, &attr, wait_for_exit, tsfn);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    /* The child runs; without a watcher its exit goes unreported, so say so rather than lie. */
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    free(report);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) continue;
    napi_throw_error(env, NULL, "spawn: cannot start a thread to wait for the child");
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, pid, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "spawn", NAPI_AUTO_LENGTH, spawn, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "spawn", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
