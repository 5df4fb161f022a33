/*
 * flock(2) with LOCK_EX | LOCK_NB on a descriptor the caller opened: Node has no call for it, and
 * taking a directory's lock through flock(1) costs a process on the daemon's start path. N-API
 * only, so one build loads on every Node version.
 */
#include <errno.h>
#include <string.h>
#include <sys/file.h>
#include <node_api.h>

/* lockExclusive(fd: number): boolean — true once locked, false while another open file holds it. */
static napi_value lock_exclusive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "lockExclusive(fd): fd must be a number");
    return NULL;
  }
  int rc;
  do rc = flock(fd, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EWOULDBLOCK) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  napi_value result;
  if (napi_get_boolean(env, rc == 0, &result) != napi_ok) return NULL;
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "lockExclusive", NAPI_AUTO_LENGTH, lock_exclusive, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "lockExclusive", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
