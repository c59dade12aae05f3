/* comm.h - the processes of one job (MPI ranks) and the collectives data parallelism needs.
 *
 * Built with -DDIFFUSE_MPI=ON (the default when Open MPI is found) these are MPI calls on
 * MPI_COMM_WORLD; without MPI the job is one process and every collective is the identity. A binary
 * without MPI started by mpirun or srun as one of several processes refuses to run (comm_init).
 *
 * Every collective is called by all ranks in the same order. Reductions are MPI_Allreduce with
 * MPI_SUM/MPI_MAX: Open MPI picks its algorithm from the message size and the number of ranks only,
 * so a sum is the same bits every run for a given N, but not across different N (and not the bits
 * a single process gets by accumulating in place). Errors that one rank meets (a bad batch, a
 * signal, a failed write) are agreed on with comm_any before anyone acts, so no rank waits forever.
 */
#ifndef DIFFUSE_BACKEND_COMM_H
#define DIFFUSE_BACKEND_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

/* MPI_Init (when built with MPI), the rank layout, OpenMP threads per rank (the node's cores split
 * between its ranks unless OMP_NUM_THREADS is set), and the check that every rank runs the same
 * executable. 0, or -1 + a message. */
int comm_init(int *argc, char ***argv, char *err, size_t errlen);
void comm_finalize(void);
/* Terminate every rank of the job now (a rank that cannot go on while others wait on it). */
_Noreturn void comm_abort(int code);

int comm_rank(void);
int comm_size(void);
bool comm_is_root(void); /* rank 0: the one that writes files and prints progress */
bool comm_built_with_mpi(void);

/* true on every rank if `flag` is true on any rank. */
bool comm_any(bool flag);
/* true on every rank if every rank passed the same value (a hash of a config, of the binary). */
bool comm_all_equal(uint64_t value);
void comm_sum_doubles(double *x, size_t n); /* in place, on every rank */
/* n floats of backend memory summed over the ranks, in place, on every rank: staged through a host
 * buffer in buckets of at most COMM_BUCKET_FLOATS (allocated once). */
#define COMM_BUCKET_FLOATS ((size_t)4 << 20)
void comm_sum_backend_floats(const Backend *be, BackendMem *x, size_t n);
/* Point to point, for gathering results at rank 0 in order: `bytes` from rank `from` into buf. */
void comm_send(const void *buf, size_t bytes, int to);
void comm_recv(void *buf, size_t bytes, int from);

/* FNV-1a of bytes, for comm_all_equal. */
uint64_t comm_hash(const void *data, size_t n, uint64_t h);
#define COMM_HASH_SEED 0xcbf29ce484222325ull

#endif
