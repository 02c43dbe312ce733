/*
 * anjian bench: make a process see an older x86 CPU than it runs on.
 *
 * Preloaded (LD_PRELOAD) with ANJIAN_CPU_LEVEL set to "avx2" or "avx2_vnni", its constructor turns
 * on the kernel's CPUID faulting for the process (arch_prctl ARCH_SET_CPUID; threads and forks
 * inherit it, an exec resets it and the preload arms it again) and answers each CPUID from the
 * real one with the newer vector extensions cleared: AVX-512 (every subset), AMX, AVX512-BF16,
 * AVX-IFMA, AVX-NE-CONVERT, AVX-VNNI-INT8, AVX10, and AVX-VNNI unless the level keeps it.
 * Every library that chooses its kernels from CPUID (ONNX Runtime, oneDNN and OpenVINO, numpy,
 * OpenCV, FFmpeg) then runs the code it would run on such a CPU. Without ANJIAN_CPU_LEVEL, or
 * with another value, it does nothing.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

static int armed;
static int keeps_avx_vnni;
static struct sigaction earlier;

static long allow_cpuid(int allowed) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, allowed); }

static void clear_newer_features(uint32_t leaf, uint32_t sub, uint32_t *eax, uint32_t *ebx,
                                 uint32_t *ecx, uint32_t *edx) {
    if (leaf == 7 && sub == 0) {
        /* AVX512 F, DQ, IFMA, PF, ER, CD, BW, VL */
        *ebx &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
        /* AVX512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ */
        *ecx &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
        /* AVX512 4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, AVX512-FP16, AMX-TILE, AMX-INT8 */
        *edx &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
    } else if (leaf == 7 && sub == 1) {
        /* AVX512-BF16, AMX-FP16, AVX-IFMA; AVX-VNNI (bit 4) unless kept */
        *eax &= ~(BIT(5) | BIT(21) | BIT(23) | (keeps_avx_vnni ? 0 : BIT(4)));
        /* AVX-VNNI-INT8, AVX-NE-CONVERT, AMX-COMPLEX, AVX10 */
        *edx &= ~(BIT(4) | BIT(5) | BIT(8) | BIT(19));
    } else if (leaf == 0x1D || leaf == 0x1E || leaf == 0x24) {
        *eax = *ebx = *ecx = *edx = 0; /* AMX tile and TMUL information, AVX10 */
    }
}

static void on_segv(int signal_number, siginfo_t *info, void *context) {
    greg_t *registers = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *instruction = (const unsigned char *)registers[REG_RIP];
    if (info->si_code != SI_KERNEL || instruction[0] != 0x0F || instruction[1] != 0xA2) {
        /* a real fault: hand it to whoever had SIGSEGV before (by default the fault kills) */
        sigaction(SIGSEGV, &earlier, NULL);
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
    (void)signal_number;
}

__attribute__((constructor)) static void arm(void) {
    const char *level = getenv("ANJIAN_CPU_LEVEL");
    if (level == NULL || (strcmp(level, "avx2") != 0 && strcmp(level, "avx2_vnni") != 0)) {
        return;
    }
    keeps_avx_vnni = strcmp(level, "avx2_vnni") == 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, &earlier) != 0) {
        return;
    }
    if (allow_cpuid(0) != 0) { /* no CPUID faulting here: leave the process as it was */
        sigaction(SIGSEGV, &earlier, NULL);
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
