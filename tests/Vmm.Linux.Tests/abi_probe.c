/* Prints the kernel ABI facts the C# bindings must match, one "name=value" per line.
 * Compiled and run by KernelAbiTests against this machine's linux/kvm.h and linux/userfaultfd.h. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <signal.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <linux/memfd.h>
#include <linux/falloc.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <linux/futex.h>

#define SIZE(t) printf("sizeof:%s=%zu\n", #t, sizeof(struct t))
#define OFF(t, f) printf("offsetof:%s.%s=%zu\n", #t, #f, offsetof(struct t, f))
#define VAL(n) printf("value:%s=%llu\n", #n, (unsigned long long)(n))

int main(void)
{
    SIZE(kvm_run); OFF(kvm_run, immediate_exit); OFF(kvm_run, exit_reason); OFF(kvm_run, if_flag);
    OFF(kvm_run, cr8); OFF(kvm_run, apic_base); OFF(kvm_run, io); OFF(kvm_run, mmio); OFF(kvm_run, kvm_valid_regs);
    OFF(kvm_run, kvm_dirty_regs); OFF(kvm_run, s);
    OFF(kvm_run, io.port); OFF(kvm_run, io.count); OFF(kvm_run, io.data_offset); OFF(kvm_run, io.size);
    OFF(kvm_run, mmio.data); OFF(kvm_run, mmio.len); OFF(kvm_run, mmio.is_write);
    OFF(kvm_run, internal.ndata); OFF(kvm_run, internal.data); OFF(kvm_run, debug.arch.pc); OFF(kvm_run, debug.arch.dr7);
    OFF(kvm_run, fail_entry.cpu);
    SIZE(kvm_regs); OFF(kvm_regs, rip); OFF(kvm_regs, rflags); OFF(kvm_regs, r8);
    SIZE(kvm_segment); OFF(kvm_segment, selector); OFF(kvm_segment, type); OFF(kvm_segment, unusable);
    SIZE(kvm_dtable); SIZE(kvm_sregs); OFF(kvm_sregs, gdt); OFF(kvm_sregs, cr0); OFF(kvm_sregs, efer); OFF(kvm_sregs, interrupt_bitmap);
    SIZE(kvm_userspace_memory_region); OFF(kvm_userspace_memory_region, guest_phys_addr); OFF(kvm_userspace_memory_region, userspace_addr);
    SIZE(kvm_dirty_log); OFF(kvm_dirty_log, dirty_bitmap);
    SIZE(kvm_clear_dirty_log); OFF(kvm_clear_dirty_log, first_page); OFF(kvm_clear_dirty_log, dirty_bitmap);
    SIZE(kvm_guest_debug); OFF(kvm_guest_debug, arch);
    SIZE(kvm_fpu); OFF(kvm_fpu, last_ip); OFF(kvm_fpu, xmm); OFF(kvm_fpu, mxcsr);
    SIZE(kvm_msrs); SIZE(kvm_msr_entry); OFF(kvm_msr_entry, data);
    SIZE(kvm_xcrs); SIZE(kvm_xcr); OFF(kvm_xcrs, xcrs);
    SIZE(kvm_vcpu_events); OFF(kvm_vcpu_events, nmi); OFF(kvm_vcpu_events, sipi_vector); OFF(kvm_vcpu_events, flags);
    SIZE(kvm_mp_state); SIZE(kvm_signal_mask); SIZE(kvm_cpuid2); SIZE(kvm_cpuid_entry2); SIZE(kvm_enable_cap);
    SIZE(uffdio_api); SIZE(uffdio_range); SIZE(uffdio_register); OFF(uffdio_register, mode);
    SIZE(uffdio_copy); OFF(uffdio_copy, copy); SIZE(uffdio_zeropage); OFF(uffdio_zeropage, zeropage);
    SIZE(uffdio_writeprotect); SIZE(uffdio_continue); OFF(uffdio_continue, mapped);
    SIZE(uffd_msg); OFF(uffd_msg, arg.pagefault.address); OFF(uffd_msg, arg.pagefault.flags); OFF(uffd_msg, arg.pagefault.feat.ptid);
    OFF(uffd_msg, arg.remove.start); OFF(uffd_msg, arg.remove.end);
    SIZE(stat); OFF(stat, st_mode); OFF(stat, st_size); OFF(stat, st_blksize); OFF(stat, st_blocks);
    SIZE(statfs); OFF(statfs, f_type); OFF(statfs, f_bsize);
    SIZE(msghdr); OFF(msghdr, msg_iov); OFF(msghdr, msg_iovlen); OFF(msghdr, msg_control); OFF(msghdr, msg_controllen);
    OFF(msghdr, msg_flags); SIZE(cmsghdr); OFF(cmsghdr, cmsg_level); OFF(cmsghdr, cmsg_type); SIZE(iovec); SIZE(timespec);

    VAL(KVM_GET_API_VERSION); VAL(KVM_CREATE_VM); VAL(KVM_CHECK_EXTENSION); VAL(KVM_GET_VCPU_MMAP_SIZE);
    VAL(KVM_GET_SUPPORTED_CPUID); VAL(KVM_CREATE_VCPU); VAL(KVM_GET_DIRTY_LOG); VAL(KVM_SET_USER_MEMORY_REGION);
    VAL(KVM_SET_TSS_ADDR); VAL(KVM_SET_IDENTITY_MAP_ADDR); VAL(KVM_ENABLE_CAP); VAL(KVM_CLEAR_DIRTY_LOG);
    VAL(KVM_RUN); VAL(KVM_GET_REGS); VAL(KVM_SET_REGS); VAL(KVM_GET_SREGS); VAL(KVM_SET_SREGS);
    VAL(KVM_GET_MSRS); VAL(KVM_SET_MSRS); VAL(KVM_SET_SIGNAL_MASK); VAL(KVM_GET_FPU); VAL(KVM_SET_FPU);
    VAL(KVM_SET_CPUID2); VAL(KVM_GET_MP_STATE); VAL(KVM_SET_MP_STATE); VAL(KVM_SET_GUEST_DEBUG); VAL(KVM_INTERRUPT);
    VAL(KVM_GET_VCPU_EVENTS); VAL(KVM_SET_VCPU_EVENTS); VAL(KVM_GET_XCRS); VAL(KVM_SET_XCRS); VAL(KVM_GET_TSC_KHZ);
    VAL(KVM_EXIT_IO); VAL(KVM_EXIT_HLT); VAL(KVM_EXIT_MMIO); VAL(KVM_EXIT_SHUTDOWN); VAL(KVM_EXIT_FAIL_ENTRY);
    VAL(KVM_EXIT_INTR); VAL(KVM_EXIT_INTERNAL_ERROR); VAL(KVM_EXIT_DEBUG); VAL(KVM_EXIT_SYSTEM_EVENT);
    VAL(KVM_CAP_USER_MEMORY); VAL(KVM_CAP_SET_TSS_ADDR); VAL(KVM_CAP_NR_MEMSLOTS); VAL(KVM_CAP_SET_GUEST_DEBUG);
    VAL(KVM_CAP_IMMEDIATE_EXIT); VAL(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2); VAL(KVM_CAP_XCRS); VAL(KVM_CAP_VCPU_EVENTS);
    VAL(KVM_CAP_MP_STATE); VAL(KVM_CAP_EXT_CPUID); VAL(KVM_CAP_DIRTY_LOG_RING);
    VAL(KVM_CAP_READONLY_MEM); VAL(KVM_MEM_READONLY);
    VAL(KVM_MEM_LOG_DIRTY_PAGES); VAL(KVM_GUESTDBG_ENABLE); VAL(KVM_GUESTDBG_SINGLESTEP);
    VAL(UFFDIO_API); VAL(UFFDIO_REGISTER); VAL(UFFDIO_UNREGISTER); VAL(UFFDIO_WAKE); VAL(UFFDIO_COPY);
    VAL(UFFDIO_ZEROPAGE); VAL(UFFDIO_WRITEPROTECT); VAL(UFFDIO_CONTINUE); VAL(USERFAULTFD_IOC_NEW);
    VAL(UFFD_API); VAL(UFFD_EVENT_PAGEFAULT); VAL(UFFD_EVENT_REMOVE); VAL(UFFD_EVENT_UNMAP);
    VAL(UFFDIO_REGISTER_MODE_MISSING); VAL(UFFDIO_REGISTER_MODE_WP); VAL(UFFDIO_REGISTER_MODE_MINOR);
    VAL(UFFD_FEATURE_MISSING_HUGETLBFS); VAL(UFFD_FEATURE_MISSING_SHMEM); VAL(UFFD_FEATURE_MINOR_SHMEM);
    VAL(UFFD_FEATURE_MINOR_HUGETLBFS); VAL(UFFD_FEATURE_EVENT_REMOVE); VAL(UFFD_FEATURE_THREAD_ID);
    VAL(UFFD_FEATURE_EXACT_ADDRESS); VAL(UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    VAL(UFFD_PAGEFAULT_FLAG_WRITE); VAL(UFFD_PAGEFAULT_FLAG_MINOR); VAL(UFFDIO_COPY_MODE_DONTWAKE);
    VAL(MAP_SHARED); VAL(MAP_PRIVATE); VAL(MAP_FIXED); VAL(MAP_ANONYMOUS); VAL(MAP_NORESERVE); VAL(MAP_HUGETLB);
    VAL(MAP_FIXED_NOREPLACE); VAL(MADV_DONTNEED); VAL(MADV_REMOVE); VAL(FALLOC_FL_PUNCH_HOLE); VAL(FALLOC_FL_KEEP_SIZE);
    VAL(MFD_HUGETLB); VAL(MFD_HUGE_2MB); VAL(MFD_CLOEXEC); VAL(O_CLOEXEC); VAL(O_NONBLOCK); VAL(O_RDWR); VAL(O_CREAT);
    VAL(SYS_userfaultfd); VAL(SYS_tgkill); VAL(SYS_gettid); VAL(SYS_rt_sigprocmask); VAL(SYS_rt_sigtimedwait);
    VAL(SIGUSR2);
    VAL(SOL_SOCKET); VAL(SCM_RIGHTS); VAL(MSG_CTRUNC); VAL(MSG_CMSG_CLOEXEC); VAL(CMSG_SPACE(sizeof(int))); VAL(CMSG_LEN(sizeof(int)));
    VAL(SYS_futex); VAL(FUTEX_WAIT); VAL(FUTEX_WAKE);
    VAL(MFD_ALLOW_SEALING); VAL(F_ADD_SEALS); VAL(F_GET_SEALS); VAL(F_SEAL_SEAL); VAL(F_SEAL_SHRINK); VAL(F_SEAL_GROW);
    VAL(HUGETLBFS_MAGIC);
    return 0;
}
