/*
 * pool_files.c - a batch of files processed by a pool: eight grey-scale
 * images, each reduced to a quarter of its width and height by a worker
 * process, the results read back in order as they come.
 *
 * The Python original (the usual "thumbnails in parallel" example):
 *
 *     from multiprocessing import Pool
 *     from PIL import Image
 *
 *     def make_thumbnail(path):
 *         with Image.open(path) as im:
 *             small = im.reduce(4)              # average 4x4 blocks
 *             small.save(path.replace('.pgm', '-small.pgm'))
 *             return im.size, small.size, sum(small.getdata())
 *
 *     if __name__ == '__main__':
 *         paths = write_images(8)               # in a temporary directory
 *         with Pool() as pool:
 *             for path, (size, small, total) in zip(
 *                     paths, pool.imap(make_thumbnail, paths)):
 *                 mean = total / (small[0] * small[1])
 *                 print(f'{path}: {size} -> {small}, '
 *                       f'mean brightness {mean:.1f}')
 *
 * The images are binary PGM files ("P5"), written by the program itself
 * into a directory of its own under the temporary directory, and removed
 * at the end with their thumbnails.  Workers get only a file's path and
 * return a few numbers: the pixels travel through the files, not through
 * the pool.  mp_pool_imap reads its input through a function, lazily, so
 * the paths could as well come from a directory listing as it is read;
 * results come back in input order.  The program reads each thumbnail
 * back to check it.
 *
 * An optional argument chooses the start method: pool_files spawn.
 */
#include "example.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

#define N_IMAGES 8
#define WIDTH 640
#define HEIGHT 480
#define FACTOR 4

/* Read a binary PGM: its pixels (malloc'd) and size, or NULL. */
static unsigned char *read_pgm(const char *path, int *w, int *h) {
  FILE *f = fopen(path, "rb");
  int maxval = 0;
  unsigned char *px = NULL;
  if (f == NULL)
    return NULL;
  if (fscanf(f, "P5 %d %d %d", w, h, &maxval) == 3 && maxval == 255 &&
      *w > 0 && *h > 0 && *w <= 16384 && *h <= 16384 && fgetc(f) != EOF) {
    size_t n = (size_t)*w * (size_t)*h;
    px = malloc(n);
    if (px != NULL && fread(px, 1, n, f) != n) {
      free(px);
      px = NULL;
    }
  }
  fclose(f);
  return px;
}

static int write_pgm(const char *path, const unsigned char *px, int w,
                     int h) {
  FILE *f = fopen(path, "wb");
  if (f == NULL)
    return -1;
  fprintf(f, "P5\n%d %d\n255\n", w, h);
  size_t n = (size_t)w * (size_t)h;
  int bad = fwrite(px, 1, n, f) != n;
  return fclose(f) != 0 || bad ? -1 : 0;
}

static void thumbnail_path(char *out, size_t cap, const char *path) {
  size_t n = strlen(path) - strlen(".pgm");
  snprintf(out, cap, "%.*s-small.pgm", (int)n, path);
}

/* make_thumbnail(path) -> (width, height, small width, small height,
 * sum of the thumbnail's pixels). */
static int make_thumbnail(const mp_args *args, mp_args *result) {
  const char *path = mp_args_str(args, 0);
  int w, h;
  unsigned char *px = read_pgm(path, &w, &h);
  if (px == NULL)
    return mp_set_error(1, "cannot read %s", path);
  int sw = w / FACTOR, sh = h / FACTOR;
  unsigned char *small = malloc((size_t)sw * (size_t)sh);
  if (small == NULL) {
    free(px);
    return mp_set_error(1, "out of memory");
  }
  int64_t total = 0;
  for (int y = 0; y < sh; y++)
    for (int x = 0; x < sw; x++) {
      unsigned sum = 0;
      for (int dy = 0; dy < FACTOR; dy++)
        for (int dx = 0; dx < FACTOR; dx++)
          sum += px[(size_t)(y * FACTOR + dy) * (size_t)w +
                    (size_t)(x * FACTOR + dx)];
      small[(size_t)y * (size_t)sw + (size_t)x] =
          (unsigned char)((sum + FACTOR * FACTOR / 2) / (FACTOR * FACTOR));
      total += small[(size_t)y * (size_t)sw + (size_t)x];
    }
  char out[600];
  thumbnail_path(out, sizeof out, path);
  int rc = write_pgm(out, small, sw, sh);
  free(small);
  free(px);
  if (rc != 0)
    return mp_set_error(1, "cannot write %s", out);
  mp_args_add_int(result, w);
  mp_args_add_int(result, h);
  mp_args_add_int(result, sw);
  mp_args_add_int(result, sh);
  return mp_args_add_int(result, total);
}

/* Image k: rings around a point that moves from image to image. */
static int write_image(const char *path, int k) {
  unsigned char *px = malloc((size_t)WIDTH * HEIGHT);
  if (px == NULL)
    return -1;
  int cx = WIDTH * (k + 1) / (N_IMAGES + 1), cy = HEIGHT / 2;
  for (int y = 0; y < HEIGHT; y++)
    for (int x = 0; x < WIDTH; x++) {
      int d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
      px[(size_t)y * WIDTH + (size_t)x] =
          (unsigned char)((d2 / (64 + 16 * k) + x / 4) % 256);
    }
  int rc = write_pgm(path, px, WIDTH, HEIGHT);
  free(px);
  return rc;
}

/* The input of imap: the paths one by one. */
typedef struct paths {
  char name[N_IMAGES][600];
  int next;
} paths;

static int next_path(void *ctx, mp_args *args) {
  paths *p = ctx;
  if (p->next == N_IMAGES)
    return 0;
  return mp_args_add_str(args, p->name[p->next++]) == 0 ? 1 : -1;
}

int main(int argc, char **argv) {
  MP_MAIN_GUARD(argc, argv);
  if (ex_start_method(argc, argv) != 0)
    return 2;

  char tmp[400], dir[500];
  ex_temp_dir(tmp, sizeof tmp);
  snprintf(dir, sizeof dir, "%smproc-images-%lld", tmp,
           (long long)mp_getpid());
  if (ex_mkdir(dir) != 0) {
    perror(dir);
    return 1;
  }
  paths in;
  in.next = 0;
  int failed = 0;
  for (int k = 0; k < N_IMAGES; k++) {
    snprintf(in.name[k], sizeof in.name[k], "%s/photo-%d.pgm", dir, k + 1);
    if (write_image(in.name[k], k) != 0) {
      perror(in.name[k]);
      failed = 1;
    }
  }

  /* with Pool() as pool: for ... in pool.imap(make_thumbnail, paths) */
  mp_pool *pool = NULL;
  mp_imap *it = NULL;
  if (!failed && mp_pool_new(&pool, 0) != 0) {
    fprintf(stderr, "Pool: %s\n", mp_last_error_message());
    failed = 1;
  }
  double t0 = ex_now();
  if (pool != NULL &&
      mp_pool_imap(pool, make_thumbnail, next_path, &in, 1, 0, &it) != 0) {
    fprintf(stderr, "imap: %s\n", mp_last_error_message());
    failed = 1;
  }
  int done = 0;
  int64_t pixels_in = 0, pixels_out = 0;
  for (;;) {
    mp_args *r;
    size_t i = 0;
    int rc = it ? mp_imap_next(it, &r, &i, MP_FOREVER) : 0;
    if (rc == 0)
      break;
    if (rc < 0) {
      fprintf(stderr, "photo-%d.pgm: %s\n", (int)i + 1,
              mp_last_error_message());
      failed = 1;
      continue;
    }
    int64_t w, h, sw, sh, total;
    mp_args_unpack(r, "IIIII", &w, &h, &sw, &sh, &total);
    mp_args_free(r);
    printf("photo-%d.pgm: %lldx%lld -> %lldx%lld, mean brightness %.1f\n",
           (int)i + 1, (long long)w, (long long)h, (long long)sw,
           (long long)sh, (double)total / (double)(sw * sh));

    /* Check the thumbnail the worker wrote. */
    char small[600];
    int cw = 0, ch = 0;
    thumbnail_path(small, sizeof small, in.name[i]);
    unsigned char *px = read_pgm(small, &cw, &ch);
    int64_t sum = 0;
    for (size_t k = 0; px != NULL && k < (size_t)cw * (size_t)ch; k++)
      sum += px[k];
    failed |= px == NULL || cw != sw || ch != sh || sum != total;
    free(px);
    done++;
    pixels_in += w * h;
    pixels_out += sw * sh;
  }
  double elapsed = ex_now() - t0;
  mp_imap_free(it);
  int workers = pool ? mp_pool_workers(pool) : 0;
  mp_pool_free(pool);

  printf("%d images, %lld pixels reduced to %lld by %d worker processes "
         "in %.2f s\n",
         done, (long long)pixels_in, (long long)pixels_out, workers,
         elapsed);
  for (int k = 0; k < N_IMAGES; k++) {
    char small[600];
    thumbnail_path(small, sizeof small, in.name[k]);
    remove(small);
    remove(in.name[k]);
  }
  if (ex_rmdir(dir) != 0) {
    perror(dir);
    failed = 1;
  }
  return failed || done != N_IMAGES ? 1 : 0;
}
