#include "flame_tree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

/* ---- hashing and the identity map ---- */

static uint64_t flame_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t flame_hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ len;
    size_t i = 0;
    /* Eight bytes per step: interned strings are hashed once each, but paths can be long. */
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = flame_mix(h ^ w);
    }
    uint64_t tail = 0;
    memcpy(&tail, s + i, len - i);
    return flame_mix(h ^ tail ^ 0x9e3779b97f4a7c15ull);
}

static uint64_t flame_key_hash(uint64_t k0, uint64_t k1, uint64_t k2)
{
    /* Keys are ids and pointers, already well spread: one multiply each and a final mix suffice. */
    return flame_mix(k0 * 0x9e3779b97f4a7c15ull ^ k1 * 0xc2b2ae3d27d4eb4full ^ k2 * 0x165667b19e3779f9ull);
}

static int flame_map_grow(struct flame_map *map)
{
    size_t capacity = map->capacity ? map->capacity * 2 : 256;
    struct flame_map_slot *slots = malloc(capacity * sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < capacity; i++)
        slots[i].value = FLAME_NONE;
    for (size_t i = 0; i < map->capacity; i++) {
        const struct flame_map_slot *old = &map->slots[i];
        if (old->value == FLAME_NONE)
            continue;
        size_t j = flame_key_hash(old->key[0], old->key[1], old->key[2]) & (capacity - 1);
        while (slots[j].value != FLAME_NONE)
            j = (j + 1) & (capacity - 1);
        slots[j] = *old;
    }
    free(map->slots);
    map->slots = slots;
    map->capacity = capacity;
    return 0;
}

uint32_t *flame_map_slot(struct flame_map *map, uint64_t k0, uint64_t k1, uint64_t k2)
{
    if ((map->used + 1) * 2 > map->capacity && flame_map_grow(map) < 0)
        return NULL;
    size_t mask = map->capacity - 1;
    size_t j = flame_key_hash(k0, k1, k2) & mask;
    for (;;) {
        struct flame_map_slot *slot = &map->slots[j];
        if (slot->value == FLAME_NONE) {
            slot->key[0] = k0;
            slot->key[1] = k1;
            slot->key[2] = k2;
            map->used++;
            return &slot->value;
        }
        if (slot->key[0] == k0 && slot->key[1] == k1 && slot->key[2] == k2)
            return &slot->value;
        j = (j + 1) & mask;
    }
}

void flame_map_free(struct flame_map *map)
{
    free(map->slots);
    *map = (struct flame_map){0};
}

/* ---- interned strings ---- */

struct flame_arena_block {
    struct flame_arena_block *next;
    size_t used, size;
    char data[];
};

struct flame_string {
    const char *text;
    size_t len;
    uint64_t hash;
};

/* A stack already placed in the tree, kept to recognise equal stacks by one lookup. */
struct flame_stack_memo {
    const struct out_frame *frames; /* the caller's, alive for the whole build */
    size_t depth;
    uint32_t lock, leaf;
    uint32_t next; /* another stack with the same key (a hash collision), or FLAME_NONE */
};

struct flame_tree_state {
    struct flame_arena_block *arena;
    struct flame_string *strings;
    uint32_t string_count, string_capacity;
    struct flame_map by_text;      /* (hash, len) -> first string id; collisions chain in `next_same` */
    uint32_t *next_same;
    struct flame_map string_by_ptr; /* caller's pointer -> string id: samples share their strings */
    struct flame_map child_by_ptr;  /* (parent|line|native, function ptr, file ptr) -> node */
    struct flame_map frame_by_ids;  /* (function id, file id, line|type) -> frame id */
    struct flame_map lock_by_ptr;   /* (lock ptr, kind ptr) -> lock node */
    struct flame_map stack_memo;    /* (stack hash, depth, lock node) -> first entry in `stacks` */
    struct flame_stack_memo *stacks;
    uint32_t stack_count, stack_capacity;
    struct flame_map child;         /* (parent, frame) -> node */
    uint32_t frame_capacity, node_capacity;
};

static char *flame_arena_alloc(struct flame_tree_state *st, size_t size)
{
    struct flame_arena_block *b = st->arena;
    if (!b || b->size - b->used < size) {
        size_t block = size > 60000 ? size : 65536 - sizeof *b;
        b = malloc(sizeof *b + block);
        if (!b)
            return NULL;
        b->size = block;
        b->used = 0;
        b->next = st->arena;
        st->arena = b;
    }
    char *p = b->data + b->used;
    b->used += size;
    return p;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. Overlong forms,
 * surrogates and code points past U+10FFFF are refused: the text goes into XML and JSON. */
static size_t flame_utf8_sequence(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
        return 0;
    return n;
}

/* Text every writer can embed: invalid UTF-8 becomes U+FFFD and control characters (newlines
 * included) become spaces. Returns a malloc'd string, or NULL when memory ran out. */
static char *flame_sanitize(const char *in, size_t *out_len)
{
    size_t len = strlen(in);
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)in;
    for (size_t i = 0; i < len;) {
        size_t n = flame_utf8_sequence(s + i, len - i);
        if (n == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else if (n == 1 && (s[i] < 0x20 || s[i] == 0x7f)) {
            out[o++] = ' ';
            i++;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

char *flame_clean_text(const char *text)
{
    size_t len;
    return flame_sanitize(text ? text : "", &len);
}

static int flame_intern_text(struct flame_tree_state *st, const char *text, size_t len, uint32_t *id)
{
    uint64_t h = flame_hash_bytes(text, len);
    uint32_t *head = flame_map_slot(&st->by_text, h, len, 0);
    if (!head)
        return -ENOMEM;
    for (uint32_t s = *head; s != FLAME_NONE; s = st->next_same[s]) {
        if (st->strings[s].len == len && memcmp(st->strings[s].text, text, len) == 0) {
            *id = s;
            return 0;
        }
    }
    if (st->string_count == st->string_capacity) {
        uint32_t capacity = st->string_capacity ? st->string_capacity * 2 : 256;
        struct flame_string *strings = realloc(st->strings, capacity * sizeof *strings);
        if (!strings)
            return -ENOMEM;
        st->strings = strings;
        uint32_t *next = realloc(st->next_same, capacity * sizeof *next);
        if (!next)
            return -ENOMEM;
        st->next_same = next;
        st->string_capacity = capacity;
    }
    char *copy = flame_arena_alloc(st, len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    uint32_t s = st->string_count++;
    st->strings[s] = (struct flame_string){copy, len, h};
    st->next_same[s] = *head;
    *head = s;
    *id = s;
    return 0;
}

/* The interned id of a caller's string; `fallback` stands in for NULL (FLAME_NONE stays absent). */
static int flame_intern_ptr(struct flame_tree_state *st, const char *ptr, const char *fallback, uint32_t *id)
{
    if (!ptr)
        ptr = fallback;
    if (!ptr) {
        *id = FLAME_NONE;
        return 0;
    }
    uint32_t *slot = flame_map_slot(&st->string_by_ptr, (uintptr_t)ptr, 0, 0);
    if (!slot)
        return -ENOMEM;
    if (*slot != FLAME_NONE) {
        *id = *slot;
        return 0;
    }
    size_t len;
    char *clean = flame_sanitize(ptr, &len);
    if (!clean)
        return -ENOMEM;
    int rc = flame_intern_text(st, clean, len, id);
    free(clean);
    if (rc == 0)
        *slot = *id;
    return rc;
}

static const char *flame_text(const struct flame_tree_state *st, uint32_t id)
{
    return id == FLAME_NONE ? NULL : st->strings[id].text;
}

/* ---- frames and nodes ---- */

/* Room for one more of the `count` elements of *array (capacity *cap, doubled from `first`): 0, -ENOMEM,
 * or -EOVERFLOW when the ids, 32 bits, would run out. */
static int flame_reserve(void **array, uint32_t count, uint32_t *cap, uint32_t first, size_t size)
{
    if (count < *cap)
        return 0;
    if (*cap >= UINT32_MAX / 2)
        return -EOVERFLOW;
    uint32_t capacity = *cap ? *cap * 2 : first;
    void *grown = realloc(*array, capacity * size);
    if (!grown)
        return -ENOMEM;
    *array = grown;
    *cap = capacity;
    return 0;
}

static int flame_add_frame(struct flame_tree *tree, uint32_t function, uint32_t file, uint32_t kind, int line,
                           enum flame_frame_type type, uint32_t *id)
{
    struct flame_tree_state *st = tree->state;
    uint64_t k2 = (uint64_t)(uint32_t)line << 32 | (uint64_t)type;
    uint32_t *slot = flame_map_slot(&st->frame_by_ids, (uint64_t)function << 32 | file, kind, k2);
    if (!slot)
        return -ENOMEM;
    if (*slot != FLAME_NONE) {
        *id = *slot;
        return 0;
    }
    int rc = flame_reserve((void **)&tree->frames, tree->frame_count, &st->frame_capacity, 256, sizeof *tree->frames);
    if (rc < 0)
        return rc;
    *id = *slot = tree->frame_count++;
    tree->frames[*id] = (struct flame_frame){
        .function = flame_text(st, function),
        .file = flame_text(st, file),
        .kind = flame_text(st, kind),
        .line = line,
        .type = type,
    };
    return 0;
}

static int flame_add_node(struct flame_tree *tree, uint32_t parent, uint32_t frame, uint32_t *id)
{
    struct flame_tree_state *st = tree->state;
    uint32_t *slot = flame_map_slot(&st->child, parent, frame, 0);
    if (!slot)
        return -ENOMEM;
    if (*slot != FLAME_NONE) {
        *id = *slot;
        return 0;
    }
    int rc = flame_reserve((void **)&tree->nodes, tree->node_count, &st->node_capacity, 1024, sizeof *tree->nodes);
    if (rc < 0)
        return rc;
    *id = *slot = tree->node_count++;
    uint32_t depth = parent == FLAME_NONE ? 0 : tree->nodes[parent].depth + 1;
    tree->nodes[*id] = (struct flame_node){.frame = frame, .parent = parent, .depth = depth};
    if (depth > tree->max_depth)
        tree->max_depth = depth;
    return 0;
}

/* The child of `parent` for a caller's frame. Samples share their strings, so the caller's pointers
 * find a known child in one lookup; text is interned only the first time a pointer pair shows up. */
static int flame_child_of(struct flame_tree *tree, uint32_t parent, const struct out_frame *f, uint32_t *id)
{
    struct flame_tree_state *st = tree->state;
    uint32_t line = f->line > 0 ? (uint32_t)f->line & 0x7fffffffu : 0;
    uint64_t k0 = (uint64_t)parent << 32 | line << 1 | f->native;
    uint32_t *slot = flame_map_slot(&st->child_by_ptr, k0, (uintptr_t)f->function, (uintptr_t)f->file);
    if (!slot)
        return -ENOMEM;
    if (*slot != FLAME_NONE) {
        *id = *slot;
        return 0;
    }
    uint32_t function, file, frame;
    int rc = flame_intern_ptr(st, f->function, "?", &function);
    if (rc == 0)
        rc = flame_intern_ptr(st, f->file, NULL, &file);
    if (rc == 0)
        rc = flame_add_frame(tree, function, file, FLAME_NONE, (int)line,
                             f->native ? FLAME_FRAME_NATIVE : FLAME_FRAME_PYTHON, &frame);
    if (rc == 0)
        rc = flame_add_node(tree, parent, frame, id);
    if (rc == 0)
        *slot = *id; /* nothing above inserts into child_by_ptr, so the slot is still ours */
    return rc;
}

static int flame_lock_node(struct flame_tree *tree, const struct out_sample *s, uint32_t *id)
{
    struct flame_tree_state *st = tree->state;
    uint32_t *slot = flame_map_slot(&st->lock_by_ptr, (uintptr_t)s->lock, (uintptr_t)s->kind, 0);
    if (!slot)
        return -ENOMEM;
    if (*slot != FLAME_NONE) {
        *id = *slot;
        return 0;
    }
    uint32_t name, kind, frame;
    int rc = flame_intern_ptr(st, s->lock, "(unnamed lock)", &name);
    if (rc == 0)
        rc = flame_intern_ptr(st, s->kind, "other", &kind);
    if (rc == 0)
        rc = flame_add_frame(tree, name, FLAME_NONE, kind, 0, FLAME_FRAME_LOCK, &frame);
    if (rc == 0)
        rc = flame_add_node(tree, 0, frame, id);
    if (rc == 0)
        *slot = *id;
    return rc;
}

static uint64_t flame_add_sat(uint64_t a, uint64_t b)
{
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static bool flame_same_frames(const struct out_frame *a, const struct out_frame *b, size_t depth)
{
    for (size_t i = 0; i < depth; i++) {
        if (a[i].function != b[i].function || a[i].file != b[i].file || a[i].line != b[i].line ||
            a[i].native != b[i].native)
            return false;
    }
    return true;
}

static int flame_add_sample(struct flame_tree *tree, const struct out_sample *s)
{
    struct flame_tree_state *st = tree->state;
    if (s->depth > 0 && !s->frames)
        return -EINVAL;
    uint32_t lock, leaf;
    int rc = flame_lock_node(tree, s, &lock);
    if (rc < 0)
        return rc;
    /* Equal stacks are the common case (a profile repeats few stacks many times), and a reader hands
     * out shared strings: hashing the frames' pointers and lines finds the innermost node at once. */
    uint64_t hash = 0x84222325cbf29ce4ull;
    for (size_t i = 0; i < s->depth; i++) {
        const struct out_frame *f = &s->frames[i];
        hash = (hash ^ (uintptr_t)f->function) * 0x9e3779b97f4a7c15ull;
        hash = (hash ^ (uintptr_t)f->file) * 0xc2b2ae3d27d4eb4full;
        hash = (hash ^ ((uint64_t)(uint32_t)f->line << 1 | f->native)) * 0x165667b19e3779f9ull;
    }
    uint32_t *memo = flame_map_slot(&st->stack_memo, hash, s->depth, lock);
    if (!memo)
        return -ENOMEM;
    for (uint32_t m = *memo; m != FLAME_NONE; m = st->stacks[m].next) {
        if (flame_same_frames(st->stacks[m].frames, s->frames, s->depth)) {
            leaf = st->stacks[m].leaf;
            goto charge;
        }
    }
    leaf = lock;
    for (size_t i = s->depth; i-- > 0;) {
        rc = flame_child_of(tree, leaf, &s->frames[i], &leaf);
        if (rc < 0)
            return rc;
    }
    if (st->stack_count == st->stack_capacity) {
        if (st->stack_capacity >= UINT32_MAX / 2)
            return -EOVERFLOW;
        uint32_t capacity = st->stack_capacity ? st->stack_capacity * 2 : 256;
        struct flame_stack_memo *stacks = realloc(st->stacks, capacity * sizeof *stacks);
        if (!stacks)
            return -ENOMEM;
        st->stacks = stacks;
        st->stack_capacity = capacity;
    }
    st->stacks[st->stack_count] = (struct flame_stack_memo){s->frames, s->depth, lock, leaf, *memo};
    *memo = st->stack_count++;
charge:;
    /* Only the innermost node is charged here; flame_sum_totals adds subtrees up once at the end. */
    struct flame_node *node = &tree->nodes[leaf];
    node->self_wait_ns = flame_add_sat(node->self_wait_ns, s->wait_ns);
    node->self_count = flame_add_sat(node->self_count, s->count);
    return 0;
}

/* A child is always created after its parent, so walking ids downwards sees every subtree complete
 * before adding it to its parent. */
static void flame_sum_totals(struct flame_tree *tree)
{
    for (uint32_t i = 0; i < tree->node_count; i++) {
        tree->nodes[i].wait_ns = tree->nodes[i].self_wait_ns;
        tree->nodes[i].count = tree->nodes[i].self_count;
    }
    for (uint32_t i = tree->node_count; i-- > 1;) {
        struct flame_node *child = &tree->nodes[i], *parent = &tree->nodes[child->parent];
        parent->wait_ns = flame_add_sat(parent->wait_ns, child->wait_ns);
        parent->count = flame_add_sat(parent->count, child->count);
    }
}

/* ---- labels: file names as short as they can be while staying unambiguous ---- */

/* The last `components` components of path, never fewer than the report's short name has
 * ("logging/__init__.py"). */
static const char *flame_path_suffix(const char *path, size_t components)
{
    const char *shortest = prof_short_file(path);
    const char *p = path + strlen(path);
    while (p > path) {
        if (p[-1] == '/' && --components == 0)
            return p < shortest ? p : shortest;
        p--;
    }
    return path;
}

static int flame_cmp_basename(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int c = strcmp(flame_path_suffix(x, 1), flame_path_suffix(y, 1));
    return c ? c : strcmp(x, y);
}

static int flame_shorten_files(struct flame_tree *tree)
{
    struct flame_tree_state *st = tree->state;
    struct flame_map seen = {0}, shortest = {0};
    const char **files = malloc((tree->frame_count + 1) * sizeof *files);
    int rc = files ? 0 : -ENOMEM;
    size_t n = 0;
    for (uint32_t i = 0; rc == 0 && i < tree->frame_count; i++) {
        const char *file = tree->frames[i].file;
        if (!file)
            continue;
        uint32_t *slot = flame_map_slot(&seen, (uintptr_t)file, 0, 0);
        if (!slot)
            rc = -ENOMEM;
        else if (*slot == FLAME_NONE)
            *slot = (uint32_t)n, files[n++] = file;
    }
    if (rc == 0)
        qsort(files, n, sizeof *files, flame_cmp_basename);
    /* Within each group of equal base names, take more trailing components until no other
     * member of the group ends the same way. */
    for (size_t g = 0; rc == 0 && g < n;) {
        size_t end = g + 1;
        while (end < n && strcmp(flame_path_suffix(files[g], 1), flame_path_suffix(files[end], 1)) == 0)
            end++;
        for (size_t i = g; rc == 0 && i < end; i++) {
            const char *suffix = flame_path_suffix(files[i], 1);
            for (size_t k = 2; end - g > 1; k++) {
                bool clash = false;
                for (size_t j = g; j < end && !clash; j++)
                    clash = j != i && strcmp(flame_path_suffix(files[j], k - 1), suffix) == 0;
                if (!clash || suffix == files[i])
                    break;
                suffix = flame_path_suffix(files[i], k);
            }
            uint32_t id;
            rc = flame_intern_text(st, suffix, strlen(suffix), &id);
            uint32_t *slot = rc == 0 ? flame_map_slot(&shortest, (uintptr_t)files[i], 0, 0) : NULL;
            if (rc == 0 && !slot)
                rc = -ENOMEM;
            if (rc == 0)
                *slot = id;
        }
        g = end;
    }
    for (uint32_t i = 0; rc == 0 && i < tree->frame_count; i++) {
        struct flame_frame *f = &tree->frames[i];
        if (f->file)
            f->file_short = st->strings[*flame_map_slot(&shortest, (uintptr_t)f->file, 0, 0)].text;
    }
    free(files);
    flame_map_free(&seen);
    flame_map_free(&shortest);
    return rc;
}

static int flame_make_labels(struct flame_tree *tree)
{
    struct flame_tree_state *st = tree->state;
    for (uint32_t i = 0; i < tree->frame_count; i++) {
        struct flame_frame *f = &tree->frames[i];
        if (f->type == FLAME_FRAME_ROOT || f->type == FLAME_FRAME_LOCK || (!f->file && f->line == 0)) {
            f->label = f->function;
            continue;
        }
        size_t cap = strlen(f->function) + (f->file_short ? strlen(f->file_short) : 1) + 32;
        char *label = flame_arena_alloc(st, cap);
        if (!label)
            return -ENOMEM;
        const char *file = f->file_short ? f->file_short : "?";
        if (f->line > 0)
            snprintf(label, cap, "%s (%s:%d)", f->function, file, f->line);
        else
            snprintf(label, cap, "%s (%s)", f->function, file);
        f->label = label;
    }
    return 0;
}

/* ---- children in label order ---- */

static int flame_cmp_child(const void *a, const void *b, void *ctx)
{
    const struct flame_tree *t = ctx;
    uint32_t fa = t->nodes[*(const uint32_t *)a].frame, fb = t->nodes[*(const uint32_t *)b].frame;
    int c = strcmp(t->frames[fa].label, t->frames[fb].label);
    if (c == 0)
        c = (int)t->frames[fa].type - (int)t->frames[fb].type;
    return c ? c : (fa > fb) - (fa < fb);
}

static int flame_link_children(struct flame_tree *tree)
{
    tree->children = malloc((tree->node_count + 1) * sizeof *tree->children);
    if (!tree->children)
        return -ENOMEM;
    for (uint32_t i = 0; i < tree->node_count; i++)
        tree->nodes[i].child_count = 0;
    for (uint32_t i = 1; i < tree->node_count; i++)
        tree->nodes[tree->nodes[i].parent].child_count++;
    uint32_t next = 0;
    for (uint32_t i = 0; i < tree->node_count; i++) {
        tree->nodes[i].first_child = next;
        next += tree->nodes[i].child_count;
        tree->nodes[i].child_count = 0;
    }
    for (uint32_t i = 1; i < tree->node_count; i++) {
        struct flame_node *p = &tree->nodes[tree->nodes[i].parent];
        tree->children[p->first_child + p->child_count++] = i;
    }
    for (uint32_t i = 0; i < tree->node_count; i++) {
        if (tree->nodes[i].child_count > 1)
            qsort_r(tree->children + tree->nodes[i].first_child, tree->nodes[i].child_count, sizeof(uint32_t),
                    flame_cmp_child, tree);
    }
    return 0;
}

int flame_tree_build(struct flame_tree *tree, const struct out_sample *samples, size_t n)
{
    *tree = (struct flame_tree){0};
    if (n > 0 && !samples)
        return -EINVAL;
    tree->state = calloc(1, sizeof *tree->state);
    if (!tree->state)
        return -ENOMEM;
    uint32_t all, frame, root;
    int rc = flame_intern_text(tree->state, "all", 3, &all);
    if (rc == 0)
        rc = flame_add_frame(tree, all, FLAME_NONE, FLAME_NONE, 0, FLAME_FRAME_ROOT, &frame);
    if (rc == 0)
        rc = flame_add_node(tree, FLAME_NONE, frame, &root);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = flame_add_sample(tree, &samples[i]);
    if (rc == 0) {
        flame_sum_totals(tree);
        rc = flame_shorten_files(tree);
    }
    if (rc == 0)
        rc = flame_make_labels(tree);
    if (rc == 0)
        rc = flame_link_children(tree);
    if (rc < 0)
        flame_tree_free(tree);
    return rc;
}

void flame_tree_free(struct flame_tree *tree)
{
    struct flame_tree_state *st = tree->state;
    if (st) {
        while (st->arena) {
            struct flame_arena_block *next = st->arena->next;
            free(st->arena);
            st->arena = next;
        }
        free(st->strings);
        free(st->next_same);
        flame_map_free(&st->by_text);
        flame_map_free(&st->string_by_ptr);
        flame_map_free(&st->child_by_ptr);
        flame_map_free(&st->frame_by_ids);
        flame_map_free(&st->lock_by_ptr);
        flame_map_free(&st->stack_memo);
        free(st->stacks);
        flame_map_free(&st->child);
        free(st);
    }
    free(tree->frames);
    free(tree->nodes);
    free(tree->children);
    *tree = (struct flame_tree){0};
}

/* ---- small shared formatting ---- */

void flame_format_duration(uint64_t ns, char *buf, size_t cap)
{
    /* Digits are printed as integers, so the process locale cannot change the decimal mark. */
    static const struct {
        uint64_t scale;
        const char *unit;
    } units[] = {{1000000000ull, "s"}, {1000000ull, "ms"}, {1000ull, "\xc2\xb5s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ns < units[i].scale)
            continue;
        /* Rounded to the digits shown: 23.45 s reads "23.5 s". */
        long double x = (long double)ns / units[i].scale;
        unsigned long long hundredths = (unsigned long long)(x * 100 + 0.5L);
        unsigned long long tenths = (unsigned long long)(x * 10 + 0.5L);
        if (hundredths >= 10000)
            snprintf(buf, cap, "%llu %s", (unsigned long long)(x + 0.5L), units[i].unit);
        else if (hundredths >= 1000)
            snprintf(buf, cap, "%llu.%llu %s", tenths / 10, tenths % 10, units[i].unit);
        else
            snprintf(buf, cap, "%llu.%02llu %s", hundredths / 100, hundredths % 100, units[i].unit);
        return;
    }
    snprintf(buf, cap, "%llu ns", (unsigned long long)ns);
}

void flame_format_percent(uint64_t part, uint64_t whole, char *buf, size_t cap)
{
    unsigned long long tenths = whole ? (unsigned long long)((long double)part * 1000.0L / whole + 0.5L) : 0;
    snprintf(buf, cap, "%llu.%llu", tenths / 10, tenths % 10);
}

int flame_writer_begin(FILE *out, const struct out_sample *samples, size_t n, const struct flame_options **opt,
                       struct flame_tree *tree)
{
    static const struct flame_options defaults = {
        .weight = FLAME_WEIGHT_WAIT,
        .title = "ftprof: lock waits",
        .subtitle = NULL,
    };
    if (!out)
        return -EINVAL;
    if (!*opt)
        *opt = &defaults;
    return flame_tree_build(tree, samples, n);
}

int flame_stream_result(FILE *out)
{
    errno = 0;
    if (fflush(out) != 0 || ferror(out))
        return errno ? -errno : -EIO;
    return 0;
}
