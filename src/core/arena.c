/* arena.c - chained-block bump allocator; see arena.h. */
#include "core/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define ARENA_ALIGN 64

struct ArenaBlock {
  ArenaBlock *next;
  size_t cap, used;
  unsigned char *base;
};

/* The arena holds activations, whose size the user chooses (batch, model): running out is an
 * environment error with the keys to change, not a crash. */
static _Noreturn void out_of_activation_memory(size_t cap, size_t used) {
  char want[32], have[32];
  fprintf(stderr,
          "diffuse: out of memory: the activations need another %s (%s in use): lower the batch (--batch, train.batch; "
          "or train.micro_batch when training) or the model (model.ch, model.resolution)\n",
          format_bytes(want, sizeof want, (double)cap), format_bytes(have, sizeof have, (double)used));
  exit(1);
}

static void *host_alloc(void *ctx, size_t bytes) {
  void *p = NULL;
  return posix_memalign(&p, ARENA_ALIGN, bytes) == 0 ? p : NULL;
}

static void host_free(void *ctx, void *p) { free(p); }

static ArenaBlock *block_new(const Arena *a, size_t cap, size_t used_total) {
  ArenaBlock *b = xmalloc(sizeof *b);
  b->next = NULL;
  b->cap = cap;
  b->used = 0;
  b->base = a->allocator.alloc(a->allocator.ctx, cap);
  if (!b->base) out_of_activation_memory(cap, used_total);
  return b;
}

static void blocks_free(const Arena *a, ArenaBlock *b) {
  while (b) {
    ArenaBlock *n = b->next;
    a->allocator.free(a->allocator.ctx, b->base);
    free(b);
    b = n;
  }
}

void arena_init(Arena *a, size_t initial_bytes, const ArenaAllocator *allocator) {
  const ArenaAllocator host = {host_alloc, host_free, NULL};
  a->allocator = allocator ? *allocator : host;
  a->head = block_new(a, initial_bytes < 4096 ? 4096 : initial_bytes, 0);
  a->used_total = 0;
  a->high_water = 0;
}

void arena_free(Arena *a) {
  blocks_free(a, a->head);
  memset(a, 0, sizeof *a);
}

void *arena_alloc(Arena *a, size_t bytes) {
  size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
  if (need == 0) need = ARENA_ALIGN;
  ArenaBlock *b = a->head;
  if (b->used + need > b->cap) {
    size_t cap = b->cap * 2 > need ? b->cap * 2 : need;
    ArenaBlock *nb = block_new(a, cap, a->used_total);
    nb->next = b;
    a->head = b = nb;
  }
  void *p = b->base + b->used;
  b->used += need;
  a->used_total += need;
  if (a->used_total > a->high_water) a->high_water = a->used_total;
  return p;
}

void *arena_calloc(Arena *a, size_t bytes) {
  CHECK(a->allocator.alloc == host_alloc);
  void *p = arena_alloc(a, bytes);
  memset(p, 0, bytes);
  return p;
}

void arena_reset(Arena *a) {
  if (a->head->next) { /* several blocks this cycle: replace them by one of the high-water size */
    blocks_free(a, a->head);
    a->head = block_new(a, a->high_water, 0);
  }
  a->head->used = 0;
  a->used_total = 0;
}

ArenaMark arena_mark(const Arena *a) {
  const ArenaMark m = {a->head, a->head->used, a->used_total};
  return m;
}

bool arena_can_rewind(const Arena *a, ArenaMark m) { return m.block == a->head && m.used <= a->head->used; }

bool arena_rewind(Arena *a, ArenaMark m) {
  if (!arena_can_rewind(a, m)) return false;
  a->head->used = m.used;
  a->used_total = m.used_total;
  return true;
}

size_t arena_capacity(const Arena *a) {
  size_t s = 0;
  for (const ArenaBlock *b = a->head; b; b = b->next) s += b->cap;
  return s;
}
