/* Interactive HTML flame graph: the page is self-contained and safe against names holding markup,
 * and headless Chromium proves its script ran: frames are rendered as DOM nodes with their labels,
 * a search given in the URL reports the matched share, and a screenshot shows a drawn graph. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "output_test.h"

static const char *CHROMIUM_FLAGS =
    "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update "
    "--disable-sync --no-first-run --disable-extensions --mute-audio";

static const char *chromium_binary(void)
{
    static const char *const names[] = {"chromium", "chromium-browser", "google-chrome"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (ot_have_program(names[i]))
            return names[i];
    return NULL;
}

static char *chromium_dump(const char *chromium, const char *path, const char *fragment)
{
    static int profiles;
    char command[2048];
    int status;
    snprintf(command, sizeof command,
             "timeout 90 %s %s --user-data-dir='%s/chromium-%d' --virtual-time-budget=3000 --dump-dom "
             "'file://%s%s' 2>/dev/null",
             chromium, CHROMIUM_FLAGS, ot_tmpdir(), profiles++, path, fragment);
    char *dom = ot_run(command, &status);
    if (!dom || status != 0) {
        fprintf(stderr, "chromium --dump-dom failed (status %d)\n", status);
        free(dom);
        return NULL;
    }
    return dom;
}

static void test_static_page(const char *html)
{
    /* Three script elements (two JSON blocks and the code): a name with "</script>" adds none. */
    OT_CHECK(ot_count(html, "</script>") == 3);
    OT_CHECK(ot_count(html, "<script") == 3);
    OT_CHECK(strstr(html, "<b>x") == NULL);
    OT_CHECK(strstr(html, "render\\u003c/script\\u003e\\u003cb\\u003ex") != NULL);
    /* Nothing is fetched: no URLs to load from, and the policy forbids it anyway. */
    OT_CHECK(strstr(html, "http://") == NULL && strstr(html, "https://") == NULL);
    OT_CHECK(strstr(html, " src=") == NULL && strstr(html, " href=") == NULL);
    OT_CHECK(strstr(html, "default-src 'none'") != NULL);
    OT_CHECK(strstr(html, "<title>ftprof: waits in &lt;app&gt;.py</title>") != NULL);
    OT_CHECK(strstr(html, "@FTPROF_") == NULL);
}

static void test_rendered(const char *chromium, const char *path)
{
    char *dom = chromium_dump(chromium, path, "#search=Cache%5C.get");
    OT_CHECK(dom != NULL);
    if (!dom)
        return;
    const char *rendered = strstr(dom, "data-ftprof-rendered=\"");
    OT_CHECK(rendered && atoi(rendered + strlen("data-ftprof-rendered=\"")) >= 10);
    /* The script turned the embedded data into labelled frames. */
    OT_CHECK(strstr(dom, ">Cache.get (cache.py:42)</div>") != NULL);
    OT_CHECK(strstr(dom, ">Worker.run (worker.py:17)</div>") != NULL);
    OT_CHECK(strstr(dom, ">Registry.lookup (registry.py:8)</div>") != NULL);
    OT_CHECK(strstr(dom, ">pthread_mutex_lock (libc.so.6)</div>") != NULL);
    OT_CHECK(strstr(dom, ">lock Cache._lock @0x1000</div>") != NULL);
    OT_CHECK(strstr(dom, ">critical_section dict @0x2000</div>") != NULL);
    OT_CHECK(strstr(dom, "class=\"frame k-native") != NULL);
    OT_CHECK(strstr(dom, "class=\"frame k-lock") != NULL);
    /* Markup in a name is shown as text, not parsed. */
    OT_CHECK(strstr(dom, ">render&lt;/script&gt;&lt;b&gt;x&lt;/b&gt; (t&lt;e&gt;mp.py:7)</div>") != NULL);
    OT_CHECK(strstr(dom, "<b>x") == NULL);
    OT_CHECK(strstr(dom, ">enc\xef\xbf\xbd\xef\xbf\xbd(ode  (x.py:2)</div>") != NULL);
    /* The search from the URL matched Cache.get only: 600 of 1010 ms. */
    OT_CHECK(strstr(dom, "data-ftprof-matched=\"59.4%\"") != NULL);
    OT_CHECK(strstr(dom, "Matched: 59.4% (600 ms) in 1 frame<") != NULL);
    OT_CHECK(ot_count(dom, " match\"") == 1);
    OT_CHECK(strstr(dom, "total 1.01 s") != NULL);
    free(dom);
}

/* The opening tag of the frame element labelled `label`, copied into buf; NULL if not rendered. */
static const char *frame_tag(const char *dom, const char *label, char *buf, size_t cap)
{
    char needle[256];
    snprintf(needle, sizeof needle, ">%s</div>", label);
    const char *end = strstr(dom, needle);
    if (!end)
        return NULL;
    const char *start = end;
    while (start > dom && strncmp(start, "<div", 4) != 0)
        start--;
    size_t len = (size_t)(end - start) < cap - 1 ? (size_t)(end - start) : cap - 1;
    memcpy(buf, start, len);
    buf[len] = '\0';
    return buf;
}

/* "#zoom=label" opens the page zoomed: the frame fills the width, its ancestors are dimmed and
 * frames outside its subtree are not drawn. */
static void test_zoom(const char *chromium, const char *path)
{
    char *dom = chromium_dump(chromium, path, "#zoom=Worker.run%20(worker.py%3A17)");
    OT_CHECK(dom != NULL);
    if (!dom)
        return;
    char tag[1024];
    OT_CHECK(frame_tag(dom, "Worker.run (worker.py:17)", tag, sizeof tag) && strstr(tag, "width: 100%"));
    OT_CHECK(frame_tag(dom, "Cache.get (cache.py:42)", tag, sizeof tag) && strstr(tag, "width: 100%"));
    OT_CHECK(frame_tag(dom, "lock Cache._lock @0x1000", tag, sizeof tag) && strstr(tag, " dim"));
    OT_CHECK(frame_tag(dom, "all", tag, sizeof tag) && strstr(tag, " dim"));
    OT_CHECK(frame_tag(dom, "Cache.put (cache.py:55)", tag, sizeof tag) == NULL);
    OT_CHECK(frame_tag(dom, "critical_section dict @0x2000", tag, sizeof tag) == NULL);
    OT_CHECK(strstr(dom, "zoomed on Worker.run (worker.py:17)") != NULL);
    /* The zoomed frame's details: where it is, its wait, contentions and shares. */
    OT_CHECK(strstr(dom, "Worker.run (worker.py:17)\n/srv/app/worker.py:17\nwait 600 ms \xc2\xb7 30 contentions "
                         "\xc2\xb7 59.4% of total, 100.0% of zoomed</div>") != NULL);
    free(dom);
}

static void test_count_weight(const char *chromium)
{
    const struct out_sample *samples;
    size_t n = ot_fixture(&samples, 10 * OT_MS);
    struct flame_options opt = {FLAME_WEIGHT_COUNT, "by count", "weight: contentions"};
    char *path = ot_write_flame("count.html", out_write_html, samples, n, &opt);
    OT_CHECK(path != NULL);
    if (!path || !chromium)
        goto out;
    /* Registry holds 40 of the 81 contentions; "worker" matches Worker.run in every stack but the
     * odd one (80 of 81), each counted once. */
    char *dom = chromium_dump(chromium, path, "#search=registry");
    OT_CHECK(dom && strstr(dom, "data-ftprof-matched=\"49.4%\""));
    OT_CHECK(dom && strstr(dom, "(40 contentions)"));
    free(dom);
    dom = chromium_dump(chromium, path, "#search=worker");
    OT_CHECK(dom && strstr(dom, "data-ftprof-matched=\"98.8%\""));
    free(dom);
out:
    free(path);
}

static void test_screenshot(const char *chromium, const char *path)
{
    char command[2048], *png_path;
    if (asprintf(&png_path, "%s/page.png", ot_tmpdir()) < 0)
        return;
    int status;
    snprintf(command, sizeof command,
             "cd '%s' && timeout 90 %s %s --user-data-dir='%s/chromium-shot' --window-size=1280,900 "
             "--virtual-time-budget=3000 --hide-scrollbars --screenshot='%s' 'file://%s' >/dev/null 2>&1",
             ot_tmpdir(), chromium, CHROMIUM_FLAGS, ot_tmpdir(), png_path, path);
    free(ot_run(command, &status));
    size_t len = 0;
    char *png = ot_read_file(png_path, &len);
    OT_CHECK(png != NULL);
    /* A blank page compresses to a few kB; coloured, labelled frames make it much larger. */
    OT_CHECK(png && len > 15000 && memcmp(png, "\x89PNG", 4) == 0);
    if (png)
        fprintf(stderr, "screenshot: %zu bytes\n", len);
    free(png);
    free(png_path);
}

static void test_empty_page(const char *chromium)
{
    char *path = ot_write_flame("empty.html", out_write_html, NULL, 0, NULL);
    OT_CHECK(path != NULL);
    if (path && chromium) {
        char *dom = chromium_dump(chromium, path, "");
        OT_CHECK(dom && strstr(dom, "data-ftprof-rendered=\"0\"") && strstr(dom, "No samples with this weight."));
        free(dom);
    }
    free(path);
}

int main(void)
{
    const struct out_sample *samples;
    size_t n = ot_fixture(&samples, 10 * OT_MS);
    struct flame_options opt = {FLAME_WEIGHT_WAIT, "ftprof: waits in <app>.py", "weight: wait time \xc2\xb7 waiters"};
    char *path = ot_write_flame("fixture.html", out_write_html, samples, n, &opt);
    char *html = path ? ot_read_file(path, NULL) : NULL;
    OT_CHECK(html != NULL);
    if (html)
        test_static_page(html);
    const char *chromium = chromium_binary();
    if (chromium && path) {
        test_rendered(chromium, path);
        test_screenshot(chromium, path);
        test_zoom(chromium, path);
    }
    test_count_weight(chromium);
    test_empty_page(chromium);
    free(html);
    free(path);
    ot_cleanup();
    if (ot_failures) {
        fprintf(stderr, "%d check(s) failed\n", ot_failures);
        return 1;
    }
    if (!chromium) {
        fprintf(stderr, "chromium not found: page not rendered\n");
        return OT_SKIP;
    }
    return 0;
}
