/* Reading the interpreter (python.c) through its layout (layout.c): what a parked address is, frames,
 * thread names. */
#ifndef FTPROF_PYTHON_H
#define FTPROF_PYTHON_H

#include "state.h"

FTP_HIDDEN void ftp_python_detect(void);  /* at start and after dlopen: find _PyRuntime */
/* FTP_REGION_RUNTIME or _INTERP (with the offset inside it) for an address in the interpreter's own
 * state, else FTP_REGION_HEAP: what lets the analyzer name the field (interp->_gil.cond). */
FTP_HIDDEN uint8_t ftp_python_region(uintptr_t addr, uint32_t *offset);
FTP_HIDDEN bool ftp_python_ready(void);    /* cheap once ready; finishes set-up when the interpreter exists */
FTP_HIDDEN uintptr_t ftp_python_tstate(void);
/* Python facts into the file header: version, build, whether the GIL is on now. */
FTP_HIDDEN void ftp_python_describe(struct ftp_file_header *h);
/* One Python frame as it sits in memory: its code object (with the word that tells it from a later code
 * at the same address) and where it is in its bytecode (FTP_PY_FRAME_ENTRY as in ftp_py_frame). Two
 * frames with equal words are the same function at the same place. */
struct ftp_py_raw_frame {
    uintptr_t code;
    uintptr_t check;
    uint32_t instr_offset;
    uint32_t reserved;
};
/* Walk the calling thread's own frames into frames[], innermost first; returns the count. Nothing is
 * written to the recording: frames as they are, for a stack seen before to be known by them alone. */
FTP_HIDDEN int ftp_python_raw_frames(struct ftp_py_raw_frame *frames, int max);
/* The same frames as the file has them: each code object interned (its CODE record written once). */
FTP_HIDDEN void ftp_python_frames_named(struct ftp_thread *t, const struct ftp_py_raw_frame *raw,
                                        struct ftp_py_frame *frames, int n);
/* A thread without a threading name yet: announce it again at its next record, when that can tell
 * more (a Python frame now, or its Thread object found at its bootstrap wait). Counted only then, so
 * bootstrap waits before the first frame do not use the tries up. */
FTP_HIDDEN bool ftp_python_has_frame(void);
static inline void ftp_thread_name_again(struct ftp_thread *t)
{
    if (FTP_LIKELY(t->py_named) || !t->announced || t->name_tries >= 16)
        return;
    if (t->boot_thread || ftp_python_has_frame()) {
        t->name_tries++;
        t->announced = false;
    }
}
/* Is the innermost Python frame threading.py's RLock factory? (RLock semaphores are born there.) */
FTP_HIDDEN bool ftp_python_in_rlock_factory(void);
/* The `self` of the outermost Thread._bootstrap_inner frame of the calling thread, or 0. */
FTP_HIDDEN uintptr_t ftp_python_thread_object(void);
/* What lock `addr` is. A heap PyMutex is told by the object around it, the window [addr -
 * FTP_CLASSIFY_BEFORE, addr - FTP_CLASSIFY_BEFORE + FTP_CLASSIFY_WINDOW): `window` when the caller read
 * it already, else read in place when `live` (the interpreter itself reads `addr` now: a park's or a
 * known spin's lock), else through ftp_safe_read. */
#define FTP_CLASSIFY_BEFORE 32
#define FTP_CLASSIFY_WINDOW 54
FTP_HIDDEN void ftp_python_classify(struct ftp_thread *t, uintptr_t addr, bool mutex_park, bool live,
                                    const uint8_t *window, struct ftp_lock_class *out);
FTP_HIDDEN bool ftp_python_is_gil(uintptr_t addr);
static inline bool ftp_in_python_text(uintptr_t pc)
{
    return pc >= ftp_state.py.text_start && pc < ftp_state.py.text_end;
}
static inline bool ftp_in_seqlock_text(uintptr_t pc)
{
    for (int i = 0; i < 3; i++)
        if (pc >= ftp_state.py.seqlock_text[i][0] && pc < ftp_state.py.seqlock_text[i][1])
            return true;
    return false;
}
/* The type a seqlock spin's lookup is about, from the spinner's registers (see python.c); 0: unknown. */
FTP_HIDDEN uint32_t ftp_python_seqlock_type(struct ftp_thread *t, const uintptr_t *regs, int nregs);

#endif
