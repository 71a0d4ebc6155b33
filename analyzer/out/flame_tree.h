/* The frame tree shared by the flame graph and pprof writers: samples merged into one tree whose root
 * is "all", whose second level is one node per lock, and whose deeper levels are the waiter's frames
 * from outermost to innermost. Identical frames are interned once, so writers compare ids, never
 * strings, and a million samples cost a hash lookup per frame at most. */
#ifndef FTPROF_ANALYZER_FLAME_TREE_H
#define FTPROF_ANALYZER_FLAME_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "output.h"

#define FLAME_NONE UINT32_MAX

/* An open-addressing map from a three-word key to a 32-bit value, for interning by identity. */
struct flame_map_slot {
    uint64_t key[3];
    uint32_t value; /* FLAME_NONE: empty */
};
struct flame_map {
    struct flame_map_slot *slots;
    size_t capacity;
    size_t used;
};
/* Returns the value slot of `key`, inserting it with value FLAME_NONE when absent (the caller then
 * stores the value), or NULL when memory ran out. */
uint32_t *flame_map_slot(struct flame_map *map, uint64_t k0, uint64_t k1, uint64_t k2);
void flame_map_free(struct flame_map *map);

enum flame_frame_type {
    FLAME_FRAME_ROOT,   /* "all" */
    FLAME_FRAME_LOCK,   /* a lock: the root of its waiters' stacks */
    FLAME_FRAME_PYTHON,
    FLAME_FRAME_NATIVE,
};

/* A distinct frame. Its strings are interned: equal text means equal pointer within one tree. All of
 * them are valid UTF-8 without control characters, so writers only escape their own syntax. */
struct flame_frame {
    const char *function;   /* Python qualified name, native symbol, lock name, or "all" */
    const char *file;       /* full path as recorded, or NULL */
    const char *file_short; /* the shortest trailing part of `file` no other file of the tree shares */
    const char *kind;       /* locks only: "lock", "critical_section", ... */
    const char *label;      /* "function (file_short:line)", the lock name, or "all" */
    int line;               /* 0: unknown */
    enum flame_frame_type type;
};

struct flame_node {
    uint32_t frame;
    uint32_t parent;      /* FLAME_NONE for the root */
    uint32_t depth;       /* 0 root, 1 lock, 2 outermost frame, ... */
    uint32_t first_child; /* index into flame_tree.children */
    uint32_t child_count;
    uint64_t wait_ns;     /* inclusive totals */
    uint64_t count;
    uint64_t self_wait_ns; /* samples whose innermost frame is this node */
    uint64_t self_count;
};

struct flame_tree_state;

struct flame_tree {
    struct flame_frame *frames;
    uint32_t frame_count;
    struct flame_node *nodes; /* nodes[0] is the root */
    uint32_t node_count;
    uint32_t *children;       /* per node, its children sorted by label: a deterministic layout */
    uint32_t max_depth;
    struct flame_tree_state *state;
};

/* Builds the tree of `n` samples; 0 or -errno (-EINVAL for a sample with frames missing). */
int flame_tree_build(struct flame_tree *tree, const struct out_sample *samples, size_t n);
void flame_tree_free(struct flame_tree *tree);

static inline uint64_t flame_node_weight(const struct flame_node *node, enum flame_weight weight)
{
    return weight == FLAME_WEIGHT_COUNT ? node->count : node->wait_ns;
}
static inline uint64_t flame_node_self_weight(const struct flame_node *node, enum flame_weight weight)
{
    return weight == FLAME_WEIGHT_COUNT ? node->self_count : node->self_wait_ns;
}

/* "850 ns", "12.3 µs", "12.3 ms", "4.56 s": a duration a reader takes in at a glance. */
void flame_format_duration(uint64_t ns, char *buf, size_t cap);
/* `part` as a percentage of `whole` with one decimal, "0.0" when whole is 0. */
void flame_format_percent(uint64_t part, uint64_t whole, char *buf, size_t cap);

/* A malloc'd copy of `text` that every output can embed: valid UTF-8 (U+FFFD for bad bytes), control
 * characters turned into spaces. NULL when memory ran out. */
char *flame_clean_text(const char *text);

/* The start every flame-graph writer shares: checks `out`, puts the default options in *opt when it
 * is NULL, and builds the tree of `samples`. 0, or -errno (then there is no tree to free). */
int flame_writer_begin(FILE *out, const struct out_sample *samples, size_t n, const struct flame_options **opt,
                       struct flame_tree *tree);

/* Writers print without checking each call: stdio keeps the error, and this reports it once at the
 * end (0, or -errno; -EIO when errno says nothing). */
int flame_stream_result(FILE *out);

#endif
