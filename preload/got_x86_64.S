/* dlsym's slot in a late-loaded recorder's patched GOTs (got.c): rescan for objects loaded since the
 * last scan, then jump to the real dlsym with the caller's return address still on the stack, so the
 * loader sees the original caller (RTLD_NEXT and RTLD_DEFAULT keep their meaning). */
    .text
    .globl ftp_dlsym_entry
    .hidden ftp_dlsym_entry
    .type ftp_dlsym_entry, @function
ftp_dlsym_entry:
    .cfi_startproc
    push %rdi
    .cfi_adjust_cfa_offset 8
    push %rsi
    .cfi_adjust_cfa_offset 8
    sub $8, %rsp                /* 16-byte alignment at the call */
    .cfi_adjust_cfa_offset 8
    call ftp_got_rescan
    add $8, %rsp
    .cfi_adjust_cfa_offset -8
    pop %rsi
    .cfi_adjust_cfa_offset -8
    pop %rdi
    .cfi_adjust_cfa_offset -8
    jmp *ftp_real_dlsym(%rip)
    .cfi_endproc
    .size ftp_dlsym_entry, .-ftp_dlsym_entry
    .section .note.GNU-stack,"",@progbits
