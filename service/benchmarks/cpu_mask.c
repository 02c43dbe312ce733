/*
 * anjian bench: make a process see an older x86 CPU than it runs on.
 *
 * Preloaded (LD_PRELOAD) with ANJIAN_CPU_LEVEL set to "avx2" or "avx2_vnni", its constructor turns
 * on the kernel's CPUID faulting for the process (arch_prctl ARCH_SET_CPUID; threads and forks
 * inherit it, an exec resets it and the preload arms it again) and answers each CPUID from the
 * real one with the newer vector extensions cleared: AVX-512 (every subset), AMX, AVX512-BF16,
 * AVX-IFMA, AVX-NE-CONVERT, AVX-VNNI-INT8/INT16, AVX10, APX; for "avx2" also AVX-VNNI, GFNI, VAES
 * and VPCLMULQDQ (absent from Haswell to Comet Lake), which "avx2_vnni" (Alder Lake on) keeps.
 * Libraries that choose their kernels from CPUID after start-up (ONNX Runtime, oneDNN and OpenVINO,
 * numpy, OpenCV, FFmpeg) then run the code they would run on such a CPU; glibc's own string
 * functions, chosen by the dynamic loader before any constructor, are held back by GLIBC_TUNABLES
 * (set beside the preload by cpu_mask.py). Without ANJIAN_CPU_LEVEL, or with another value, it
 * does nothing.
 *
 * CPUID faulting arrives as SIGSEGV. The process keeps its own SIGSEGV handlers: sigaction() and
 * signal() for SIGSEGV are recorded here, not installed, and any SIGSEGV that is not a faulting
 * CPUID goes to the handler the process set (or kills it, by default). A thread may not block
 * SIGSEGV (the kernel would kill the process at its next CPUID): blocking masks drop it.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

typedef int (*sigaction_function)(int, const struct sigaction *, struct sigaction *);
typedef int (*mask_function)(int, const sigset_t *, sigset_t *);
typedef sighandler_t (*signal_function)(int, sighandler_t);

static int armed;
static int is_avx2_only;
static struct sigaction earlier; /* the process's own SIGSEGV action */

static long allow_cpuid(int allowed) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, allowed); }

static int real_sigaction(int number, const struct sigaction *action, struct sigaction *old) {
    static sigaction_function next;
    if (next == NULL) {
        next = (sigaction_function)dlsym(RTLD_NEXT, "sigaction");
    }
    return next(number, action, old);
}

static void clear_newer_features(uint32_t leaf, uint32_t sub, uint32_t *eax, uint32_t *ebx,
                                 uint32_t *ecx, uint32_t *edx) {
    if (leaf == 7 && sub == 0) {
        /* AVX512 F, DQ, IFMA, PF, ER, CD, BW, VL */
        *ebx &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
        /* AVX512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ; for avx2 also GFNI, VAES, VPCLMULQDQ */
        *ecx &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14) |
                  (is_avx2_only ? (BIT(8) | BIT(9) | BIT(10)) : 0));
        /* AVX512 4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, AVX512-FP16, AMX-TILE, AMX-INT8 */
        *edx &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
    } else if (leaf == 7 && sub == 1) {
        /* AVX512-BF16, AMX-FP16, AVX-IFMA; for avx2 also AVX-VNNI (bit 4) */
        *eax &= ~(BIT(5) | BIT(21) | BIT(23) | (is_avx2_only ? BIT(4) : 0));
        /* AVX-VNNI-INT8, AVX-NE-CONVERT, AMX-COMPLEX, AVX-VNNI-INT16, AVX10, APX */
        *edx &= ~(BIT(4) | BIT(5) | BIT(8) | BIT(10) | BIT(19) | BIT(21));
    } else if (leaf == 0x1D || leaf == 0x1E || leaf == 0x24) {
        *eax = *ebx = *ecx = *edx = 0; /* AMX tile and TMUL information, AVX10 */
    }
}

/* A SIGSEGV that is not a faulting CPUID: what the process asked for. */
static void pass_on(int number, siginfo_t *info, void *context) {
    struct sigaction next = earlier;
    if (next.sa_flags & SA_SIGINFO) {
        if (next.sa_sigaction != NULL && (void *)next.sa_sigaction != (void *)SIG_IGN) {
            next.sa_sigaction(number, info, context);
            return;
        }
    } else if (next.sa_handler != SIG_DFL && next.sa_handler != SIG_IGN) {
        next.sa_handler(number);
        return;
    }
    int is_sent = info->si_code <= 0; /* kill(), raise(): it does not come again by itself */
    if (next.sa_handler == SIG_IGN && is_sent) {
        return;
    }
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &fallback, NULL);
    if (is_sent) {
        raise(SIGSEGV);
    } /* a fault runs its instruction again and now kills */
}

static void on_segv(int number, siginfo_t *info, void *context) {
    greg_t *registers = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *instruction = (const unsigned char *)registers[REG_RIP];
    if (info->si_code != SI_KERNEL || instruction[0] != 0x0F || instruction[1] != 0xA2) {
        pass_on(number, info, context);
        return;
    }
    uint32_t eax, ebx, ecx, edx;
    uint32_t leaf = (uint32_t)registers[REG_RAX], sub = (uint32_t)registers[REG_RCX];
    allow_cpuid(1);
    __cpuid_count(leaf, sub, eax, ebx, ecx, edx);
    allow_cpuid(0);
    clear_newer_features(leaf, sub, &eax, &ebx, &ecx, &edx);
    registers[REG_RAX] = eax;
    registers[REG_RBX] = ebx;
    registers[REG_RCX] = ecx;
    registers[REG_RDX] = edx;
    registers[REG_RIP] += 2; /* past the CPUID instruction */
}

/* The process's own SIGSEGV handler is recorded and called from on_segv, which stays installed. */
int sigaction(int number, const struct sigaction *action, struct sigaction *old) {
    if (!armed || number != SIGSEGV) {
        return real_sigaction(number, action, old);
    }
    if (old != NULL) {
        *old = earlier;
    }
    if (action != NULL) {
        earlier = *action;
    }
    return 0;
}

sighandler_t signal(int number, sighandler_t handler) {
    static signal_function next;
    if (next == NULL) {
        next = (signal_function)dlsym(RTLD_NEXT, "signal");
    }
    if (!armed || number != SIGSEGV) {
        return next(number, handler);
    }
    sighandler_t previous = (earlier.sa_flags & SA_SIGINFO)
                                ? (sighandler_t)(void (*)(void))earlier.sa_sigaction
                                : earlier.sa_handler;
    memset(&earlier, 0, sizeof earlier);
    earlier.sa_handler = handler;
    earlier.sa_flags = SA_RESTART;
    return previous;
}

static int without_segv(mask_function next, int how, const sigset_t *set, sigset_t *old) {
    if (armed && set != NULL && how != SIG_UNBLOCK && sigismember(set, SIGSEGV) == 1) {
        sigset_t kept = *set;
        sigdelset(&kept, SIGSEGV);
        return next(how, &kept, old);
    }
    return next(how, set, old);
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
    static mask_function next;
    if (next == NULL) {
        next = (mask_function)dlsym(RTLD_NEXT, "pthread_sigmask");
    }
    return without_segv(next, how, set, old);
}

int sigprocmask(int how, const sigset_t *set, sigset_t *old) {
    static mask_function next;
    if (next == NULL) {
        next = (mask_function)dlsym(RTLD_NEXT, "sigprocmask");
    }
    return without_segv(next, how, set, old);
}

__attribute__((constructor)) static void arm(void) {
    const char *level = getenv("ANJIAN_CPU_LEVEL");
    if (level == NULL || (strcmp(level, "avx2") != 0 && strcmp(level, "avx2_vnni") != 0)) {
        return;
    }
    is_avx2_only = strcmp(level, "avx2") == 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (real_sigaction(SIGSEGV, &action, &earlier) != 0) {
        return;
    }
    if (allow_cpuid(0) != 0) { /* no CPUID faulting here: leave the process as it was */
        real_sigaction(SIGSEGV, &earlier, NULL);
        return;
    }
    armed = 1;
}

/* 1 when this process's CPUID answers are masked. */
int anjian_cpu_mask_armed(void) { return armed; }

/* One register (0 eax, 1 ebx, 2 ecx, 3 edx) of CPUID(leaf, sub) as this process sees it. */
unsigned anjian_cpuid(unsigned leaf, unsigned sub, unsigned reg) {
    unsigned r[4];
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    return reg < 4 ? r[reg] : 0;
}
