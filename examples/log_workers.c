/*
 * log_workers.c - four log-analysis workers fed through a task queue and
 * stopped by sentinels; their counts come back on a result queue.
 *
 * The Python original (after the multiprocessing documentation's
 * worker-pool example, which stops its workers with 'STOP' sentinels):
 *
 *     from collections import Counter
 *     from multiprocessing import Process, Queue
 *
 *     def level(line):
 *         for name in ('ERROR', 'WARNING', 'INFO'):
 *             if '[%s]' % name in line:
 *                 return name
 *         return 'other'
 *
 *     def worker(tasks, results):
 *         counts = Counter()
 *         for line in iter(tasks.get, None):     # until the sentinel
 *             counts[level(line)] += 1
 *         results.put(counts)
 *
 *     if __name__ == '__main__':
 *         paths = write_logs()                    # three small log files
 *         tasks, results = Queue(100), Queue()
 *         workers = [Process(target=worker, args=(tasks, results))
 *                    for _ in range(4)]
 *         for w in workers:
 *             w.start()
 *         for path in paths:
 *             with open(path) as f:
 *                 for line in f:
 *                     tasks.put(line)
 *         for w in workers:
 *             tasks.put(None)                     # one sentinel each
 *         totals = sum((results.get() for w in workers), Counter())
 *         for w in workers:
 *             w.join()
 *         for name in ('ERROR', 'WARNING', 'INFO'):
 *             print(name, totals[name])
 *
 * The sentinel is an empty message (Python's None): the main program
 * never puts an empty line.  Each worker stops at the first sentinel it
 * takes, so four sentinels stop four workers, whichever takes which.
 * The task queue holds at most 100 lines: the main program waits for
 * room when the workers fall behind.  How the lines are shared among the
 * workers varies from run to run; the totals do not.  The log files are
 * written to the temporary directory and removed at the end.
 *
 * An optional argument chooses the start method: log_workers spawn.
 */
#include "example.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mproc.h"

#define N_WORKERS 4
#define N_FILES 3
#define N_LEVELS 3

static const char *const levels[N_LEVELS] = {"ERROR", "WARNING", "INFO"};

/* The level of a line (an index into levels), N_LEVELS for other lines. */
static int level(const char *line) {
  for (int i = 0; i < N_LEVELS; i++) {
    char tag[16];
    snprintf(tag, sizeof tag, "[%s]", levels[i]);
    if (strstr(line, tag) != NULL)
      return i;
  }
  return N_LEVELS;
}

/* worker(tasks, results): count levels until the sentinel, then put
 * (errors, warnings, infos, others) on results. */
static int worker(const mp_args *args) {
  mp_queue *tasks = mp_args_queue(args, 0);
  mp_queue *results = mp_args_queue(args, 1);
  int64_t counts[N_LEVELS + 1] = {0};
  for (;;) {
    char line[512];
    size_t n;
    if (mp_queue_get_into(tasks, line, sizeof line - 1, &n, MP_FOREVER) != 0)
      return mp_set_error(1, "get: %s", mp_last_error_message());
    if (n == 0)
      break; /* the sentinel */
    line[n] = '\0';
    counts[level(line)]++;
  }
  mp_args *r;
  int rc = mp_args_pack(&r, "IIII", counts[0], counts[1], counts[2],
                        counts[3]);
  if (rc == 0)
    rc = mp_queue_put_args(results, r, MP_FOREVER);
  mp_args_free(r);
  return rc == 0 ? 0 : mp_set_error(1, "put: %s", mp_last_error_message());
}

static const char *const services[N_FILES] = {"web", "db", "auth"};
static const int lines_per_file[N_FILES] = {500, 300, 200};

/* Write the log files, counting their levels into expected[]. */
static int write_logs(char paths[N_FILES][512], int64_t *expected) {
  char dir[400];
  ex_temp_dir(dir, sizeof dir);
  for (int f = 0; f < N_FILES; f++) {
    snprintf(paths[f], 512, "%smproc-log-%lld-%s.log", dir,
             (long long)mp_getpid(), services[f]);
    FILE *out = fopen(paths[f], "w");
    if (out == NULL) {
      perror(paths[f]);
      return 1;
    }
    for (int k = 0; k < lines_per_file[f]; k++) {
      /* 10% errors, 20% warnings, 70% info, spread over the file. */
      int r = (k * 7 + f * 3) % 20;
      int lv = r < 2 ? 0 : r < 6 ? 1 : 2;
      fprintf(out, "2024-05-01 10:%02d:%02d [%s] %s: request %d\n",
              k / 60 % 60, k % 60, levels[lv], services[f], k);
      expected[lv]++;
    }
    if (fclose(out) != 0) {
      perror(paths[f]);
      return 1;
    }
  }
  return 0;
}

static void remove_logs(char paths[N_FILES][512]) {
  for (int f = 0; f < N_FILES; f++)
    remove(paths[f]);
}

/* Put every non-empty line of the files on tasks. */
static int feed(mp_queue *tasks, char paths[N_FILES][512]) {
  for (int f = 0; f < N_FILES; f++) {
    FILE *in = fopen(paths[f], "r");
    if (in == NULL) {
      perror(paths[f]);
      return 1;
    }
    char line[512];
    while (fgets(line, sizeof line, in) != NULL) {
      size_t n = strcspn(line, "\r\n");
      if (n > 0 && mp_queue_put(tasks, line, n, MP_FOREVER) != 0) {
        fprintf(stderr, "put: %s\n", mp_last_error_message());
        fclose(in);
        return 1;
      }
    }
    fclose(in);
  }
  return 0;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  char paths[N_FILES][512] = {{0}};
  int64_t expected[N_LEVELS + 1] = {0}, totals[N_LEVELS + 1] = {0};
  if (write_logs(paths, expected) != 0) {
    remove_logs(paths);
    return 1;
  }

  mp_queue *tasks, *results;
  if (mp_queue_new(&tasks, 100) != 0 || mp_queue_new(&results, 0) != 0) {
    fprintf(stderr, "error: %s\n", mp_last_error_message());
    remove_logs(paths);
    return 1;
  }
  mp_process *workers[N_WORKERS];
  for (int w = 0; w < N_WORKERS; w++) {
    if (mp_process_startf(&workers[w], worker, "QQ", tasks, results) != 0) {
      fprintf(stderr, "error: %s\n", mp_last_error_message());
      remove_logs(paths);
      return 1;
    }
  }

  int failed = feed(tasks, paths);
  for (int w = 0; w < N_WORKERS && !failed; w++) /* one sentinel each */
    if (mp_queue_put(tasks, "", 0, MP_FOREVER) != 0) {
      fprintf(stderr, "put: %s\n", mp_last_error_message());
      failed = 1;
    }
  if (failed) /* wake the workers: their gets fail with MP_ECLOSED */
    mp_queue_close(tasks);

  for (int w = 0; w < N_WORKERS && !failed; w++) {
    mp_args *r;
    if (mp_queue_get_args(results, &r, MP_FOREVER) != 0) {
      fprintf(stderr, "get: %s\n", mp_last_error_message());
      failed = 1;
      break;
    }
    for (int i = 0; i <= N_LEVELS; i++)
      totals[i] += mp_args_int(r, (size_t)i);
    mp_args_free(r);
  }
  for (int w = 0; w < N_WORKERS; w++) {
    int code = -1;
    mp_process_join(workers[w], MP_FOREVER);
    mp_process_exitcode(workers[w], &code);
    failed |= code != 0;
    mp_process_free(workers[w]);
  }
  mp_queue_free(tasks);
  mp_queue_free(results);

  int64_t lines = 0;
  for (int f = 0; f < N_FILES; f++) {
    printf("%s%s.log: %d lines", f ? ", " : "log files: ", services[f],
           lines_per_file[f]);
    lines += lines_per_file[f];
  }
  remove_logs(paths);
  printf("\n%d workers counted %lld lines:\n", N_WORKERS,
         (long long)(totals[0] + totals[1] + totals[2] + totals[3]));
  for (int i = 0; i < N_LEVELS; i++) {
    printf("  %-8s %lld\n", levels[i], (long long)totals[i]);
    failed |= totals[i] != expected[i];
  }
  failed |= totals[0] + totals[1] + totals[2] + totals[3] != lines;
  return failed;
}
