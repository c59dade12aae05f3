/* comm.c - MPI ranks and collectives; see comm.h. */
#include "backend/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef DIFFUSE_HAVE_MPI
#include <mpi.h>
#endif

#include "core/error.h"

static int g_rank = 0, g_size = 1;

uint64_t comm_hash(const void *data, size_t n, uint64_t h) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/* How many processes the launcher started, from its environment (0: not launched as a job). */
static long launched_processes(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", NULL};
  for (int i = 0; vars[i]; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) return strtol(v, NULL, 10);
  }
  return 0;
}

#ifdef DIFFUSE_HAVE_MPI

static float *g_bucket; /* host staging for comm_sum_backend_floats */

/* A hash of this process's executable, so that ranks on different machines running different
 * builds are told apart. */
static uint64_t executable_hash(void) {
  FILE *f = fopen("/proc/self/exe", "rb");
  uint64_t h = COMM_HASH_SEED;
  if (!f) return h;
  unsigned char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = comm_hash(buf, n, h);
  fclose(f);
  return h;
}

/* OpenMP threads: the node's cores shared by its ranks, unless the user chose (OMP_NUM_THREADS). */
static void place_threads(int local_ranks) {
  if (getenv("OMP_NUM_THREADS") || local_ranks <= 1) return;
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  const int threads = cores / local_ranks > 1 ? (int)(cores / local_ranks) : 1;
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  backend_cpu()->ops->set_threads(backend_cpu(), threads);
}

int comm_init(int *argc, char ***argv, char *err, size_t errlen) {
  if (launched_processes() <= 1 && !getenv("OMPI_COMM_WORLD_SIZE")) return 0; /* a plain start: no MPI at all */
  int provided;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return errorf(err, errlen, "MPI_Init failed (is this mpirun's environment broken?)");
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
  int local_size;
  MPI_Comm_size(local, &local_size);
  MPI_Comm_free(&local);
  place_threads(local_size);
  if (!comm_all_equal(executable_hash()))
    return errorf(err, errlen, "the %d ranks do not all run the same diffuse executable: install one build everywhere",
                  g_size);
  return 0;
}

static bool mpi_on(void) {
  int on = 0;
  MPI_Initialized(&on);
  return on;
}

void comm_finalize(void) {
  free(g_bucket), g_bucket = NULL;
  if (mpi_on()) MPI_Finalize();
}

_Noreturn void comm_abort(int code) {
  if (mpi_on() && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

bool comm_any(bool flag) {
  if (g_size == 1) return flag;
  int in = flag, out = 0;
  MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return out != 0;
}

bool comm_all_equal(uint64_t value) {
  if (g_size == 1) return true;
  unsigned long long v = value, lo = 0, hi = 0;
  MPI_Allreduce(&v, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&v, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
  return lo == hi;
}

void comm_sum_doubles(double *x, size_t n) {
  if (g_size > 1 && n) MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

void comm_sum_backend_floats(const Backend *be, BackendMem *x, size_t n) {
  if (g_size == 1) return;
  if (!g_bucket) g_bucket = xmalloc(COMM_BUCKET_FLOATS * sizeof(float));
  for (size_t at = 0; at < n; at += COMM_BUCKET_FLOATS) {
    const size_t k = n - at < COMM_BUCKET_FLOATS ? n - at : COMM_BUCKET_FLOATS;
    backend_download(be, g_bucket, mem_floats_at(x, at), k * sizeof(float));
    MPI_Allreduce(MPI_IN_PLACE, g_bucket, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    backend_upload(be, mem_floats_at(x, at), g_bucket, k * sizeof(float));
  }
}

#define CHUNK ((size_t)1 << 30)

/* MPI counts are ints: messages go in pieces of at most CHUNK bytes (both sides cut the same way). */
void comm_send(const void *buf, size_t bytes, int to) {
  for (size_t at = 0; at < bytes; at += CHUNK)
    MPI_Send((const char *)buf + at, (int)(bytes - at < CHUNK ? bytes - at : CHUNK), MPI_BYTE, to, 0, MPI_COMM_WORLD);
}

void comm_recv(void *buf, size_t bytes, int from) {
  for (size_t at = 0; at < bytes; at += CHUNK)
    MPI_Recv((char *)buf + at, (int)(bytes - at < CHUNK ? bytes - at : CHUNK), MPI_BYTE, from, 0, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
}

bool comm_built_with_mpi(void) { return true; }

#else /* one process */

int comm_init(int *argc, char ***argv, char *err, size_t errlen) {
  const long n = launched_processes();
  if (n > 1)
    return errorf(err, errlen,
                  "started as one of %ld processes (mpirun or srun), but this diffuse was built without MPI: install "
                  "libopenmpi-dev and rebuild (cmake -DDIFFUSE_MPI=ON), or run one process",
                  n);
  return 0;
}

void comm_finalize(void) {}
_Noreturn void comm_abort(int code) { exit(code); }
bool comm_any(bool flag) { return flag; }
bool comm_all_equal(uint64_t value) { return true; }
void comm_sum_doubles(double *x, size_t n) {}
void comm_sum_backend_floats(const Backend *be, BackendMem *x, size_t n) {}
void comm_send(const void *buf, size_t bytes, int to) { CHECK(!"comm_send in a single-process build"); }
void comm_recv(void *buf, size_t bytes, int from) { CHECK(!"comm_recv in a single-process build"); }
bool comm_built_with_mpi(void) { return false; }

#endif

int comm_rank(void) { return g_rank; }
int comm_size(void) { return g_size; }
bool comm_is_root(void) { return g_rank == 0; }
