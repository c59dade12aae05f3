/* arena.h - bump allocator for activations and scratch memory.
 *
 * Allocations are 64-byte aligned and freed all at once by arena_reset(). When a step needs more
 * than the current block, extra blocks are chained; the next reset merges them into one block of
 * the high-water size, so after the first step of a loop nothing is malloc'd any more.
 */
#ifndef DIFFUSE_CORE_ARENA_H
#define DIFFUSE_CORE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ArenaBlock ArenaBlock;

typedef struct {
  ArenaBlock *head;   /* current block; older blocks of this cycle follow ->next */
  size_t used_total;  /* bytes handed out since the last reset, all blocks */
  size_t high_water;  /* largest used_total seen */
} Arena;

/* A position in the arena to come back to (arena_rewind). */
typedef struct {
  const ArenaBlock *block;
  size_t used, used_total;
} ArenaMark;

void arena_init(Arena *a, size_t initial_bytes);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t bytes);          /* uninitialised */
void *arena_calloc(Arena *a, size_t bytes);         /* zeroed */
float *arena_floats(Arena *a, size_t n);            /* uninitialised floats */
void arena_reset(Arena *a);
ArenaMark arena_mark(const Arena *a);
/* Free everything allocated since the mark: true if done, false (nothing freed) when a new block
 * was chained since. */
bool arena_rewind(Arena *a, ArenaMark m);
size_t arena_capacity(const Arena *a);              /* bytes reserved, all blocks */

#endif
