/* Math shared by the C kernels of mnemonet.kernels.native (included by dnc_native.c and rims_native.c; needs
 * <tgmath.h>, <stdint.h> and <string.h> first). */
#ifndef MNEMONET_NATIVE_MATH_H
#define MNEMONET_NATIVE_MATH_H

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

#endif
