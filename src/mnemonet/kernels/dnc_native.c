/* The DNC memory step in plain C for mnemonet.kernels.native: dnc_native_body.h once per precision. */
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE */
#include <tgmath.h> /* exp, sqrt, log1p in the precision of their argument */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

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

/* e^x in float32 within about 1 ulp, as straight-line code that the compiler vectorizes (libm's expf is a call per
 * element): x = n ln 2 + r with |r| <= ln 2 / 2, e^r by its Taylor polynomial to r^7 (error < 1e-8), times 2^n from
 * the exponent bits. x is clamped to [-87, 88] (2^n stays a normal float): e^x saturates at about 1.6e38 and
 * 1.6e-38 there, which changes no softmax or sigmoid in float32; NaN stays NaN. */
static inline float exp_f32(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float n = rint(x * 1.44269504088896341f);
    float r = fma(-n, 0.693145751953125f, x); /* ln 2 in two parts (Cody and Waite): r is exact */
    r = fma(-n, 1.42860682030941723e-6f, r);
    float p = 1.98412698412698413e-4f;
    p = fma(p, r, 1.38888888888888889e-3f);
    p = fma(p, r, 8.33333333333333333e-3f);
    p = fma(p, r, 4.16666666666666667e-2f);
    p = fma(p, r, 1.66666666666666667e-1f);
    p = fma(p, r, 0.5f);
    p = fma(p, r, 1.0f);
    p = fma(p, r, 1.0f);
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

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
