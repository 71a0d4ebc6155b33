/* A classic flame graph as a standalone SVG: root at the bottom, one row per stack depth, widths
 * proportional to the chosen weight, tooltips in <title> elements so it needs no script to read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flame_tree.h"
#include "output.h"

enum {
    SVG_WIDTH = 1200,
    SVG_PAD = 10,
    SVG_ROW = 16,
    SVG_FONT = 12,
    SVG_HEADER = 64, /* title, subtitle and legend */
    SVG_FOOTER = 28,
};
/* Monospace glyphs are about 0.6 em wide, which lets labels be cut to fit their frame. */
#define SVG_CHAR_WIDTH (SVG_FONT * 0.6)
/* Frames narrower than this share of the plot are left out: invisible anyway, and skipping them
 * keeps the file small however many distinct stacks there are. */
#define SVG_MIN_SHARE 0.001

static void svg_escape(FILE *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: putc(s[i], out);
        }
    }
}

static void svg_escape_str(FILE *out, const char *s)
{
    svg_escape(out, s, strlen(s));
}

/* Caller-supplied text (title, subtitle) has not been through the frame tree's cleaning yet. */
static void svg_escape_clean(FILE *out, const char *s)
{
    char *clean = flame_clean_text(s);
    if (clean)
        svg_escape_str(out, clean);
    free(clean);
}

/* Coordinates with two decimals, written without printf's %f so the locale cannot change them. */
static void svg_coord(FILE *out, double v)
{
    long long hundredths = (long long)(v * 100.0 + 0.5);
    fprintf(out, "%lld.%02lld", hundredths / 100, hundredths % 100);
}

static uint32_t svg_name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Python frames warm, native frames cool, locks violet; the shade comes from the name, so the same
 * function has the same colour in every graph. */
static void svg_fill(const struct flame_frame *f, char *buf, size_t cap)
{
    uint32_t h = svg_name_hash(f->function);
    unsigned a = h & 0xff, b = (h >> 8) & 0xff, c = (h >> 16) & 0xff;
    switch (f->type) {
    case FLAME_FRAME_ROOT: snprintf(buf, cap, "rgb(200,200,205)"); break;
    case FLAME_FRAME_LOCK: snprintf(buf, cap, "rgb(%u,%u,%u)", 150 + a % 40, 110 + b % 30, 215 + c % 30); break;
    case FLAME_FRAME_NATIVE: snprintf(buf, cap, "rgb(%u,%u,%u)", 70 + a % 50, 170 + b % 50, 200 + c % 45); break;
    case FLAME_FRAME_PYTHON: snprintf(buf, cap, "rgb(%u,%u,%u)", 220 + a % 36, 110 + b % 100, 40 + c % 40); break;
    }
}

static void svg_weight_text(const struct flame_node *node, enum flame_weight weight, uint64_t total, char *buf,
                            size_t cap)
{
    char pct[32], wait[32];
    flame_format_percent(flame_node_weight(node, weight), total, pct, sizeof pct);
    flame_format_duration(node->wait_ns, wait, sizeof wait);
    if (weight == FLAME_WEIGHT_COUNT)
        snprintf(buf, cap, "%llu contentions, %s%% \xc2\xb7 %s waited", (unsigned long long)node->count, pct, wait);
    else
        snprintf(buf, cap, "%s, %s%% \xc2\xb7 %llu contentions", wait, pct, (unsigned long long)node->count);
}

/* Writes as much of `label` as fits in `max_chars` characters, ending in ".." when cut. */
static void svg_label(FILE *out, const char *label, size_t max_chars)
{
    size_t chars = 0, i = 0, cut = 0, len = strlen(label);
    while (i < len) {
        if (chars == max_chars - 2)
            cut = i;
        size_t step = 1;
        while (i + step < len && (label[i + step] & 0xc0) == 0x80)
            step++;
        i += step;
        if (++chars > max_chars) {
            svg_escape(out, label, cut);
            fputs("..", out);
            return;
        }
    }
    svg_escape(out, label, len);
}

struct svg_item {
    uint32_t node;
    double x;
};

/* One drawing: the tree, its weight and the geometry both passes share. */
struct svg_draw {
    FILE *out;
    const struct flame_tree *tree;
    const struct flame_options *opt;
    uint64_t total;
    double plot, min_weight;
    uint32_t depth;           /* of the deepest frame drawn */
    uint32_t drawn, skipped;  /* frames drawn, and left out as too narrow */
};

/* First pass: the deepest frame that will be drawn sets the height. */
static void svg_measure(struct svg_draw *d, struct svg_item *stack)
{
    const struct flame_tree *tree = d->tree;
    size_t top = 0;
    if (d->total > 0)
        stack[top++] = (struct svg_item){0, 0};
    while (top > 0) {
        const struct flame_node *node = &tree->nodes[stack[--top].node];
        if (node->depth > d->depth)
            d->depth = node->depth;
        d->drawn++;
        for (uint32_t c = 0; c < node->child_count; c++) {
            uint32_t child = tree->children[node->first_child + c];
            if ((double)flame_node_weight(&tree->nodes[child], d->opt->weight) >= d->min_weight &&
                flame_node_weight(&tree->nodes[child], d->opt->weight) > 0)
                stack[top++] = (struct svg_item){child, 0};
            else
                d->skipped++;
        }
    }
}

/* The document's head: size, title, total and the legend. */
static void svg_head(const struct svg_draw *d, int height)
{
    FILE *out = d->out;
    const struct flame_options *opt = d->opt;
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
            "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"%d\">\n",
            SVG_WIDTH, height, SVG_WIDTH, height, SVG_FONT);
    fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#fbfaf6\"/>\n", SVG_WIDTH, height);
    fprintf(out, "<text x=\"%d\" y=\"24\" font-size=\"17\" font-weight=\"bold\">", SVG_PAD);
    svg_escape_clean(out, opt->title ? opt->title : "ftprof");
    fputs("</text>\n", out);
    char total_text[64];
    if (opt->weight == FLAME_WEIGHT_COUNT)
        snprintf(total_text, sizeof total_text, "%llu contentions", (unsigned long long)d->total);
    else
        flame_format_duration(d->total, total_text, sizeof total_text);
    fprintf(out, "<text x=\"%d\" y=\"44\" fill=\"#555\">", SVG_PAD);
    if (opt->subtitle && *opt->subtitle) {
        svg_escape_clean(out, opt->subtitle);
        fputs(" \xc2\xb7 ", out);
    }
    fprintf(out, "total %s</text>\n", total_text);
    static const struct {
        const char *name, *fill;
    } legend[] = {{"lock", "rgb(165,120,230)"}, {"Python", "rgb(240,160,60)"}, {"native", "rgb(95,195,222)"}};
    for (size_t i = 0; i < sizeof legend / sizeof legend[0]; i++) {
        int x = SVG_WIDTH - SVG_PAD - 270 + (int)i * 90;
        fprintf(out, "<rect x=\"%d\" y=\"34\" width=\"12\" height=\"12\" fill=\"%s\"/>", x, legend[i].fill);
        fprintf(out, "<text x=\"%d\" y=\"44\" fill=\"#555\">%s</text>\n", x + 16, legend[i].name);
    }
}

/* One frame: its box, its tooltip and, where it fits, its label. */
static void svg_frame(const struct svg_draw *d, const struct svg_item *item, double width)
{
    FILE *out = d->out;
    const struct flame_node *node = &d->tree->nodes[item->node];
    const struct flame_frame *frame = &d->tree->frames[node->frame];
    const int y = SVG_HEADER + (int)(d->depth - node->depth) * SVG_ROW;
    char fill[48], weight_text[160];
    svg_fill(frame, fill, sizeof fill);
    svg_weight_text(node, d->opt->weight, d->total, weight_text, sizeof weight_text);

    fputs("<g><title>", out);
    svg_escape_str(out, frame->label);
    if (frame->type == FLAME_FRAME_LOCK)
        fprintf(out, " [%s]", frame->kind);
    fputs(" \xe2\x80\x94 ", out);
    svg_escape_str(out, weight_text);
    if (frame->file && strcmp(frame->file, frame->file_short) != 0) {
        fputs("\n", out);
        svg_escape_str(out, frame->file);
    }
    fputs("</title><rect x=\"", out);
    svg_coord(out, item->x);
    fprintf(out, "\" y=\"%d\" width=\"", y);
    svg_coord(out, width > 0.5 ? width - 0.5 : width);
    fprintf(out, "\" height=\"%d\" rx=\"2\" fill=\"%s\"/>", SVG_ROW - 1, fill);
    size_t max_chars = (size_t)((width - 6) / SVG_CHAR_WIDTH);
    if (max_chars >= 3) {
        fputs("<text x=\"", out);
        svg_coord(out, item->x + 3);
        fprintf(out, "\" y=\"%d\">", y + SVG_ROW - 4);
        svg_label(out, frame->label, max_chars);
        fputs("</text>", out);
    }
    fputs("</g>\n", out);
}

/* Second pass: draw, each child placed after its earlier siblings, in label order. */
static void svg_draw_frames(const struct svg_draw *d, struct svg_item *stack)
{
    const struct flame_tree *tree = d->tree;
    enum flame_weight weight = d->opt->weight;
    size_t top = 0;
    if (d->total > 0)
        stack[top++] = (struct svg_item){0, SVG_PAD};
    while (top > 0) {
        const struct svg_item item = stack[--top];
        const struct flame_node *node = &tree->nodes[item.node];
        svg_frame(d, &item, d->plot * (double)flame_node_weight(node, weight) / (double)d->total);
        /* Children sit side by side from the frame's left edge; they are pushed last to first so
         * they come off the stack left to right. */
        uint64_t children_weight = flame_node_weight(node, weight) - flame_node_self_weight(node, weight);
        double x = item.x + d->plot * (double)children_weight / (double)d->total;
        for (uint32_t c = node->child_count; c-- > 0;) {
            uint32_t child = tree->children[node->first_child + c];
            uint64_t w = flame_node_weight(&tree->nodes[child], weight);
            x -= d->plot * (double)w / (double)d->total;
            if ((double)w >= d->min_weight && w > 0)
                stack[top++] = (struct svg_item){child, x};
        }
    }
}

int out_write_svg(FILE *out, const struct out_sample *samples, size_t n, const struct flame_options *opt)
{
    struct flame_tree tree;
    int rc = flame_writer_begin(out, samples, n, &opt, &tree);
    if (rc < 0)
        return rc;
    struct svg_draw d = {.out = out, .tree = &tree, .opt = opt, .plot = SVG_WIDTH - 2 * SVG_PAD};
    d.total = flame_node_weight(&tree.nodes[0], opt->weight);
    d.min_weight = (double)d.total * SVG_MIN_SHARE;
    struct svg_item *stack = malloc((tree.node_count + 1) * sizeof *stack);
    if (!stack) {
        flame_tree_free(&tree);
        return -ENOMEM;
    }
    svg_measure(&d, stack);
    const int height = SVG_HEADER + (int)(d.depth + 1) * SVG_ROW + SVG_FOOTER;
    svg_head(&d, height);
    svg_draw_frames(&d, stack);
    fprintf(out, "<text x=\"%d\" y=\"%d\" fill=\"#777\">", SVG_PAD, height - 10);
    if (d.total == 0)
        fputs("no samples with this weight", out);
    else
        fprintf(out, "%u frames drawn, %u narrower than 0.1%% left out \xc2\xb7 ftprof", d.drawn, d.skipped);
    fputs("</text>\n</svg>\n", out);

    free(stack);
    flame_tree_free(&tree);
    return flame_stream_result(out);
}
