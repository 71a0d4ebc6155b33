/* pprof export: a gzip-compressed profile.proto Profile shaped like Go's mutex profile, so
 * `go tool pprof` and other pprof readers show lock waits with their usual views. Samples come from
 * the frame tree: one per distinct (lock, stack), which also merges duplicates. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "flame_tree.h"
#include "output.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile pprof_profile;
typedef Perftools__Profiles__Sample pprof_sample;
typedef Perftools__Profiles__Label pprof_label;
typedef Perftools__Profiles__Location pprof_location;
typedef Perftools__Profiles__Line pprof_line;
typedef Perftools__Profiles__Function pprof_function;
typedef Perftools__Profiles__ValueType pprof_value_type;

struct pprof_strings {
    char **table;
    size_t count, capacity;
    struct flame_map by_ptr; /* the tree interns its strings, so a pointer names one text */
};

static int pprof_string(struct pprof_strings *s, const char *text, int64_t *index)
{
    uint32_t *slot = flame_map_slot(&s->by_ptr, (uintptr_t)text, 0, 0);
    if (!slot)
        return -ENOMEM;
    if (*slot == FLAME_NONE) {
        if (s->count == s->capacity) {
            size_t capacity = s->capacity ? s->capacity * 2 : 64;
            char **table = realloc(s->table, capacity * sizeof *table);
            if (!table)
                return -ENOMEM;
            s->table = table;
            s->capacity = capacity;
        }
        *slot = (uint32_t)s->count;
        s->table[s->count++] = (char *)text;
    }
    *index = *slot;
    return 0;
}

static int64_t pprof_clamp(uint64_t v)
{
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* A ProtobufCBuffer that deflates what the packer appends straight into the output file. */
struct pprof_gzip_sink {
    ProtobufCBuffer base;
    z_stream z;
    FILE *out;
    int error;
};

static int pprof_gzip_run(struct pprof_gzip_sink *sink, const uint8_t *data, size_t len, int flush)
{
    unsigned char chunk[65536];
    sink->z.next_in = (Bytef *)data;
    sink->z.avail_in = (uInt)len;
    int zrc;
    do {
        sink->z.next_out = chunk;
        sink->z.avail_out = sizeof chunk;
        zrc = deflate(&sink->z, flush);
        if (zrc == Z_STREAM_ERROR)
            return -EIO;
        size_t have = sizeof chunk - sink->z.avail_out;
        if (have > 0 && fwrite(chunk, 1, have, sink->out) != have)
            return errno ? -errno : -EIO;
    } while (sink->z.avail_out == 0 || (flush == Z_FINISH && zrc != Z_STREAM_END));
    return 0;
}

static void pprof_gzip_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
    struct pprof_gzip_sink *sink = (struct pprof_gzip_sink *)buffer;
    /* deflate takes at most UINT_MAX bytes per call. */
    while (sink->error == 0 && len > 0) {
        size_t part = len > UINT_MAX ? UINT_MAX : len;
        sink->error = pprof_gzip_run(sink, data, part, Z_NO_FLUSH);
        data += part;
        len -= part;
    }
}

static int pprof_write_gz(FILE *out, const pprof_profile *profile)
{
    struct pprof_gzip_sink sink = {.base = {.append = pprof_gzip_append}, .out = out};
    /* windowBits 15 + 16 asks zlib for a gzip header and trailer instead of a zlib one. */
    if (deflateInit2(&sink.z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    protobuf_c_message_pack_to_buffer(&profile->base, &sink.base);
    if (sink.error == 0)
        sink.error = pprof_gzip_run(&sink, NULL, 0, Z_FINISH);
    deflateEnd(&sink.z);
    return sink.error;
}

struct pprof_build {
    const struct flame_tree *tree;
    struct pprof_strings strings;
    uint32_t *location_of_frame; /* frame id -> location id (1-based), 0 for none yet */
    pprof_location *locations;
    pprof_location **location_ptrs;
    pprof_line *lines;
    pprof_line **line_ptrs;
    size_t location_count;
    pprof_function *functions;
    pprof_function **function_ptrs;
    size_t function_count;
    struct flame_map function_by_name; /* (name ptr, file ptr) -> function id */
    pprof_sample *samples;
    pprof_sample **sample_ptrs;
    size_t sample_count;
    uint64_t *location_ids;
    int64_t *values;
    pprof_label *labels;         /* two per lock: "lock" and "kind" */
    pprof_label **label_ptrs;
    pprof_value_type types[2], period_type;
    pprof_value_type *type_ptrs[2];
};

static int pprof_function_of(struct pprof_build *b, const struct flame_frame *f, uint64_t *id)
{
    uint32_t *slot = flame_map_slot(&b->function_by_name, (uintptr_t)f->function, (uintptr_t)f->file, 0);
    if (!slot)
        return -ENOMEM;
    if (*slot == FLAME_NONE) {
        pprof_function *fn = &b->functions[b->function_count];
        perftools__profiles__function__init(fn);
        fn->id = b->function_count + 1;
        int rc = pprof_string(&b->strings, f->function, &fn->name);
        if (rc == 0)
            rc = pprof_string(&b->strings, f->file ? f->file : "", &fn->filename);
        if (rc < 0)
            return rc;
        fn->system_name = fn->name;
        b->function_ptrs[b->function_count] = fn;
        *slot = (uint32_t)b->function_count++;
    }
    *id = *slot + 1;
    return 0;
}

static int pprof_location_of(struct pprof_build *b, uint32_t frame_id, uint64_t *id)
{
    if (b->location_of_frame[frame_id] == 0) {
        const struct flame_frame *f = &b->tree->frames[frame_id];
        size_t i = b->location_count;
        pprof_line *line = &b->lines[i];
        perftools__profiles__line__init(line);
        int rc = pprof_function_of(b, f, &line->function_id);
        if (rc < 0)
            return rc;
        line->line = f->line;
        b->line_ptrs[i] = line;
        pprof_location *loc = &b->locations[i];
        perftools__profiles__location__init(loc);
        loc->id = i + 1;
        loc->n_line = 1;
        loc->line = &b->line_ptrs[i];
        b->location_ptrs[i] = loc;
        b->location_count++;
        b->location_of_frame[frame_id] = (uint32_t)(i + 1);
    }
    *id = b->location_of_frame[frame_id];
    return 0;
}

/* The arrays of the profile, sized from the tree: a location, line and function per frame at most, a
 * sample per node with samples of its own. */
static int pprof_alloc(struct pprof_build *b)
{
    const struct flame_tree *t = b->tree;
    size_t sample_count = 0, location_refs = 0;
    for (uint32_t i = 1; i < t->node_count; i++) {
        if (t->nodes[i].self_count || t->nodes[i].self_wait_ns) {
            sample_count++;
            location_refs += t->nodes[i].depth - 1;
        }
    }
    b->location_of_frame = calloc(t->frame_count, sizeof *b->location_of_frame);
    b->locations = malloc(t->frame_count * sizeof *b->locations);
    b->location_ptrs = malloc(t->frame_count * sizeof *b->location_ptrs);
    b->lines = malloc(t->frame_count * sizeof *b->lines);
    b->line_ptrs = malloc(t->frame_count * sizeof *b->line_ptrs);
    b->functions = malloc(t->frame_count * sizeof *b->functions);
    b->function_ptrs = malloc(t->frame_count * sizeof *b->function_ptrs);
    b->samples = malloc((sample_count + 1) * sizeof *b->samples);
    b->sample_ptrs = malloc((sample_count + 1) * sizeof *b->sample_ptrs);
    b->location_ids = malloc((location_refs + 1) * sizeof *b->location_ids);
    b->values = malloc((2 * sample_count + 1) * sizeof *b->values);
    b->labels = malloc((2 * t->node_count) * sizeof *b->labels);
    b->label_ptrs = malloc((2 * t->node_count) * sizeof *b->label_ptrs);
    if (!b->location_of_frame || !b->locations || !b->location_ptrs || !b->lines || !b->line_ptrs ||
        !b->functions || !b->function_ptrs || !b->samples || !b->sample_ptrs || !b->location_ids ||
        !b->values || !b->labels || !b->label_ptrs)
        return -ENOMEM;
    return 0;
}

/* Lock nodes hold the labels their samples share: the lock's name and its kind. */
static int pprof_lock_labels(struct pprof_build *b, int64_t lock_key, int64_t kind_key)
{
    const struct flame_tree *t = b->tree;
    for (uint32_t c = 0; c < t->nodes[0].child_count; c++) {
        uint32_t lock = t->children[t->nodes[0].first_child + c];
        const struct flame_frame *f = &t->frames[t->nodes[lock].frame];
        pprof_label *pair = &b->labels[2 * lock];
        perftools__profiles__label__init(&pair[0]);
        perftools__profiles__label__init(&pair[1]);
        pair[0].key = lock_key;
        pair[1].key = kind_key;
        int rc = pprof_string(&b->strings, f->function, &pair[0].str);
        if (rc == 0)
            rc = pprof_string(&b->strings, f->kind, &pair[1].str);
        if (rc < 0)
            return rc;
        b->label_ptrs[2 * lock] = &pair[0];
        b->label_ptrs[2 * lock + 1] = &pair[1];
    }
    return 0;
}

/* Samples in tree order (lock, then stacks in label order) for a reproducible file. */
static int pprof_samples(struct pprof_build *b)
{
    const struct flame_tree *t = b->tree;
    uint32_t *stack = malloc((t->node_count + 1) * sizeof *stack);
    if (!stack)
        return -ENOMEM;
    int rc = 0;
    size_t top = 0, refs = 0;
    stack[top++] = 0;
    while (rc == 0 && top > 0) {
        uint32_t id = stack[--top];
        const struct flame_node *node = &t->nodes[id];
        for (uint32_t c = node->child_count; c-- > 0;)
            stack[top++] = t->children[node->first_child + c];
        if (node->depth == 0 || (!node->self_count && !node->self_wait_ns))
            continue;
        pprof_sample *s = &b->samples[b->sample_count];
        perftools__profiles__sample__init(s);
        s->location_id = &b->location_ids[refs];
        uint32_t up = id;
        while (rc == 0 && t->nodes[up].depth > 1) {
            rc = pprof_location_of(b, t->nodes[up].frame, &b->location_ids[refs++]);
            up = t->nodes[up].parent;
        }
        s->n_location_id = (size_t)(&b->location_ids[refs] - s->location_id);
        s->value = &b->values[2 * b->sample_count];
        s->n_value = 2;
        s->value[0] = pprof_clamp(node->self_count);
        s->value[1] = pprof_clamp(node->self_wait_ns);
        s->label = &b->label_ptrs[2 * up];
        s->n_label = 2;
        b->sample_ptrs[b->sample_count++] = s;
    }
    free(stack);
    return rc;
}

/* The strings the profile names itself with, interned first in this order: pprof requires the empty
 * string at index 0. */
enum pprof_name { PPROF_EMPTY, PPROF_CONTENTIONS, PPROF_COUNT, PPROF_DELAY, PPROF_NANOSECONDS, PPROF_LOCK,
                  PPROF_KIND, PPROF_NAMES };
static const char *const pprof_names[PPROF_NAMES] = {"", "contentions", "count", "delay", "nanoseconds", "lock",
                                                     "kind"};

static int pprof_fill(struct pprof_build *b, pprof_profile *profile, const struct pprof_meta *meta)
{
    int rc = pprof_alloc(b);
    int64_t name[PPROF_NAMES];
    for (int i = 0; i < PPROF_NAMES && rc == 0; i++)
        rc = pprof_string(&b->strings, pprof_names[i], &name[i]);
    if (rc == 0)
        rc = pprof_lock_labels(b, name[PPROF_LOCK], name[PPROF_KIND]);
    if (rc == 0)
        rc = pprof_samples(b);
    if (rc < 0)
        return rc;

    pprof_value_type *types = b->types;
    perftools__profiles__value_type__init(&types[0]);
    perftools__profiles__value_type__init(&types[1]);
    types[0].type = name[PPROF_CONTENTIONS];
    types[0].unit = name[PPROF_COUNT];
    types[1].type = name[PPROF_DELAY];
    types[1].unit = name[PPROF_NANOSECONDS];
    b->period_type = types[0];
    b->type_ptrs[0] = &types[0];
    b->type_ptrs[1] = &types[1];

    perftools__profiles__profile__init(profile);
    profile->n_sample_type = 2;
    profile->sample_type = b->type_ptrs;
    profile->n_sample = b->sample_count;
    profile->sample = b->sample_ptrs;
    profile->n_location = b->location_count;
    profile->location = b->location_ptrs;
    profile->n_function = b->function_count;
    profile->function = b->function_ptrs;
    profile->n_string_table = b->strings.count;
    profile->string_table = b->strings.table;
    profile->period_type = &b->period_type;
    profile->period = 1;
    profile->time_nanos = meta ? meta->time_nanos : 0;
    profile->duration_nanos = meta ? meta->duration_nanos : 0;
    return 0;
}

static void pprof_build_free(struct pprof_build *b)
{
    free(b->strings.table);
    flame_map_free(&b->strings.by_ptr);
    flame_map_free(&b->function_by_name);
    free(b->location_of_frame);
    free(b->locations);
    free(b->location_ptrs);
    free(b->lines);
    free(b->line_ptrs);
    free(b->functions);
    free(b->function_ptrs);
    free(b->samples);
    free(b->sample_ptrs);
    free(b->location_ids);
    free(b->values);
    free(b->labels);
    free(b->label_ptrs);
}

int out_write_pprof_gz(FILE *out, const struct out_sample *samples, size_t n, const struct pprof_meta *meta)
{
    if (!out)
        return -EINVAL;
    struct flame_tree tree;
    int rc = flame_tree_build(&tree, samples, n);
    if (rc < 0)
        return rc;
    struct pprof_build build = {.tree = &tree};
    pprof_profile profile;
    rc = pprof_fill(&build, &profile, meta);
    if (rc == 0)
        rc = pprof_write_gz(out, &profile);
    pprof_build_free(&build);
    flame_tree_free(&tree);
    return rc < 0 ? rc : flame_stream_result(out);
}
