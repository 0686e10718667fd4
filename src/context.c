/*
 * context.c - start methods: contexts, the default method, the executable
 * spawned children run.
 */
#include <string.h>

#include "process.h"

struct mp_context {
  const char *name;
  int method;
};

static mp_context contexts[] = {
    {"fork", MPI_FORK},
    {"spawn", MPI_SPAWN},
    {"forkserver", MPI_FORKSERVER},
};
#define N_CONTEXTS (sizeof contexts / sizeof contexts[0])

static mp_context *default_ctx; /* NULL: the platform's default */
static char executable[1024];

static mp_context *by_method(int method) {
  for (size_t i = 0; i < N_CONTEXTS; i++)
    if (contexts[i].method == method)
      return &contexts[i];
  return NULL;
}

static mp_context *current_default(void) {
  return default_ctx ? default_ctx : by_method(mpi_default_method());
}

static int find(const char *method, mp_context **out) {
  for (size_t i = 0; i < N_CONTEXTS; i++)
    if (strcmp(contexts[i].name, method) == 0) {
      if (!mpi_method_supported(contexts[i].method))
        return mp__error(MP_ENOTSUP,
                         "the '%s' start method is not available on this "
                         "platform",
                         method);
      *out = &contexts[i];
      return 0;
    }
  return mp__error(MP_EINVAL, "cannot find context for '%s'", method);
}

int mp_get_context(const char *method, mp_context **out) {
  if (out == NULL)
    return mp__error(MP_EINVAL, "mp_get_context: out is NULL");
  if (method == NULL) {
    *out = current_default();
    return 0;
  }
  return find(method, out);
}

const char *mp_context_start_method(const mp_context *ctx) {
  return ctx ? ctx->name : NULL;
}

int mp__context_method(const mp_context *ctx) {
  return (ctx ? ctx : current_default())->method;
}

/* A forked child's own method is fork whatever its parent's default
 * (one thread, right after fork: no lock). */
void mp__context_fork_child(void) {
  if (current_default()->method != MPI_FORK)
    default_ctx = by_method(MPI_FORK);
}

int mp_set_start_method(const char *method, int force) {
  mp_context *ctx = NULL;
  if (method != NULL) {
    int rc = find(method, &ctx);
    if (rc != 0)
      return rc;
  } else if (!force) {
    return mp__error(MP_EINVAL, "mp_set_start_method: NULL method needs "
                                "force (it resets to the default)");
  }
  mpi_lock();
  int rc = 0;
  if (default_ctx != NULL && !force)
    rc = mp__error(MP_ESTATE, "the start method has already been set");
  else
    default_ctx = ctx;
  mpi_unlock();
  return rc;
}

const char *mp_get_start_method(void) { return current_default()->name; }

int mp_get_all_start_methods(const char **out, size_t cap) {
  int n = 0;
  mp_context *def = by_method(mpi_default_method());
  if (out != NULL && cap > 0)
    out[0] = def->name;
  n = 1;
  for (size_t i = 0; i < N_CONTEXTS; i++) {
    if (&contexts[i] == def || !mpi_method_supported(contexts[i].method))
      continue;
    if (out != NULL && (size_t)n < cap)
      out[n] = contexts[i].name;
    n++;
  }
  return n;
}

int mp_set_executable(const char *path) {
  if (path == NULL || strlen(path) >= sizeof executable)
    return mp__error(MP_EINVAL, "mp_set_executable: bad path");
  mpi_lock();
  mp__strlcpy(executable, path, sizeof executable);
  mpi_unlock();
  return 0;
}

const char *mp__executable(void) { return executable; }
