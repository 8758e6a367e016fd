/* The RIMs step's non-matmul parts in plain C for mnemonet.kernels.native: rims_native_body.h once per precision. */
#include <tgmath.h> /* exp, tanh in the precision of their argument */
#include <stdint.h>
#include <string.h>

/* Dropout noise, a counter-based draw (see kernels/rims_sequence.py: dropout_noise): element i keeps its unit
 * when the top 24 bits of mix(mix(i ^ key0) + key1) are at least `threshold` (= round(p 2^24)). mix is the
 * 32-bit integer hash "lowbias32" (xor-shift, multiply, xor-shift, multiply, xor-shift). */
static inline uint32_t rims_mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* exp in float32 that the compiler can vectorize (libm's expf is one scalar call per element, and a step's
 * sigmoids and tanhs then cost more than its matmuls): x = k ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so
 * k ln2 is exact to float precision), exp(r) by its degree-7 Taylor polynomial (relative error below 2e-8 on
 * that interval, under float rounding), times 2^k built in the exponent bits. Inputs are clamped to
 * [-87, 88], inside float's normal range; tests/kernels compare it with torch.exp. */
static inline float rims_expf(float x) {
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    const float k = floorf(x * 1.44269504088896341f + 0.5f);
    const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)k + 127) << 23;
    float two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return p * two_k;
}

#define REAL float
#define FN(name) name##_f32
#define EXP rims_expf
#define TANH(x) (2.0f / (1.0f + rims_expf(-2.0f * (x))) - 1.0f) /* tanh(x) = 2 σ(2x) − 1 */
#include "rims_native_body.h"
#undef REAL
#undef FN
#undef EXP
#undef TANH

#define REAL double
#define FN(name) name##_f64
#define EXP exp
#define TANH tanh
#include "rims_native_body.h"
#undef REAL
#undef FN
#undef EXP
#undef TANH
