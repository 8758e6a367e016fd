/* One RIMs step's non-matmul parts (forward) and their vector-Jacobian products (backward) as plain C loops.
 *
 * Included twice by rims_native.c, with REAL = float and REAL = double; FN(name) names each copy. The equations
 * are those of kernels/rims_sequence.py (Goyal et al. 2019, eqs. 2-7, with LSTM dynamics, one input head and the
 * gated-tanh communication output); the matmuls of a step stay in torch between these calls:
 *
 *   forward:  hq = h W_hq (torch) | FN(rims_step_forward) | qkv = offered W_qkv (torch) | FN(rims_comm_forward)
 *             | og = comm W_out^T + b_out (torch) | FN(rims_out_forward)
 *   backward: FN(rims_out_backward) | g_comm = g_og W_out (torch) | FN(rims_comm_backward)
 *             | g_offered = g_qkv W_qkv^T (torch) | FN(rims_step_backward) | g_h = g_hprev + g_hq W_hq^T (torch)
 *
 * Layouts (row-major): n modules of hs units, batch B, G = 4 hs gates (torch's order i, f, g, o), d_k the input
 * key size, GQ = G + d_k. Arrays "by module" are [n][B][...]; where a pointer comes with a module stride (ms) the
 * module k block starts at k * ms (a step's slice of a [n][T][B][...] buffer). Per-row arrays of the batch
 * (p, active, noise) are [B][n][...]. active holds 0/1 bytes (torch.bool).
 */

/* sigmoid and tanh in REAL precision from EXP and TANH (rims_native.c: vectorizable in float32, libm's in float64) */
static inline REAL FN(sig)(REAL x) { return (REAL)1 / ((REAL)1 + EXP(-x)); }
static inline REAL FN(tanh)(REAL x) { return TANH(x); }

/* Eqs. (2)-(6) after hq = h_{t-1} [W_hh | W^q]: the input's score and attention p = σ(q · key) (null: 1 − p), the
 * active set (the K largest of p − 1, or of the score, ties to the lower index; none in padded rows), the gates
 * b + p U + h W_hh, the LSTM update, the kept cell state c' = where(m, c̃, c) and what each module offers to
 * communication (unless inactive modules offer their proposed update: offered = h̃, not written). */
void FN(rims_step_forward)(long n, long B, long hs, long dk, long K, long by_score, long proposed,
                           const REAL *restrict hq, const REAL *restrict keys, const REAL *restrict u, long u_ms,
                           const REAL *restrict bias, const REAL *restrict h, long h_ms, const REAL *restrict c,
                           const uint8_t *restrict real_rows, REAL *restrict p, uint8_t *restrict active,
                           REAL *restrict sig, REAL *restrict g, REAL *restrict c_dyn, REAL *restrict tc,
                           REAL *restrict h_dyn, long hd_ms, REAL *restrict c_next, REAL *restrict offered,
                           long of_ms) {
    const long G = 4 * hs, GQ = G + dk;
    REAL score[n];
    for (long b = 0; b < B; b++) {
        const REAL *kb = keys + b * dk;
        for (long k = 0; k < n; k++) {
            const REAL *q = hq + (k * B + b) * GQ + G;
            REAL s = 0;
            for (long d = 0; d < dk; d++) s += q[d] * kb[d];
            REAL pk = FN(sig)(s);
            p[b * n + k] = pk;
            score[k] = by_score ? s : pk - 1;
        }
        const int keep = real_rows == NULL || real_rows[b];
        for (long k = 0; k < n; k++) {
            long rank = 0;
            for (long j = 0; j < n; j++) rank += score[j] > score[k] || (score[j] == score[k] && j < k);
            active[b * n + k] = (uint8_t)(keep && (K >= n || rank < K));
        }
    }
    for (long k = 0; k < n; k++) {
        for (long b = 0; b < B; b++) {
            const long row = k * B + b;
            const REAL *a = hq + row * GQ, *ur = u + k * u_ms + b * G, *bk = bias + k * G;
            const REAL pk = p[b * n + k];
            const int m = active[b * n + k];
            REAL *sg = sig + row * G, *hd_row = h_dyn + k * hd_ms + b * hs;
            for (long j = 0; j < hs; j++) {
                const REAL si = FN(sig)(a[j] + (bk[j] + pk * ur[j]));
                const REAL sf = FN(sig)(a[hs + j] + (bk[hs + j] + pk * ur[hs + j]));
                const REAL gg = FN(tanh)(a[2 * hs + j] + (bk[2 * hs + j] + pk * ur[2 * hs + j]));
                const REAL so = FN(sig)(a[3 * hs + j] + (bk[3 * hs + j] + pk * ur[3 * hs + j]));
                sg[j] = si;
                sg[hs + j] = sf;
                sg[2 * hs + j] = (gg + 1) / 2; /* σ(2 a_g), as the torch kernel stores it (unused by backward) */
                sg[3 * hs + j] = so;
                const long i = row * hs + j;
                const REAL cp = c[i], cd = sf * cp + si * gg, t = FN(tanh)(cd), hd = so * t;
                g[i] = gg;
                c_dyn[i] = cd;
                tc[i] = t;
                hd_row[j] = hd;
                c_next[i] = m ? cd : cp;
            }
            if (!proposed) memcpy(offered + k * of_ms + b * hs, m ? hd_row : h + k * h_ms + b * hs, hs * sizeof(REAL));
        }
    }
}

/* Eq. (7), the attention among modules: per row b and head, att = softmax(scale q k^T) over the n modules and
 * comm = att v. qkv [n][B][Hc (2 dc + dv)] (per head: q, k, v), att [B Hc][n][n], comm [n][B][Hc dv]. */
static inline __attribute__((always_inline)) void FN(comm_forward)(long n, long B, long Hc, const long dc, const long dv,
                                                                   REAL scale, const REAL *restrict qkv,
                                                                   REAL *restrict att, REAL *restrict comm) {
    const long E = 2 * dc + dv, F = Hc * E;
    for (long b = 0; b < B; b++) {
        for (long hd = 0; hd < Hc; hd++) {
            REAL *A = att + (b * Hc + hd) * n * n; /* scores, shifted by each row's maximum, then softmax */
            for (long i = 0; i < n; i++) {
                const REAL *q = qkv + (i * B + b) * F + hd * E;
                REAL *Ai = A + i * n, mx = -INFINITY;
                for (long j = 0; j < n; j++) {
                    const REAL *kj = qkv + (j * B + b) * F + hd * E + dc;
                    REAL s = 0;
                    for (long d = 0; d < dc; d++) s += q[d] * kj[d];
                    Ai[j] = s * scale;
                    mx = Ai[j] > mx ? Ai[j] : mx;
                }
                for (long j = 0; j < n; j++) Ai[j] -= mx;
            }
            for (long e = 0; e < n * n; e++) A[e] = EXP(A[e]); /* all rows at once: one vectorised loop */
            for (long i = 0; i < n; i++) {
                REAL *Ai = A + i * n, sum = 0;
                for (long j = 0; j < n; j++) sum += Ai[j];
                for (long j = 0; j < n; j++) Ai[j] /= sum;
                REAL *out = comm + (i * B + b) * Hc * dv + hd * dv;
                for (long e = 0; e < dv; e++) out[e] = 0;
                for (long j = 0; j < n; j++) {
                    const REAL *vj = qkv + (j * B + b) * F + hd * E + 2 * dc, w = Ai[j];
                    for (long e = 0; e < dv; e++) out[e] += w * vj[e];
                }
            }
        }
    }
}

void FN(rims_comm_forward)(long n, long B, long Hc, long dc, long dv, REAL scale, const REAL *restrict qkv,
                           REAL *restrict att, REAL *restrict comm) {
    /* the official sizes as constants: the loops over 16 or 32 entries then unroll into whole vectors */
    if (dc == 16 && dv == 16)
        FN(comm_forward)(n, B, Hc, 16, 16, scale, qkv, att, comm);
    else if (dc == 32 && dv == 32)
        FN(comm_forward)(n, B, Hc, 32, 32, scale, qkv, att, comm);
    else
        FN(comm_forward)(n, B, Hc, dc, dv, scale, qkv, att, comm);
}

/* Eq. (7), the output and the residual: act = [tanh(value ⊙ δ'), σ(gate)] from og = [value | gate] [n][B][2 hs],
 * h' = where(m, h̃ + tanh(value ⊙ δ') ⊙ σ(gate), h) (noise δ' [B][n][hs], or NULL for none). */
void FN(rims_out_forward)(long n, long B, long hs, const REAL *restrict og, const REAL *restrict noise,
                          const uint8_t *restrict active, const REAL *restrict h_dyn, long hd_ms,
                          const REAL *restrict h, long h_ms, REAL *restrict act, REAL *restrict h_next, long hn_ms) {
    for (long k = 0; k < n; k++) {
        for (long b = 0; b < B; b++) {
            const long row = k * B + b;
            const REAL *o = og + row * 2 * hs, *hd = h_dyn + k * hd_ms + b * hs;
            REAL *a = act + row * 2 * hs, *out = h_next + k * hn_ms + b * hs;
            if (noise) {
                const REAL *nz = noise + (b * n + k) * hs;
                for (long j = 0; j < hs; j++) a[j] = FN(tanh)(o[j] * nz[j]);
            } else {
                for (long j = 0; j < hs; j++) a[j] = FN(tanh)(o[j]);
            }
            for (long j = 0; j < hs; j++) a[hs + j] = FN(sig)(o[hs + j]);
            if (active[b * n + k]) {
                for (long j = 0; j < hs; j++) out[j] = a[j] * a[hs + j] + hd[j];
            } else {
                memcpy(out, h + k * h_ms + b * hs, hs * sizeof(REAL));
            }
        }
    }
}

/* VJP of FN(rims_out_forward). g_h [n][B][hs] holds ∂L/∂h_t from later steps; the step's output gradient g_y (an
 * element (b, k, j) at g_y[b gy_bs + k hs + j], or NULL) is added. Writes g_a = where(m, g_h, 0) (what reaches h̃
 * and the output), leaves where(m, 0, g_h) in g_h (what reaches h_{t-1} directly), and ∂L/∂og into g_og. */
void FN(rims_out_backward)(long n, long B, long hs, const REAL *restrict g_y, long gy_bs, REAL *restrict g_h,
                           REAL *restrict g_a, const REAL *restrict act, const REAL *restrict noise,
                           const uint8_t *restrict active, REAL *restrict g_og) {
    for (long k = 0; k < n; k++) {
        for (long b = 0; b < B; b++) {
            const long row = k * B + b;
            const REAL *a = act + row * 2 * hs;
            REAL *go = g_og + row * 2 * hs, *gh = g_h + row * hs, *ga = g_a + row * hs;
            if (g_y) {
                const REAL *gy = g_y + b * gy_bs + k * hs;
                for (long j = 0; j < hs; j++) gh[j] += gy[j];
            }
            if (!active[b * n + k]) { /* all of ∂L/∂h_t goes to h_{t-1} */
                memset(ga, 0, hs * sizeof(REAL));
                memset(go, 0, 2 * hs * sizeof(REAL));
                continue;
            }
            memcpy(ga, gh, hs * sizeof(REAL));
            memset(gh, 0, hs * sizeof(REAL));
            for (long j = 0; j < hs; j++) {
                const REAL tv = a[j], sg = a[hs + j];
                go[j] = ga[j] * sg * (1 - tv * tv);
                go[hs + j] = ga[j] * tv * sg * (1 - sg);
            }
            if (noise) {
                const REAL *nz = noise + (b * n + k) * hs;
                for (long j = 0; j < hs; j++) go[j] *= nz[j];
            }
        }
    }
}

/* VJP of FN(rims_comm_forward): ∂L/∂qkv (module k's block at g_qkv + k gq_ms, [B][Hc (2 dc + dv)]) from
 * ∂L/∂comm [n][B][Hc dv], the saved attention and qkv. */
static inline __attribute__((always_inline)) void FN(comm_backward)(long n, long B, long Hc, const long dc,
                                                                    const long dv, REAL scale,
                                                                    const REAL *restrict g_comm,
                                                                    const REAL *restrict att,
                                                                    const REAL *restrict qkv,
                                                                    REAL *restrict g_qkv, long gq_ms) {
    const long E = 2 * dc + dv, F = Hc * E;
    REAL gs[n * n];
    for (long b = 0; b < B; b++) {
        for (long hd = 0; hd < Hc; hd++) {
            const REAL *A = att + (b * Hc + hd) * n * n;
            for (long i = 0; i < n; i++) {
                const REAL *gc = g_comm + (i * B + b) * Hc * dv + hd * dv;
                REAL dot = 0;
                for (long j = 0; j < n; j++) {
                    const REAL *vj = qkv + (j * B + b) * F + hd * E + 2 * dc;
                    REAL s = 0;
                    for (long e = 0; e < dv; e++) s += gc[e] * vj[e];
                    gs[i * n + j] = s;
                    dot += s * A[i * n + j];
                }
                for (long j = 0; j < n; j++) gs[i * n + j] = (gs[i * n + j] - dot) * A[i * n + j] * scale;
            }
            for (long i = 0; i < n; i++) {
                REAL *gbase = g_qkv + i * gq_ms + b * F + hd * E;
                /* ∂q_i = Σ_j gs[i, j] k_j;  ∂k_i = Σ_j gs[j, i] q_j;  ∂v_i = Σ_j att[j, i] ∂comm_j */
                for (long d = 0; d < E; d++) gbase[d] = 0;
                for (long j = 0; j < n; j++) {
                    const REAL *other = qkv + (j * B + b) * F + hd * E;
                    const REAL *gcj = g_comm + (j * B + b) * Hc * dv + hd * dv;
                    const REAL wq = gs[i * n + j], wk = gs[j * n + i], wv = A[j * n + i];
                    for (long d = 0; d < dc; d++) gbase[d] += wq * other[dc + d];
                    for (long d = 0; d < dc; d++) gbase[dc + d] += wk * other[d];
                    for (long e = 0; e < dv; e++) gbase[2 * dc + e] += wv * gcj[e];
                }
            }
        }
    }
}

void FN(rims_comm_backward)(long n, long B, long Hc, long dc, long dv, REAL scale, const REAL *restrict g_comm,
                            const REAL *restrict att, const REAL *restrict qkv, REAL *restrict g_qkv, long gq_ms) {
    if (dc == 16 && dv == 16)
        FN(comm_backward)(n, B, Hc, 16, 16, scale, g_comm, att, qkv, g_qkv, gq_ms);
    else if (dc == 32 && dv == 32)
        FN(comm_backward)(n, B, Hc, 32, 32, scale, g_comm, att, qkv, g_qkv, gq_ms);
    else
        FN(comm_backward)(n, B, Hc, dc, dv, scale, g_comm, att, qkv, g_qkv, gq_ms);
}

/* VJP of FN(rims_step_forward) (after the communication's): from g_a and ∂L/∂offered [n][B][hs], the cell-state
 * gradient g_c (updated in place to ∂L/∂c_{t-1}) and g_hprev (∂L/∂h_{t-1} so far; a kept module's offered state
 * adds to it), writes ∂L/∂[gates | input query] (module k's block at g_hq + k ghq_ms, [B][GQ]) and ∂L/∂keys [B][dk]. */
void FN(rims_step_backward)(long n, long B, long hs, long dk, long proposed, const REAL *restrict g_a,
                            const REAL *restrict g_off, REAL *restrict g_hprev, REAL *restrict g_c,
                            const uint8_t *restrict active, const REAL *restrict sig, const REAL *restrict g,
                            const REAL *restrict tc, const REAL *restrict c_prev, const REAL *restrict u, long u_ms,
                            const REAL *restrict p, const REAL *restrict keys, const REAL *restrict hq,
                            REAL *restrict g_hq, long ghq_ms, REAL *restrict g_keys) {
    const long G = 4 * hs, GQ = G + dk;
    for (long i = 0; i < B * dk; i++) g_keys[i] = 0;
    for (long k = 0; k < n; k++) {
        for (long b = 0; b < B; b++) {
            const long row = k * B + b;
            const int m = active[b * n + k];
            const REAL *sg = sig + row * G, *ur = u + k * u_ms + b * G;
            REAL *gq = g_hq + k * ghq_ms + b * GQ, gp = 0;
            if (!m) { /* h_{t-1} was kept: its offered copy's gradient (g_a is 0 here) goes to h_{t-1} */
                if (!proposed)
                    for (long j = 0; j < hs; j++) g_hprev[row * hs + j] += g_off[row * hs + j];
            }
            for (long j = 0; j < hs; j++) {
                const long i = row * hs + j;
                const REAL gt = g_a[i] + g_off[i], gc = g_c[i]; /* loaded unconditionally: the loop vectorizes */
                const REAL ghd = m ? gt : 0;
                const REAL si = sg[j], sf = sg[hs + j], so = sg[3 * hs + j], gg = g[i], t = tc[i];
                const REAL gct = ghd * so * (1 - t * t) + (m ? gc : 0);
                const REAL di = gct * gg * si * (1 - si), df = gct * c_prev[i] * sf * (1 - sf);
                const REAL dg = gct * si * (1 - gg * gg), dout = ghd * t * so * (1 - so);
                gq[j] = di;
                gq[hs + j] = df;
                gq[2 * hs + j] = dg;
                gq[3 * hs + j] = dout;
                g_c[i] = (m ? 0 : gc) + gct * sf;
                gp += di * ur[j] + df * ur[hs + j] + dg * ur[2 * hs + j] + dout * ur[3 * hs + j];
            }
            const REAL pk = p[b * n + k], gs = gp * pk * (1 - pk);
            const REAL *kb = keys + b * dk, *q = hq + row * GQ + G;
            REAL *gk = g_keys + b * dk;
            for (long d = 0; d < dk; d++) {
                gq[G + d] = gs * kb[d];
                gk[d] += gs * q[d];
            }
        }
    }
}

/* Dropout noise for `count` elements from counter `offset`: scale where the unit is kept, else 0 (rims_native.c). */
void FN(rims_dropout_noise)(long count, long offset, long key0, long key1, long threshold, REAL scale, REAL *out) {
    const uint32_t k0 = (uint32_t)key0, k1 = (uint32_t)key1, thr = (uint32_t)threshold;
    for (long i = 0; i < count; i++) {
        const uint32_t x = rims_mix32(rims_mix32((uint32_t)(offset + i) ^ k0) + k1);
        out[i] = (x >> 8) >= thr ? scale : (REAL)0;
    }
}
