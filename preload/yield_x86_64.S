/* sched_yield's entry on x86-64: save the caller's callee-saved registers before any C code can
 * reuse them, and hand them to the C hook. Inside 3.13's _PyMutex_LockTimed the PyMutex being
 * spun on lives in one of them across the _Py_yield() call, so a spin that ends without parking can
 * still be tied to its lock (see ftp_sched_yield in hooks.c). */
    .text
    .globl sched_yield
    .type sched_yield, @function
sched_yield:
    .cfi_startproc
    push %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    push %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbx, 0
    push %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r12, 0
    push %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r13, 0
    push %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r14, 0
    push %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r15, 0
    sub $8, %rsp                /* keep the stack 16-byte aligned at the call */
    .cfi_adjust_cfa_offset 8
    lea 8(%rsp), %rdi           /* uintptr_t regs[6]: r15 r14 r13 r12 rbx rbp */
    mov 56(%rsp), %rsi          /* our return address: the caller's pc */
    call ftp_sched_yield
    add $8, %rsp
    .cfi_adjust_cfa_offset -8
    pop %r15
    .cfi_adjust_cfa_offset -8
    pop %r14
    .cfi_adjust_cfa_offset -8
    pop %r13
    .cfi_adjust_cfa_offset -8
    pop %r12
    .cfi_adjust_cfa_offset -8
    pop %rbx
    .cfi_adjust_cfa_offset -8
    pop %rbp
    .cfi_adjust_cfa_offset -8
    ret
    .cfi_endproc
    .size sched_yield, .-sched_yield
    .section .note.GNU-stack,"",@progbits
