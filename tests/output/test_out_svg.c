/* SVG flame graph: tooltips with time and share, root at the bottom, colours by frame kind, escaped
 * text, labels cut to their frame, deterministic output, and tiny frames left out of huge inputs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flame_tree.h"
#include "output_test.h"

/* The <g> element whose tooltip starts with `title`, or NULL. */
static const char *svg_group(const char *svg, const char *title)
{
    char needle[512];
    snprintf(needle, sizeof needle, "<g><title>%s", title);
    return strstr(svg, needle);
}

/* A numeric attribute of the first <rect> inside the group of `title`; -1 when missing. */
static double svg_rect_attr(const char *svg, const char *title, const char *attr)
{
    const char *g = svg_group(svg, title);
    const char *rect = g ? strstr(g, "<rect ") : NULL;
    char needle[64];
    snprintf(needle, sizeof needle, " %s=\"", attr);
    const char *a = rect ? strstr(rect, needle) : NULL;
    return a ? strtod(a + strlen(needle), NULL) : -1;
}

static int svg_fill_red(const char *svg, const char *title)
{
    const char *g = svg_group(svg, title);
    const char *fill = g ? strstr(g, "fill=\"rgb(") : NULL;
    return fill ? atoi(fill + strlen("fill=\"rgb(")) : -1;
}

static void test_fixture(void)
{
    const struct out_sample *samples;
    size_t n = ot_fixture(&samples, 10 * OT_MS); /* 1.01 s in all */
    struct flame_options opt = {FLAME_WEIGHT_WAIT, "ftprof: lock waits in <app>.py", "weight: wait time\x01\xff"};
    char *path = ot_write_flame("fixture.svg", out_write_svg, samples, n, &opt);
    char *again = ot_write_flame("fixture-again.svg", out_write_svg, samples, n, &opt);
    char *svg = path ? ot_read_file(path, NULL) : NULL, *svg2 = again ? ot_read_file(again, NULL) : NULL;
    OT_CHECK(svg && svg2);
    if (!svg || !svg2)
        return;
    OT_CHECK(strcmp(svg, svg2) == 0);
    OT_CHECK(strncmp(svg, "<?xml", 5) == 0);
    OT_CHECK(strstr(svg, "</svg>\n") != NULL);
    OT_CHECK(strstr(svg, "<script") == NULL);
    OT_CHECK(strstr(svg, ">ftprof: lock waits in &lt;app&gt;.py</text>") != NULL);
    OT_CHECK(strstr(svg, "weight: wait time \xef\xbf\xbd \xc2\xb7 total 1.01 s</text>") != NULL);

    /* Tooltips: label, time, share of the total. */
    OT_CHECK(svg_group(svg, "Cache.get (cache.py:42) \xe2\x80\x94 600 ms, 59.4%") != NULL);
    OT_CHECK(svg_group(svg, "Cache.put (cache.py:55) \xe2\x80\x94 200 ms, 19.8%") != NULL);
    OT_CHECK(svg_group(svg, "lock Cache._lock @0x1000 [lock] \xe2\x80\x94 800 ms, 79.2%") != NULL);
    OT_CHECK(svg_group(svg, "pthread_mutex_lock (libc.so.6) \xe2\x80\x94 200 ms, 19.8%") != NULL);
    OT_CHECK(svg_group(svg, "all \xe2\x80\x94 1.01 s, 100.0%") != NULL);
    /* Frames with markup in their names stay text. */
    OT_CHECK(svg_group(svg, "render&lt;/script&gt;&lt;b&gt;x&lt;/b&gt; (t&lt;e&gt;mp.py:7)") != NULL);
    OT_CHECK(svg_group(svg, "lock &lt;odd&gt;&amp;&quot;x&quot; [lock]") != NULL);
    OT_CHECK(strstr(svg, "<b>") == NULL);

    /* Root at the bottom: each level sits one row above its parent. */
    double y_all = svg_rect_attr(svg, "all ", "y"), y_lock = svg_rect_attr(svg, "lock Cache._lock", "y");
    double y_thread = svg_rect_attr(svg, "Thread.run (threading.py:990)", "y");
    double y_get = svg_rect_attr(svg, "Cache.get", "y");
    OT_CHECK(y_all > y_lock && y_lock > y_thread && y_thread > y_get && y_get > 0);
    OT_CHECK(y_all - y_lock == y_lock - y_thread);
    /* Widths follow the weight: Cache.get is 600/1010 of the 1180 px plot. */
    double w_get = svg_rect_attr(svg, "Cache.get", "width"), w_all = svg_rect_attr(svg, "all ", "width");
    OT_CHECK(w_all > 1170 && w_all <= 1180);
    OT_CHECK(w_get > 0.594 * 1180 - 1.5 && w_get < 0.594 * 1180 + 1.5);
    /* Children start at their parent's left edge. */
    OT_CHECK(svg_rect_attr(svg, "Worker.run (worker.py:17)", "x") == svg_rect_attr(svg, "Cache.get", "x") ||
             svg_rect_attr(svg, "Worker.run (worker.py:17)", "x") < svg_rect_attr(svg, "Cache.put", "x"));

    /* Colours by kind: Python warm (red high), native cool (red low), locks violet (blue high). */
    OT_CHECK(svg_fill_red(svg, "Cache.get") >= 220);
    OT_CHECK(svg_fill_red(svg, "Registry.lookup") >= 220);
    OT_CHECK(svg_fill_red(svg, "pthread_mutex_lock") >= 0 && svg_fill_red(svg, "pthread_mutex_lock") < 130);
    int lock_red = svg_fill_red(svg, "lock Cache._lock");
    OT_CHECK(lock_red >= 150 && lock_red < 200);

    /* Well-formed XML, checked by a real parser when one is at hand. */
    if (ot_have_program("python3")) {
        char command[1024];
        int status;
        snprintf(command, sizeof command,
                 "python3 -c 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
                 "print(len(r.findall(\".//{http://www.w3.org/2000/svg}rect\")))' '%s'", path);
        char *out = ot_run(command, &status);
        OT_CHECK(out && status == 0 && atoi(out) > 10);
        free(out);
    }
    free(svg);
    free(svg2);
    free(path);
    free(again);
}

static void test_count_weight(void)
{
    const struct out_sample *samples;
    size_t n = ot_fixture(&samples, 0); /* 80 contentions in all */
    struct flame_options opt = {FLAME_WEIGHT_COUNT, "by count", NULL};
    char *path = ot_write_flame("count.svg", out_write_svg, samples, n, &opt);
    char *svg = path ? ot_read_file(path, NULL) : NULL;
    OT_CHECK(svg != NULL);
    if (!svg)
        return;
    OT_CHECK(svg_group(svg, "Cache.get (cache.py:42) \xe2\x80\x94 30 contentions, 37.5%") != NULL);
    OT_CHECK(svg_group(svg, "pthread_mutex_lock (libc.so.6) \xe2\x80\x94 40 contentions, 50.0%") != NULL);
    OT_CHECK(strstr(svg, "total 80 contentions</text>") != NULL);
    double w = svg_rect_attr(svg, "pthread_mutex_lock", "width");
    OT_CHECK(w > 0.5 * 1180 - 1.5 && w < 0.5 * 1180 + 1.5);
    free(svg);
    free(path);
}

static void test_labels_cut_to_width(void)
{
    char long_name[400];
    memset(long_name, 'x', sizeof long_name - 1);
    memcpy(long_name, "Very.long_", 10);
    long_name[sizeof long_name - 1] = '\0';
    const struct out_frame wide[] = {{long_name, "/a/w.py", 1, false}};
    const struct out_frame narrow[] = {{"other", "/a/o.py", 2, false}};
    const struct out_sample samples[] = {{wide, 1, "L", "lock", 10, 1}, {narrow, 1, "L", "lock", 90, 9}};
    char *path = ot_write_flame("cut.svg", out_write_svg, samples, 2, NULL);
    char *svg = path ? ot_read_file(path, NULL) : NULL;
    OT_CHECK(svg != NULL);
    if (!svg)
        return;
    const char *g = svg_group(svg, "Very.long_");
    const char *text = g ? strstr(g, "<text") : NULL;
    const char *end = text ? strstr(text, "</text>") : NULL;
    OT_CHECK(text && end);
    if (text && end) {
        /* 10% of 1180 px holds about 15 monospace characters at 12 px. */
        const char *body = strchr(text, '>') + 1;
        OT_CHECK(end - body < 25 && end - body > 5);
        OT_CHECK(strncmp(end - 2, "..", 2) == 0);
    }
    OT_CHECK(ot_count(svg, long_name) == 1); /* the full name stays in the tooltip */
    free(svg);
    free(path);
}

/* 20 000 distinct stacks far below 0.1% each: left out, so the file stays small. */
static void test_huge_input_stays_small(void)
{
    enum { N = 20000 };
    static struct out_frame frames[N][2];
    static struct out_sample samples[N + 1];
    static char names[N][24];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "tiny_%d", i);
        frames[i][0] = (struct out_frame){names[i], "/a/t.py", i + 1, false};
        frames[i][1] = (struct out_frame){"main", "/a/m.py", 1, false};
        samples[i] = (struct out_sample){frames[i], 2, "L", "lock", 1, 1};
    }
    static const struct out_frame big[] = {{"big", "/a/b.py", 3, false}, {"main", "/a/m.py", 1, false}};
    samples[N] = (struct out_sample){big, 2, "L", "lock", 1000000, 1};
    size_t len = 0;
    char *path = ot_write_flame("huge.svg", out_write_svg, samples, N + 1, NULL);
    char *svg = path ? ot_read_file(path, &len) : NULL;
    OT_CHECK(svg != NULL);
    if (!svg)
        return;
    OT_CHECK(ot_count(svg, "<g>") == 4); /* all, L, main, big: none of the tiny ones */
    OT_CHECK(strstr(svg, "tiny_") == NULL);
    OT_CHECK(strstr(svg, "20000 narrower than 0.1% left out") != NULL);
    OT_CHECK(len < 20000);
    free(svg);
    free(path);
}

static void test_empty_and_errors(void)
{
    char *path = ot_write_flame("empty.svg", out_write_svg, NULL, 0, NULL);
    char *svg = path ? ot_read_file(path, NULL) : NULL;
    OT_CHECK(svg && strstr(svg, "no samples") && strstr(svg, "</svg>"));
    free(svg);
    free(path);
    const struct out_sample missing = {NULL, 1, "L", "lock", 1, 1};
    FILE *f = ot_create("bad.svg", &path);
    OT_CHECK(f && out_write_svg(f, &missing, 1, NULL) == -EINVAL);
    if (f)
        fclose(f);
    free(path);
}

static void test_durations(void)
{
    static const struct {
        uint64_t ns;
        const char *text;
    } cases[] = {
        {0, "0 ns"}, {850, "850 ns"}, {1500, "1.50 \xc2\xb5s"}, {12345678, "12.3 ms"},
        {600000000, "600 ms"}, {1010000000, "1.01 s"}, {23450000001ull, "23.5 s"}, {4000000000000ull, "4000 s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        flame_format_duration(cases[i].ns, buf, sizeof buf);
        if (strcmp(buf, cases[i].text) != 0)
            fprintf(stderr, "duration %llu: got \"%s\", want \"%s\"\n", (unsigned long long)cases[i].ns, buf,
                    cases[i].text);
        OT_CHECK(strcmp(buf, cases[i].text) == 0);
    }
}

int main(void)
{
    test_durations();
    test_fixture();
    test_count_weight();
    test_labels_cut_to_width();
    test_huge_input_stays_small();
    test_empty_and_errors();
    ot_cleanup();
    if (ot_failures)
        fprintf(stderr, "%d check(s) failed\n", ot_failures);
    return ot_failures ? 1 : 0;
}
