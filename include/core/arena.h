/* arena.h - bump allocator for activations and scratch memory.
 *
 * Allocations are 64-byte aligned and freed all at once by arena_reset(). When a step needs more
 * than the current block, extra blocks are chained; the next reset merges them into one block of
 * the high-water size, so after the first step of a loop nothing is malloc'd any more.
 *
 * Blocks come from an ArenaAllocator: host memory by default (NULL), or a backend's memory, so a
 * graph keeps its metadata (tensors, tape nodes) in a host arena and its activations in an arena of
 * the backend's memory. The arena never reads or writes the memory it hands out.
 */
#ifndef DIFFUSE_CORE_ARENA_H
#define DIFFUSE_CORE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ArenaBlock ArenaBlock;

/* Where blocks come from: alloc returns `bytes` aligned to 64 bytes, or NULL when out of memory. */
typedef struct {
  void *(*alloc)(void *ctx, size_t bytes);
  void (*free)(void *ctx, void *p);
  void *ctx;
} ArenaAllocator;

typedef struct {
  ArenaAllocator allocator;
  ArenaBlock *head;   /* current block; older blocks of this cycle follow ->next */
  size_t used_total;  /* bytes handed out since the last reset, all blocks */
  size_t high_water;  /* largest used_total seen */
} Arena;

/* A position in the arena to come back to (arena_rewind). */
typedef struct {
  const ArenaBlock *block;
  size_t used, used_total;
} ArenaMark;

/* allocator NULL: host memory (posix_memalign). */
void arena_init(Arena *a, size_t initial_bytes, const ArenaAllocator *allocator);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t bytes);          /* uninitialised */
void *arena_calloc(Arena *a, size_t bytes);         /* zeroed; host arenas only */
void arena_reset(Arena *a);
ArenaMark arena_mark(const Arena *a);
/* Whether arena_rewind(a, m) would succeed: no new block was chained since the mark. */
bool arena_can_rewind(const Arena *a, ArenaMark m);
/* Free everything allocated since the mark: true if done, false (nothing freed) when a new block
 * was chained since. */
bool arena_rewind(Arena *a, ArenaMark m);
size_t arena_capacity(const Arena *a);              /* bytes reserved, all blocks */

#endif
