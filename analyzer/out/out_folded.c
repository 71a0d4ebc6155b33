/* Collapsed stacks ("folded"), the common input of flamegraph.pl, inferno and speedscope. Writing
 * from the frame tree merges identical stacks and gives a stable, sorted line order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flame_tree.h"
#include "output.h"

struct folded_line {
    char *text;
    size_t len, capacity;
    size_t *depth_end; /* text length up to and including each depth */
};

static int folded_append_frame(struct folded_line *line, const char *label, bool separator)
{
    size_t need = line->len + strlen(label) + 2;
    if (need > line->capacity) {
        size_t capacity = line->capacity ? line->capacity : 1024;
        while (capacity < need)
            capacity *= 2;
        char *text = realloc(line->text, capacity);
        if (!text)
            return -ENOMEM;
        line->text = text;
        line->capacity = capacity;
    }
    if (separator)
        line->text[line->len++] = ';';
    /* ';' separates frames and the last space separates the count, so names must not carry ';';
     * control characters were already replaced when the tree interned the text. */
    for (const char *p = label; *p; p++)
        line->text[line->len++] = *p == ';' ? ':' : *p;
    return 0;
}

int out_write_folded(FILE *out, const struct out_sample *samples, size_t n, const struct flame_options *opt)
{
    struct flame_tree tree;
    int rc = flame_writer_begin(out, samples, n, &opt, &tree);
    if (rc < 0)
        return rc;
    struct folded_line line = {0};
    line.depth_end = calloc(tree.max_depth + 2, sizeof *line.depth_end);
    uint32_t *stack = malloc((tree.node_count + 1) * sizeof *stack);
    if (!line.depth_end || !stack)
        rc = -ENOMEM;
    size_t top = 0;
    /* Depth-first over the lock subtrees; children are pushed in reverse to be visited in order. */
    for (uint32_t c = tree.nodes[0].child_count; rc == 0 && c-- > 0;)
        stack[top++] = tree.children[tree.nodes[0].first_child + c];
    while (rc == 0 && top > 0) {
        const struct flame_node *node = &tree.nodes[stack[--top]];
        line.len = node->depth > 1 ? line.depth_end[node->depth - 1] : 0;
        rc = folded_append_frame(&line, tree.frames[node->frame].label, node->depth > 1);
        if (rc < 0)
            break;
        line.depth_end[node->depth] = line.len;
        uint64_t weight = flame_node_self_weight(node, opt->weight);
        if (weight > 0) {
            fwrite(line.text, 1, line.len, out);
            fprintf(out, " %llu\n", (unsigned long long)weight);
        }
        for (uint32_t c = node->child_count; c-- > 0;)
            stack[top++] = tree.children[node->first_child + c];
    }
    free(stack);
    free(line.text);
    free(line.depth_end);
    flame_tree_free(&tree);
    return rc < 0 ? rc : flame_stream_result(out);
}
