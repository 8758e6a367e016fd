/* The DNC memory step in plain C for mnemonet.kernels.native: dnc_native_body.h once per precision. */
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE */
#include <tgmath.h> /* exp, sqrt, log1p in the precision of their argument */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "native_math.h" /* exp_f32 */

/* Back the whole 2 MiB pages inside [p, p + bytes) with huge pages where the kernel allows it (Linux; elsewhere a
 * no-op): a sequence's stored states span tens of MiB, written once per step and read once in the backward, and
 * with 4 KiB pages nearly every row's first store or load also misses the TLB. Returns madvise's result (0: ok). */
int dnc_advise_huge(void* p, long bytes) {
#ifdef MADV_HUGEPAGE
    const uintptr_t page = (uintptr_t)1 << 21;
    const uintptr_t start = ((uintptr_t)p + page - 1) & ~(page - 1), end = ((uintptr_t)p + (uintptr_t)bytes) & ~(page - 1);
    if (end > start) return madvise((void*)start, end - start, MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
    return -1;
}

#define EPSILON 1e-6 /* models.dnc.addressing.EPSILON (checked by tests/kernels) */

#define REAL float
#define FN(name) name##_f32
#define EXP(x) exp_f32(x)
#define TANH_C(x) FN(tanh_by_sigmoid)(x)
#include "dnc_native_body.h"
#undef REAL
#undef FN
#undef EXP
#undef TANH_C

#define REAL double
#define FN(name) name##_f64
#define EXP(x) exp(x)
#define TANH_C(x) tanh(x)
#include "dnc_native_body.h"
#undef REAL
#undef FN
#undef EXP
#undef TANH_C
