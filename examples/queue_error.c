/*
 * queue_error.c - a child's error sent back to the parent through a Queue.
 *
 * The Python pattern: the child catches the exception of its work and
 * puts it on a queue, instead of dying with a traceback the parent never
 * sees; the parent gets each outcome and reports the errors.
 *
 *     from multiprocessing import Process, Queue
 *
 *     def divide(q, job, a, b):
 *         try:
 *             q.put(('ok', job, a / b))
 *         except Exception as e:
 *             q.put(('error', job, type(e).__name__, str(e)))
 *
 *     def read_first_line(q, job, path):
 *         try:
 *             with open(path) as f:
 *                 q.put(('ok', job, f.readline()))
 *         except Exception as e:
 *             q.put(('error', job, type(e).__name__, str(e)))
 *
 *     if __name__ == '__main__':
 *         q = Queue()
 *         ps = [Process(target=divide, args=(q, 0, 7, 2)),
 *               Process(target=divide, args=(q, 1, 1, 0)),
 *               Process(target=read_first_line,
 *                       args=(q, 2, 'no-such-file.txt'))]
 *         for p in ps: p.start()
 *         results = sorted((q.get() for p in ps), key=lambda r: r[1])
 *         for p in ps: p.join()
 *         for r in results:
 *             if r[0] == 'ok':
 *                 print('child returned:', r[2])
 *             else:
 *                 print('child reported: %s: %s' % (r[2], r[3]))
 *
 *     child returned: 3.5
 *     child reported: ZeroDivisionError: division by zero
 *     child reported: FileNotFoundError: [Errno 2] No such file or
 *                     directory: 'no-such-file.txt'
 *
 * In C a result or an error is an mp_args tuple on the queue:
 * ("ok", job, value) or ("error", job, name, message).  The children
 * end normally (exit code 0): the error is data, like Python's caught
 * exception.  (For an error that ends the child, mp_set_error and
 * mp_process_error carry the message with the exit code instead: see
 * exitcodes.c.)  The three children run at once, so the outcomes arrive
 * in any order; the job number puts them back in order for printing.
 *
 * An optional argument chooses the start method: queue_error spawn.
 */
#include "example.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mproc.h"

#define MISSING_FILE "no-such-file.txt"
#define N_JOBS 3

/* Put ("error", job, name, message) on q; the child's exit code. */
static int put_error(mp_queue *q, int job, const char *name,
                     const char *message) {
  mp_args *r;
  int rc = mp_args_pack(&r, "siss", "error", job, name, message);
  if (rc == 0)
    rc = mp_queue_put_args(q, r, MP_FOREVER);
  mp_args_free(r);
  return rc == 0 ? 0 : mp_set_error(1, "put: %s", mp_last_error_message());
}

static int put_ok(mp_queue *q, int job, const char *value) {
  mp_args *r;
  int rc = mp_args_pack(&r, "sis", "ok", job, value);
  if (rc == 0)
    rc = mp_queue_put_args(q, r, MP_FOREVER);
  mp_args_free(r);
  return rc == 0 ? 0 : mp_set_error(1, "put: %s", mp_last_error_message());
}

/* divide(q, job, a, b) */
static int divide(const mp_args *args) {
  mp_queue *q = mp_args_queue(args, 0);
  int job = (int)mp_args_int(args, 1);
  double a = mp_args_double(args, 2), b = mp_args_double(args, 3);
  if (b == 0.0) /* C would give inf; Python raises */
    return put_error(q, job, "ZeroDivisionError", "division by zero");
  char value[32];
  snprintf(value, sizeof value, "%g", a / b);
  return put_ok(q, job, value);
}

/* read_first_line(q, job, path) */
static int read_first_line(const mp_args *args) {
  mp_queue *q = mp_args_queue(args, 0);
  int job = (int)mp_args_int(args, 1);
  const char *path = mp_args_str(args, 2);
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    int err = errno;
    char message[512];
    snprintf(message, sizeof message, "[Errno %d] %s: '%s'", err,
             strerror(err), path);
    return put_error(q, job, err == ENOENT ? "FileNotFoundError" : "OSError",
                     message);
  }
  char line[256] = "";
  if (fgets(line, sizeof line, f) != NULL)
    line[strcspn(line, "\r\n")] = '\0';
  fclose(f);
  return put_ok(q, job, line);
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  mp_queue *q;
  mp_process *ps[N_JOBS];
  if (mp_queue_new(&q, 0) != 0 ||
      mp_process_startf(&ps[0], divide, "Qidd", q, 0, 7.0, 2.0) != 0 ||
      mp_process_startf(&ps[1], divide, "Qidd", q, 1, 1.0, 0.0) != 0 ||
      mp_process_startf(&ps[2], read_first_line, "Qis", q, 2,
                        MISSING_FILE) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    return 1;
  }

  /* One outcome per child, in the order they come; by job afterwards. */
  mp_args *results[N_JOBS] = {NULL, NULL, NULL};
  int failed = 0;
  for (int k = 0; k < N_JOBS; k++) {
    mp_args *r;
    if (mp_queue_get_args(q, &r, MP_FOREVER) != 0) {
      fprintf(stderr, "get: %s\n", mp_last_error_message());
      return 1;
    }
    int64_t job = mp_args_int(r, 1);
    if (job < 0 || job >= N_JOBS || results[job] != NULL) {
      fprintf(stderr, "unexpected job %lld\n", (long long)job);
      mp_args_free(r);
      failed = 1;
      continue;
    }
    results[job] = r;
  }
  for (int i = 0; i < N_JOBS; i++) {
    int code = -1;
    mp_process_join(ps[i], MP_FOREVER);
    mp_process_exitcode(ps[i], &code);
    failed |= code != 0;
    mp_process_free(ps[i]);
  }

  /* Job 0 succeeds, jobs 1 and 2 report errors. */
  static const char *const expected[N_JOBS] = {"3.5", "ZeroDivisionError",
                                               "FileNotFoundError"};
  for (int i = 0; i < N_JOBS; i++) {
    mp_args *r = results[i];
    if (r == NULL) {
      failed = 1;
      continue;
    }
    if (strcmp(mp_args_str(r, 0), "ok") == 0)
      printf("child returned: %s\n", mp_args_str(r, 2));
    else
      printf("child reported: %s: %s\n", mp_args_str(r, 2),
             mp_args_str(r, 3));
    failed |= strcmp(mp_args_str(r, 2), expected[i]) != 0;
    mp_args_free(r);
  }
  mp_queue_free(q);
  return failed;
}
