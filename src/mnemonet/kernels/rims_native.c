/* The RIMs step's non-matmul parts in plain C for mnemonet.kernels.native: rims_native_body.h once per precision. */
#include <tgmath.h> /* exp, tanh in the precision of their argument */
#include <stdint.h>
#include <string.h>

#include "native_math.h" /* exp_f32 */

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

#define REAL float
#define FN(name) name##_f32
#define EXP exp_f32
#define TANH(x) (2.0f / (1.0f + exp_f32(-2.0f * (x))) - 1.0f) /* tanh(x) = 2 σ(2x) − 1 */
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
