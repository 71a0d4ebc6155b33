/* dlsym: the recorder's exported definition (LD_PRELOAD) and the target of a late-loaded recorder's
 * patched GOT slots (got.c). ftp_dlsym_before looks at the call (a rescan for objects loaded since the
 * last scan; an extension module's init function being looked up, extension.c), then we jump to the
 * real dlsym with the caller's return address still on the stack, so the loader sees the original
 * caller (RTLD_NEXT and RTLD_DEFAULT keep their meaning). */
    .text
    .globl ftp_dlsym_entry
    .hidden ftp_dlsym_entry
    .globl dlsym
    .type dlsym, @function
    .type ftp_dlsym_entry, @function
dlsym:
ftp_dlsym_entry:
    .cfi_startproc
    push %rdi
    .cfi_adjust_cfa_offset 8
    push %rsi
    .cfi_adjust_cfa_offset 8
    sub $8, %rsp                /* 16-byte alignment at the call */
    .cfi_adjust_cfa_offset 8
    call ftp_dlsym_before
    add $8, %rsp
    .cfi_adjust_cfa_offset -8
    pop %rsi
    .cfi_adjust_cfa_offset -8
    pop %rdi
    .cfi_adjust_cfa_offset -8
    mov ftp_real_dlsym(%rip), %rax
    test %rax, %rax
    jz 1f                       /* no libc dlsym found (cannot happen with glibc): fail the look-up */
    jmp *%rax
1:  xor %eax, %eax
    ret
    .cfi_endproc
    .size ftp_dlsym_entry, .-ftp_dlsym_entry
    .size dlsym, .-dlsym
    .section .note.GNU-stack,"",@progbits
