/* The interactive flame graph: one self-contained HTML page. The page, its style and script are
 * embedded at build time; this writer fills in the title and two JSON blocks (frame table and the
 * pre-order node table) and never lets their text end the script element it sits in. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "flame_tree.h"
#include "output.h"

/* Generated from flamegraph.html.in, flamegraph.css and flamegraph.js. */
extern const char flame_page_html[], flame_page_css[], flame_page_js[];
extern const unsigned long flame_page_html_len, flame_page_css_len, flame_page_js_len;

/* Nodes lighter than this share of the total are dropped with their subtrees: at full width they
 * are far below a pixel, and leaving them out bounds the page for inputs with countless stacks. */
#define HTML_MIN_SHARE 1e-6

static void html_escape(FILE *out, const char *text)
{
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: putc(*p, out);
        }
    }
}

static void html_escape_clean(FILE *out, const char *text)
{
    char *clean = flame_clean_text(text);
    if (clean)
        html_escape(out, clean);
    free(clean);
}

/* JSON inside <script>: '<', '>' and '&' only occur inside JSON strings, where their \u escapes
 * mean the same, so "</script>" or "<!--" in a function name cannot close or confuse the element. */
static int html_json_sink(const char *buffer, size_t size, void *data)
{
    FILE *out = data;
    for (size_t i = 0; i < size; i++) {
        switch (buffer[i]) {
        case '<': fputs("\\u003c", out); break;
        case '>': fputs("\\u003e", out); break;
        case '&': fputs("\\u0026", out); break;
        default: putc(buffer[i], out);
        }
    }
    return ferror(out) ? -1 : 0;
}

static json_t *html_string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *html_meta(const struct flame_tree *tree, const struct flame_options *opt)
{
    char *title = flame_clean_text(opt->title ? opt->title : "ftprof");
    char *subtitle = flame_clean_text(opt->subtitle ? opt->subtitle : "");
    json_t *frames = json_array();
    json_t *meta = json_object();
    int bad = !title || !subtitle || !frames || !meta;
    for (uint32_t i = 0; !bad && i < tree->frame_count; i++) {
        const struct flame_frame *f = &tree->frames[i];
        json_t *row = json_pack("[s s o o i i o]", f->label, f->function, html_string_or_null(f->file),
                                html_string_or_null(f->file_short), f->line, (int)f->type,
                                html_string_or_null(f->kind));
        bad = !row || json_array_append_new(frames, row) < 0;
    }
    if (!bad) {
        bad = json_object_set_new(meta, "title", json_string(title)) < 0 ||
              json_object_set_new(meta, "subtitle", json_string(subtitle)) < 0 ||
              json_object_set_new(meta, "weight", json_string(opt->weight == FLAME_WEIGHT_COUNT ? "count" : "wait")) < 0 ||
              json_object_set_new(meta, "frames", frames) < 0;
        frames = NULL;
    }
    free(title);
    free(subtitle);
    json_decref(frames);
    if (bad) {
        json_decref(meta);
        return NULL;
    }
    return meta;
}

/* [parent, frame, wait_ns, count] per node in pre-order; parents refer to positions in this list. */
static int html_nodes(FILE *out, const struct flame_tree *tree, enum flame_weight weight)
{
    uint32_t *position = malloc(tree->node_count * sizeof *position);
    uint32_t *stack = malloc((tree->node_count + 1) * sizeof *stack);
    if (!position || !stack) {
        free(position);
        free(stack);
        return -ENOMEM;
    }
    const uint64_t total = flame_node_weight(&tree->nodes[0], weight);
    uint32_t written = 0;
    size_t top = 0;
    stack[top++] = 0;
    putc('[', out);
    while (top > 0) {
        uint32_t id = stack[--top];
        const struct flame_node *node = &tree->nodes[id];
        uint64_t w = flame_node_weight(node, weight);
        if (id != 0 && (w == 0 || (long double)w < (long double)total * HTML_MIN_SHARE))
            continue;
        position[id] = written;
        fprintf(out, "%s%lld,%u,%llu,%llu", written ? "," : "",
                id == 0 ? -1LL : (long long)position[node->parent], node->frame,
                (unsigned long long)node->wait_ns, (unsigned long long)node->count);
        written++;
        for (uint32_t c = node->child_count; c-- > 0;)
            stack[top++] = tree->children[node->first_child + c];
    }
    putc(']', out);
    free(position);
    free(stack);
    return 0;
}

int out_write_html(FILE *out, const struct out_sample *samples, size_t n, const struct flame_options *opt)
{
    struct flame_tree tree;
    int rc = flame_writer_begin(out, samples, n, &opt, &tree);
    if (rc < 0)
        return rc;
    json_t *meta = html_meta(&tree, opt);
    if (!meta) {
        flame_tree_free(&tree);
        return -ENOMEM;
    }
    const char *p = flame_page_html, *end = flame_page_html + flame_page_html_len;
    while (rc == 0 && p < end) {
        const char *marker = strstr(p, "@FTPROF_");
        if (!marker) {
            fwrite(p, 1, (size_t)(end - p), out);
            break;
        }
        fwrite(p, 1, (size_t)(marker - p), out);
        const char *name = marker + strlen("@FTPROF_");
        const char *close = strchr(name, '@');
        if (!close) {
            rc = -EINVAL; /* the embedded page is malformed: a build defect, not bad input */
            break;
        }
        size_t len = (size_t)(close - name);
        if (len == 5 && memcmp(name, "TITLE", 5) == 0)
            html_escape_clean(out, opt->title ? opt->title : "ftprof");
        else if (len == 8 && memcmp(name, "SUBTITLE", 8) == 0)
            html_escape_clean(out, opt->subtitle ? opt->subtitle : "");
        else if (len == 3 && memcmp(name, "CSS", 3) == 0)
            fwrite(flame_page_css, 1, flame_page_css_len, out);
        else if (len == 2 && memcmp(name, "JS", 2) == 0)
            fwrite(flame_page_js, 1, flame_page_js_len, out);
        else if (len == 4 && memcmp(name, "META", 4) == 0)
            rc = json_dump_callback(meta, html_json_sink, out, JSON_COMPACT) == 0 ? 0 : -EIO;
        else if (len == 5 && memcmp(name, "NODES", 5) == 0)
            rc = html_nodes(out, &tree, opt->weight);
        else
            rc = -EINVAL;
        p = close + 1;
    }
    json_decref(meta);
    flame_tree_free(&tree);
    int stream = flame_stream_result(out);
    return rc < 0 ? rc : stream;
}
