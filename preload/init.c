/* Start-up, configuration, fork and exit: everything that runs outside the hooks' hot paths. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "event.h"
#include "extension.h"
#include "file.h"
#include "got.h"
#include "intern.h"
#include "native.h"
#include "python.h"
#include "session.h"
#include "thread.h"
#include "thread_end.h"
#include "ftprof/size.h"

/* Settings are read twice: quietly at start, and once more with warnings when it is known that this
 * process records. A shell or compiler that inherited the variables from a profiled program prints
 * nothing: whatever is wrong with them is not its business. */
static bool settings_warn;

/* "NAME=VALUE", the value cut short and with control characters shown as '?', for warnings. */
static void setting_text(char *out, size_t cap, const char *name, const char *value)
{
    size_t n = 0, len = strlen(name);
    if (len > cap - 8)
        len = cap - 8;
    memcpy(out, name, len);
    n = len;
    out[n++] = '=';
    for (const char *v = value; *v && n + 4 < cap; v++)
        out[n++] = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
    if (value[0] && n + 4 >= cap)
        memcpy(out + cap - 4, "...", 3), n = cap - 1;
    out[n] = 0;
}

static void warn_setting(const char *name, const char *value, const char *what)
{
    if (!settings_warn)
        return;
    char text[200];
    setting_text(text, sizeof text, name, value);
    ftp_warn(text, what, NULL);
}

static bool env_flag(const char *name, bool dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    if (!strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on"))
        return true;
    if (!strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off"))
        return false;
    warn_setting(name, v, " is not 0 or 1; using the default");
    return dflt;
}

/* FTPROF_BUFFER: bytes with an optional K/M/G/T suffix (powers of two), FTP_BUFFER_LIMITS_TEXT. */
static size_t env_buffer_size(void)
{
    const char *v = getenv("FTPROF_BUFFER");
    uint64_t bytes = FTP_BUFFER_DEFAULT;
    if (!v || !*v)
        return (size_t)bytes;
    switch (ftp_parse_size(v, &bytes)) {
    case FTP_SIZE_OK: break;
    case FTP_SIZE_NOT_A_SIZE:
        warn_setting("FTPROF_BUFFER", v, " is not a size (a number with K, M, G or T, like 64M); using 64M");
        bytes = FTP_BUFFER_DEFAULT;
        break;
    case FTP_SIZE_TOO_SMALL: warn_setting("FTPROF_BUFFER", v, " is below the minimum of 16K; using 16K"); break;
    case FTP_SIZE_TOO_LARGE: warn_setting("FTPROF_BUFFER", v, " is above the maximum of 1T; using 1T"); break;
    }
    return (size_t)bytes;
}

/* A misspelt setting (FTPROF_BUFER=1M) should not silently do nothing. Names that ftprof's own CLI,
 * tools and test harness read are not the recorder's, but they are not mistakes either. */
static void warn_unknown_variables(void)
{
    static const char *known[] = {
        "FTPROF_OUTPUT", "FTPROF_BUFFER", "FTPROF_NATIVE", "FTPROF_VERBOSE", "FTPROF_DISABLE", "FTPROF_ALL",
        "FTPROF_START", "FTPROF_MIN_WAIT", "FTPROF_MODE",
        /* read by the CLI and the tools */
        "FTPROF_LIBRARY", "FTPROF_PYTHON", "FTPROF_GIL_PYTHON", "FTPROF_MULTIARCH",
        /* read by the test harness (tools/run-tests, tests/) */
        "FTPROF_LIB", "FTPROF_CLI", "FTPROF_PY", "FTPROF_GIL_PY", "FTPROF_PYTHONS", "FTPROF_VERSION", "FTPROF_SKIP_SUITES", "FTPROF_SKIP_SLOW",
        "FTPROF_RESULTS", "FTPROF_KEEP", "FTPROF_FIXTURE_DIR"};
    extern char **environ;
    if (!settings_warn)
        return;
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "FTPROF_", 7) || !strncmp(*e, "FTPROF_TEST_", 12))
            continue;
        size_t len = strcspn(*e, "=");
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++)
            if (strlen(known[i]) == len && !strncmp(*e, known[i], len))
                ok = true;
        if (!ok) {
            char name[64];
            if (len >= sizeof name)
                len = sizeof name - 1;
            memcpy(name, *e, len);
            name[len] = 0;
            char text[200];
            setting_text(text, sizeof text, name, (*e)[strcspn(*e, "=")] ? *e + strcspn(*e, "=") + 1 : "");
            ftp_warn("unknown variable ", text, " ignored");
        }
    }
}


static void after_fork_in_child(void)
{
    /* Drop the parent's mapping, forget every id the parent's file defined, and start our own file. */
    ftp_session_leave_parent();
    ftp_busy_reset_after_fork();
    ftp_session_forget();
    ftp_state.pid = (uint32_t)getpid();
    if (ftp_state.py.present || ftp_state.record_all)
        ftp_session_open(true, NULL);
}

/* FTPROF_OUTPUT, FTPROF_BUFFER, FTPROF_NATIVE, FTPROF_VERBOSE (and unknown FTPROF_* names). */
static void read_settings(void)
{
    static const char dflt[] = "ftprof-%p.ftp";
    warn_unknown_variables();
    ftp_state.native = env_flag("FTPROF_NATIVE", false);
    ftp_state.verbose = env_flag("FTPROF_VERBOSE", false);
    ftp_state.test_slow_types = env_flag("FTPROF_TEST_SLOW_TYPES", false);
    ftp_ticks_decide(!env_flag("FTPROF_TEST_CLOCK_ONLY", false));
    ftp_set_buffer_bytes(env_buffer_size());
    ftp_control_settings(settings_warn); /* FTPROF_START, FTPROF_MIN_WAIT, FTPROF_MODE */
    const char *out = getenv("FTPROF_OUTPUT");
    if (!out || !*out)
        out = dflt;
    char pattern[sizeof ftp_state.output_pattern];
    size_t len = strlen(out);
    struct stat st;
    /* A directory (DIR/, or the name of an existing one) holds the recordings: DIR/ftprof-%p.ftp,
     * never a hidden DIR/.<pid> or a name beside it. */
    bool dir = len > 0 && (out[len - 1] == '/' || (!strchr(out, '%') && stat(out, &st) == 0 && S_ISDIR(st.st_mode)));
    if (len + sizeof dflt + 1 >= sizeof pattern) {
        warn_setting("FTPROF_OUTPUT", out, " is too long; using ftprof-%p.ftp");
        strcpy(pattern, dflt);
    } else if (dir) {
        snprintf(pattern, sizeof pattern, "%s%s%s", out, out[len - 1] == '/' ? "" : "/", dflt);
    } else {
        strcpy(pattern, out);
    }
    /* A relative name is kept relative to the directory we started in, not wherever we chdir later; a
     * leading "./" (ftprof run's default) goes, so that the name said in messages has no "/./". */
    char cwd[PATH_MAX];
    const char *rel = pattern;
    while (rel[0] == '.' && rel[1] == '/')
        for (rel += 2; *rel == '/'; rel++)
            ;
    if (pattern[0] != '/' && getcwd(cwd, sizeof cwd) &&
        strlen(cwd) + 1 + strlen(rel) < sizeof ftp_state.output_pattern)
    {
        strcpy(ftp_state.output_pattern, cwd);
        if (strcmp(cwd, "/"))
            strcat(ftp_state.output_pattern, "/");
        strcat(ftp_state.output_pattern, rel);
    } else
        snprintf(ftp_state.output_pattern, sizeof ftp_state.output_pattern, "%s", pattern);
}

/* An interpreter already running: _PyRuntime's debug cookie, and its interpreters_head (word 5 of
 * _Py_DebugOffsets in every version, runtime_state.interpreters_head) set. */
static bool loaded_into_running_python(void)
{
    const uint64_t *dbg = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (!dbg || memcmp(dbg, "xdebugpy", 8) != 0 || dbg[5] == 0 || dbg[5] > (1u << 20))
        return false;
    return *(volatile const uintptr_t *)((const char *)dbg + dbg[5]) != 0;
}

/* Is this library named in LD_PRELOAD (by path or by file name)? Not, when a program without Python
 * dlopen()s it (the attach unit tests). */
static bool named_in_ld_preload(void)
{
    Dl_info self;
    const char *pre = getenv("LD_PRELOAD");
    if (!pre || !dladdr((void *)named_in_ld_preload, &self) || !self.dli_fname)
        return false;
    const char *base = strrchr(self.dli_fname, '/');
    base = base ? base + 1 : self.dli_fname;
    size_t blen = strlen(base);
    for (const char *p = pre; *p;) {
        size_t len = strcspn(p, ": ");
        const char *name = p;
        for (const char *q = p; q < p + len; q++)
            if (*q == '/')
                name = q + 1;
        if ((size_t)(p + len - name) == blen && !strncmp(name, base, blen))
            return true;
        p += len;
        p += strspn(p, ": ");
    }
    return false;
}

/* glibc passes (argc, argv, envp) to ELF constructors; that is our only chance to see argv without
 * reading /proc. */
__attribute__((constructor)) static void ftp_init(int argc, char **argv, char **envp)
{
    (void)envp;
    struct ftp_thread *t = &ftp_tls;
    t->guard++;
#if defined(__x86_64__)
    /* Before anything records: until then what it looks at (a PyInit_ look-up) has nothing to say. */
    ftp_got_watch_dlsym(ftp_extension_before_dlsym);
#endif
    ftp_resolve_real();
    if (!ftp_real.real_sem_wait || !ftp_real.real_pthread_mutex_lock || !ftp_real.real_sem_post) {
        t->guard--;
        return; /* hooks pass through (they resolve lazily) */
    }
    /* Preloaded, this constructor runs before main, so before the interpreter exists; dlopen()ed into
     * a running process (ftprof attach) it runs with the interpreter up. Then nothing starts here and
     * no FTPROF_* variable of the host's is read: ftprof_attach (attach.c) sets the recording up from
     * its arguments. (Which sem_post the global scope finds says nothing: a sanitizer's runtime
     * preloaded ahead of us intercepts it too.) A process without Python that dlopen()s us is late
     * too: LD_PRELOAD does not name us. */
    if (loaded_into_running_python() || !named_in_ld_preload()) {
        /* fd 2 is not remembered: whatever it is now, nothing says it is the program's start-up stream,
         * so an attached recorder's warnings go into the recording only. */
        ftp_loaded_late = true;
        ftp_save_argv(argc, argv);
        t->guard--;
        return;
    }
    if (env_flag("FTPROF_DISABLE", false)) {
        t->guard--;
        return;
    }
    ftp_warn_remember_stderr(); /* before main: this is the stream the program was started with */
    read_settings();
    ftp_save_argv(argc, argv);
    ftp_state.pid = (uint32_t)getpid();
    if (ftp_tables_init() != 0) {
        t->guard--;
        return;
    }
    ftp_thread_setup_key(ftp_thread_end_at_exit);
    pthread_atfork(NULL, NULL, after_fork_in_child);
    ftp_python_detect();
    /* Only Python processes record by default, so a preloaded sh or gcc runs untouched;
     * FTPROF_ALL=1 records native programs' pthread waits too. */
    ftp_state.record_all = env_flag("FTPROF_ALL", false);
    ftp_native_init();
    if (ftp_state.py.present || ftp_state.record_all) {
        settings_warn = true;
        (void)env_flag("FTPROF_DISABLE", false);
        read_settings();
        ftp_state.record_all = env_flag("FTPROF_ALL", false);
        ftp_session_open(false, NULL);
    } else {
        ftp_file_close_predecessor();
    }
    t->guard--;
}

__attribute__((destructor)) static void ftp_fini(void)
{
    ftp_tls.guard++;
    /* A GIL re-enabled by the last imports, with no wait since to notice it: told before the file closes. */
    if (ftp_state.hdr && atomic_load(&ftp_state.recording) && ftp_python_ready())
        ftp_event_check_gil(ftp_thread_enter());
    ftp_thread_end_process(); /* this thread's end and the process's CPU time, before the file closes */
    ftp_session_finish();
    ftp_tls.guard--;
}
