/*
 * SO_PEERCRED of a connected unix socket: the pid, uid and gid of the process that connected,
 * as the kernel recorded them at connect(). Node has no API for it; the gRPC API's roles need
 * it for callers on the unix socket. N-API only, so one build loads on every Node version.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>

static napi_value throw_errno(napi_env env, int err) {
  napi_throw_error(env, NULL, strerror(err));
  return NULL;
}

static napi_value set_number(napi_env env, napi_value obj, const char *name, double value) {
  napi_value v;
  if (napi_create_double(env, value, &v) != napi_ok) return NULL;
  if (napi_set_named_property(env, obj, name, v) != napi_ok) return NULL;
  return obj;
}

/* peercred(fd: number): { pid, uid, gid } */
static napi_value peercred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "peercred(fd): fd must be a number");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, errno);
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok) return NULL;
  if (!set_number(env, obj, "pid", cred.pid) || !set_number(env, obj, "uid", cred.uid) || !set_number(env, obj, "gid", cred.gid)) return NULL;
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "peercred", NAPI_AUTO_LENGTH, peercred, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "peercred", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
