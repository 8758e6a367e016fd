/* The DNC memory step in plain C for mnemonet.kernels.native: dnc_native_body.h once per precision. */
#include <tgmath.h> /* exp, sqrt, log1p in the precision of their argument */
#include <stdint.h>
#include <string.h>

#define EPSILON 1e-6 /* models.dnc.addressing.EPSILON (checked by tests/kernels) */

#define REAL float
#define FN(name) name##_f32
#define TANH_C(x) FN(tanh_by_sigmoid)(x)
#include "dnc_native_body.h"
#undef REAL
#undef FN
#undef TANH_C

#define REAL double
#define FN(name) name##_f64
#define TANH_C(x) tanh(x)
#include "dnc_native_body.h"
#undef REAL
#undef FN
#undef TANH_C
