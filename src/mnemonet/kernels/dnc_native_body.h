/* One DNC memory step (forward) and its vector-Jacobian product (backward) as plain C loops; at the end, the
 * LSTM controller's pointwise step and its VJP (dnc_lstm_forward / dnc_lstm_backward).
 *
 * Included twice by dnc_native.c, with REAL = float and REAL = double; FN(name) names each copy. The
 * equations are those of mnemonet/models/dnc/addressing.py (Graves et al. 2016, Methods), in the order of
 * kernels/dnc_access.py (access_forward / access_backward), whose comments name each block; the loops here
 * fuse what torch runs there as ~150 small tensor operations per step. One write head, dense link, no
 * options. Layouts (row-major, per batch row b):
 *   xi  [Z]: read keys then write key [(R+1) W] | write vector [W] | strengths before oneplus [R+1] |
 *            erase [W], free [R], allocation gate, write gate before the sigmoid | read modes [R][3] (b, c, f)
 *   M [N][W], u [N], L [N][N], p [N], w^r [R][N], w^w [N]; r [R][W] at a row stride.
 *   saved [SAVED]: the intermediates the backward reads (offsets in FN(layout)), phi [N] the sort order.
 */

typedef struct {
    long sg, pi, k_inv, scale, q, terms, psi, u_pre, m_inv, z_w, c_w, su, excl, sa, a, mix, keep_p, mn_inv, z_r,
        c_r, fwd, bwd, size;
} FN(Layout);

static FN(Layout) FN(layout)(long N, long W, long R) {
    FN(Layout) s;
    long o = 0;
    s.sg = o; o += W + R + 2;
    s.pi = o; o += 3 * R;
    s.k_inv = o; o += R + 1;
    s.scale = o; o += R + 1;
    s.q = o; o += (R + 1) * W;
    s.terms = o; o += R * N;
    s.psi = o; o += N;
    s.u_pre = o; o += N;
    s.m_inv = o; o += N;
    s.z_w = o; o += N;
    s.c_w = o; o += N;
    s.su = o; o += N;
    s.excl = o; o += N;
    s.sa = o; o += N;
    s.a = o; o += N;
    s.mix = o; o += N;
    s.keep_p = o; o += 1;
    s.mn_inv = o; o += N;
    s.z_r = o; o += R * N;
    s.c_r = o; o += R * N;
    s.fwd = o; o += R * N;
    s.bwd = o; o += R * N;
    s.size = o;
    return s;
}

long FN(dnc_saved_size)(long N, long W, long R) { return FN(layout)(N, W, R).size; }

/* scratch of one backward call: gwr, gfwd, gbwd, gdot, gwrp [R N]; gwwt, gp, gminv, ga, gsa, gun [N];
 * gq [(R+1) W]; gpi [3R]; gsg [W+R+2]; gv [W]; two columns [R] */
long FN(dnc_work_size)(long N, long W, long R) { return 5 * R * N + 6 * N + (R + 1) * W + 5 * R + (W + R + 2) + W; }

static inline REAL FN(sigmoid)(REAL x) { return (REAL)1 / ((REAL)1 + EXP(-x)); }

/* ask for the n REALs from p to be brought into cache: the backward's stored states of step t − 1 are far away (a
 * sequence's states outgrow L2), and the work on one batch row hides the wait for the next one's */
static inline void FN(prefetch)(const REAL* p, long n) {
    const char* c = (const char*)p;
    for (long off = 0; off < n * (long)sizeof(REAL); off += 64) __builtin_prefetch(c + off, 0, 3);
}

/* softmax of n values in place (max subtracted, as torch does) */
static void FN(softmax)(REAL* x, long n) {
    REAL mx = x[0], s = 0;
    for (long i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (long i = 0; i < n; i++) { x[i] = EXP(x[i] - mx); s += x[i]; }
    for (long i = 0; i < n; i++) x[i] /= s;
}

/* out[j] += Σ_i c[i] A[i][j] (row stride lda), four rows per pass over out: out stays in registers longer */
static void FN(acc_rows)(REAL* restrict out, const REAL* restrict A, long lda, const REAL* restrict c, long rows, long n) {
    long i = 0;
    for (; i + 4 <= rows; i += 4) {
        const REAL *a0 = A + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        const REAL c0 = c[i], c1 = c[i + 1], c2 = c[i + 2], c3 = c[i + 3];
        for (long j = 0; j < n; j++) out[j] += c0 * a0[j] + c1 * a1[j] + c2 * a2[j] + c3 * a3[j];
    }
    for (; i < rows; i++) {
        const REAL *a = A + i * lda, ci = c[i];
        for (long j = 0; j < n; j++) out[j] += ci * a[j];
    }
}

/* out[i] = Σ_j A[i][j] x[j] (row stride lda), four rows per pass over x: four independent sums to reduce at once */
static void FN(dot_rows)(REAL* restrict out, const REAL* restrict A, long lda, const REAL* restrict x, long rows, long n) {
    long i = 0;
    for (; i + 4 <= rows; i += 4) {
        const REAL *a0 = A + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        REAL d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        for (long j = 0; j < n; j++) {
            d0 += a0[j] * x[j];
            d1 += a1[j] * x[j];
            d2 += a2[j] * x[j];
            d3 += a3[j] * x[j];
        }
        out[i] = d0, out[i + 1] = d1, out[i + 2] = d2, out[i + 3] = d3;
    }
    for (; i < rows; i++) {
        const REAL* a = A + i * lda;
        REAL d = 0;
        for (long j = 0; j < n; j++) d += a[j] * x[j];
        out[i] = d;
    }
}

/* stable ascending sort of key[0..n) by index: phi[j] = slot of the j-th smallest (ties in slot order) */
static void FN(argsort)(const REAL* key, int32_t* phi, const int32_t* start, int32_t* tmp, long n) {
    if (start != NULL && n <= 1024) {  /* insertion sort from the previous step's order (nearly sorted) */
        for (long i = 0; i < n; i++) {
            int32_t v = start[i];
            long j = i;
            while (j > 0 && (key[phi[j - 1]] > key[v] || (key[phi[j - 1]] == key[v] && phi[j - 1] > v))) {
                phi[j] = phi[j - 1];
                j--;
            }
            phi[j] = v;
        }
        return;
    }
    for (long i = 0; i < n; i++) phi[i] = (int32_t)i;
    for (long width = 1; width < n; width *= 2) {  /* bottom-up merge sort; left wins ties: stable */
        for (long lo = 0; lo < n; lo += 2 * width) {
            long mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            long i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = key[phi[j]] < key[phi[i]] ? phi[j++] : phi[i++];
            while (i < mid) tmp[k++] = phi[i++];
            while (j < hi) tmp[k++] = phi[j++];
        }
        memcpy(phi, tmp, (size_t)n * sizeof(int32_t));
    }
}

/* the sort alone, for tests: phi = argsort(key) (stable), from the order ``start`` if not NULL */
void FN(dnc_argsort)(const REAL* key, int32_t* phi, const int32_t* start, int32_t* tmp, long n) {
    FN(argsort)(key, phi, start, tmp, n);
}

void FN(dnc_access_forward)(
    long B, long N, long W, long R, const REAL* xi, long xi_stride, const REAL* M, const REAL* u, const REAL* L,
    const REAL* p, const REAL* wrp, const REAL* wwp, REAL* Mn, REAL* un, REAL* Ln, REAL* pn, REAL* wr, REAL* ww,
    REAL* r, long r_stride, REAL* saved, int32_t* phi_all, const int32_t* phi_prev, int32_t* sort_tmp) {
    const FN(Layout) lay = FN(layout)(N, W, R);
    const REAL eps = (REAL)EPSILON, one = 1;
    for (long b = 0; b < B; b++) {
        const REAL *x = xi + b * xi_stride, *keys = x, *v = x + (R + 1) * W, *plus = v + W, *sig = plus + R + 1;
        const REAL* soft = sig + W + R + 2;
        const REAL *Mb = M + b * N * W, *ub = u + b * N, *Lb = L + b * N * N, *pb = p + b * N;
        const REAL *wrpb = wrp + b * R * N, *wwpb = wwp + b * N;
        REAL *Mnb = Mn + b * N * W, *unb = un + b * N, *Lnb = Ln + b * N * N, *pnb = pn + b * N;
        REAL *wrb = wr + b * R * N, *wwb = ww + b * N, *rb = r + b * r_stride, *S = saved + b * lay.size;
        int32_t* phi = phi_all + b * N;
        REAL *sg = S + lay.sg, *pi = S + lay.pi, *k_inv = S + lay.k_inv, *scale = S + lay.scale, *q = S + lay.q;
        REAL *terms = S + lay.terms, *psi = S + lay.psi, *u_pre = S + lay.u_pre, *m_inv = S + lay.m_inv;
        REAL *z_w = S + lay.z_w, *c_w = S + lay.c_w, *su = S + lay.su, *excl = S + lay.excl, *sa = S + lay.sa;
        REAL *a = S + lay.a, *mix = S + lay.mix, *mn_inv = S + lay.mn_inv, *z_r = S + lay.z_r, *c_r = S + lay.c_r;
        REAL *fwd = S + lay.fwd, *bwd = S + lay.bwd;

        /* ξ -> controls: sigmoid gates e | f | g^a | g^w, softmax read modes π, keys scaled by β / |k| */
        for (long j = 0; j < W + R + 2; j++) sg[j] = FN(sigmoid)(sig[j]);
        const REAL *e = sg, *f = sg + W, ga = sg[W + R], gw = sg[W + R + 1];
        for (long h = 0; h < R; h++) {
            for (long m = 0; m < 3; m++) pi[3 * h + m] = soft[3 * h + m];
            FN(softmax)(pi + 3 * h, 3);
        }
        for (long h = 0; h < R + 1; h++) {
            const REAL* k = keys + h * W;
            REAL s2 = 0;
            for (long w = 0; w < W; w++) s2 += k[w] * k[w];
            k_inv[h] = one / sqrt(s2 + eps);
            REAL sp = plus[h] > 20 ? plus[h] : log1p(exp(plus[h]));  /* softplus, torch's threshold 20 */
            scale[h] = (one + sp) * k_inv[h];
            for (long w = 0; w < W; w++) q[h * W + w] = k[w] * scale[h];
        }
        const REAL* q_w = q + R * W;

        /* ψ = Π_i (1 − f^i w^{r,i}_{t−1}); u_t = (u + w^w − u ⊙ w^w) ⊙ ψ */
        for (long i = 0; i < N; i++) {
            REAL ps = 1;
            for (long h = 0; h < R; h++) {
                REAL t = one - f[h] * wrpb[h * N + i];
                terms[h * N + i] = t;
                ps *= t;
            }
            psi[i] = ps;
            u_pre[i] = ub[i] + wwpb[i] * (one - ub[i]);
            unb[i] = u_pre[i] * ps;
        }

        /* c^w = C(M_{t−1}, k^w, β^w) */
        for (long i = 0; i < N; i++) {
            const REAL* row = Mb + i * W;
            REAL s2 = 0, d = 0;
            for (long w = 0; w < W; w++) { s2 += row[w] * row[w]; d += q_w[w] * row[w]; }
            m_inv[i] = one / sqrt(s2 + eps);
            z_w[i] = d * m_inv[i];
            c_w[i] = z_w[i];
        }
        FN(softmax)(c_w, N);

        /* a_t: usage ε + (1 − ε) u sorted ascending, exclusive cumulative product */
        for (long i = 0; i < N; i++) a[i] = eps + (one - eps) * unb[i];  /* a holds the sort keys for now */
        FN(argsort)(a, phi, phi_prev == NULL ? NULL : phi_prev + b * N, sort_tmp, N);
        for (long j = 0; j < N; j++) su[j] = a[phi[j]];
        REAL prod = 1;
        for (long j = 0; j < N; j++) {
            excl[j] = prod;
            sa[j] = (one - su[j]) * prod;
            prod *= su[j];
        }
        for (long j = 0; j < N; j++) a[phi[j]] = sa[j];

        /* w^w = g^w [g^a a + (1 − g^a) c^w]; p_t = (1 − Σ w^w) p + w^w */
        REAL sum_w = 0;
        for (long i = 0; i < N; i++) {
            mix[i] = c_w[i] + ga * (a[i] - c_w[i]);
            wwb[i] = gw * mix[i];
            sum_w += wwb[i];
        }
        REAL keep = one - sum_w;
        S[lay.keep_p] = keep;
        for (long i = 0; i < N; i++) pnb[i] = wwb[i] + keep * pb[i];

        /* M_t = M_{t−1} + w^w ⊙ (v^T − e^T ⊙ M_{t−1}) and 1 / |M_t[i]| for c^r below; L_t = (1 − w_i − w_j) L + w_i p_j,
         * zero diagonal */
        for (long i = 0; i < N; i++) {
            const REAL* row = Mb + i * W;
            REAL* out = Mnb + i * W;
            REAL s2 = 0;
            for (long w = 0; w < W; w++) {
                out[w] = row[w] + wwb[i] * (v[w] - e[w] * row[w]);
                s2 += out[w] * out[w];
            }
            mn_inv[i] = one / sqrt(s2 + eps);
        }
        for (long i = 0; i < N; i++) {
            const REAL* row = Lb + i * N;
            REAL* out = Lnb + i * N;
            REAL wi = wwb[i];
            for (long j = 0; j < N; j++) out[j] = (one - wi - wwb[j]) * row[j] + wi * pb[j];
            out[i] = 0;
        }

        /* c^r = C(M_t, k^r, β^r) */
        for (long h = 0; h < R; h++) {
            const REAL* qh = q + h * W;
            FN(dot_rows)(z_r + h * N, Mnb, W, qh, N, W);
            for (long i = 0; i < N; i++) {
                z_r[h * N + i] *= mn_inv[i];
                c_r[h * N + i] = z_r[h * N + i];
            }
            FN(softmax)(c_r + h * N, N);
        }

        /* f = L_t w^r_{t−1}, b = L_t^T w^r_{t−1}; w^r = π_b b + π_c c + π_f f; r = M_t^T w^r */
        for (long h = 0; h < R; h++) {
            const REAL* wp = wrpb + h * N;
            REAL* bh = bwd + h * N;
            for (long j = 0; j < N; j++) bh[j] = 0;
            FN(acc_rows)(bh, Lnb, N, wp, N, N);
            FN(dot_rows)(fwd + h * N, Lnb, N, wp, N, N);
            REAL p0 = pi[3 * h], p1 = pi[3 * h + 1], p2 = pi[3 * h + 2];
            REAL* wh = wrb + h * N;
            for (long i = 0; i < N; i++) wh[i] = p0 * bh[i] + p1 * c_r[h * N + i] + p2 * fwd[h * N + i];
            REAL* rh = rb + h * W;
            for (long w = 0; w < W; w++) rh[w] = 0;
            FN(acc_rows)(rh, Mnb, W, wh, N, W);
        }
    }
}

/* The VJP of dnc_access_forward for one step. On entry gM, gu, gL, gp, gwr, gww hold the gradients of
 * M_t, u_t, L_t, p_t, w^r_t, w^w_t; on return those of M_{t−1}, ..., w^w_{t−1} (updated in place). g_r: the
 * gradient of r_t at a row stride; gxi: where ∂L/∂ξ_t goes (overwritten). */
void FN(dnc_access_backward)(
    long B, long N, long W, long R, const REAL* xi, long xi_stride, const REAL* M, const REAL* u, const REAL* L,
    const REAL* p, const REAL* wrp, const REAL* wwp, const REAL* Mn, const REAL* Ln, const REAL* wr, const REAL* ww,
    const REAL* saved, const int32_t* phi_all, const REAL* g_r, long g_r_stride, REAL* gM, REAL* gu, REAL* gL,
    REAL* gp, REAL* gwr, REAL* gww, REAL* gxi, long gxi_stride, REAL* work) {
    const FN(Layout) lay = FN(layout)(N, W, R);
    const REAL eps = (REAL)EPSILON, one = 1;
    REAL *gwr_l = work, *gfwd = gwr_l + R * N, *gbwd = gfwd + R * N, *gdot = gbwd + R * N, *gwrp = gdot + R * N;
    REAL *gwwt = gwrp + R * N, *gpl = gwwt + N, *gminv = gpl + N, *g_a = gminv + N, *gsa = g_a + N, *gun = gsa + N;
    REAL *gq = gun + N, *gpi = gq + (R + 1) * W, *gsg = gpi + 3 * R, *gv = gsg + W + R + 2, *col = gv + W;
    REAL* col2 = col + R;
    for (long b = 0; b < B; b++) {
        const REAL *x = xi + b * xi_stride, *keys = x, *v = x + (R + 1) * W, *plus = v + W;
        const REAL *Mb = M + b * N * W, *ub = u + b * N, *Lb = L + b * N * N, *pb = p + b * N;
        const REAL *wrpb = wrp + b * R * N, *wwpb = wwp + b * N, *Mnb = Mn + b * N * W, *Lnb = Ln + b * N * N;
        const REAL *wrb = wr + b * R * N, *wwb = ww + b * N, *S = saved + b * lay.size, *grb = g_r + b * g_r_stride;
        const int32_t* phi = phi_all + b * N;
        REAL *gMb = gM + b * N * W, *gub = gu + b * N, *gLb = gL + b * N * N, *gpb = gp + b * N;
        REAL *gwrb = gwr + b * R * N, *gwwb = gww + b * N, *gx = gxi + b * gxi_stride;
        const REAL *sg = S + lay.sg, *pi = S + lay.pi, *k_inv = S + lay.k_inv, *scale = S + lay.scale;
        const REAL *q = S + lay.q, *terms = S + lay.terms, *psi = S + lay.psi, *u_pre = S + lay.u_pre;
        const REAL *m_inv = S + lay.m_inv, *z_w = S + lay.z_w, *c_w = S + lay.c_w, *su = S + lay.su;
        const REAL *excl = S + lay.excl, *sa = S + lay.sa, *a = S + lay.a, *mix = S + lay.mix;
        const REAL keep_p = S[lay.keep_p], *mn_inv = S + lay.mn_inv, *z_r = S + lay.z_r, *c_r = S + lay.c_r;
        const REAL *fwd = S + lay.fwd, *bwd = S + lay.bwd, *e = sg, *f = sg + W, ga = sg[W + R], gw = sg[W + R + 1];
        const REAL* q_w = q + R * W;
        /* the next batch row's step t − 1 state and saved intermediates, a slot at a time below */
        const long s_chunk = (lay.size + N - 1) / N, next = b + 1 < B;

        /* r = w^r M_t */
        for (long h = 0; h < R; h++) {
            FN(dot_rows)(gwr_l + h * N, Mnb, W, grb + h * W, N, W);
            for (long i = 0; i < N; i++) gwr_l[h * N + i] += gwrb[h * N + i];
        }
        for (long i = 0; i < N; i++) {
            for (long h = 0; h < R; h++) col[h] = wrb[h * N + i];
            FN(acc_rows)(gMb + i * W, grb, W, col, R, W);
            if (next) {
                FN(prefetch)(Lb + N * N + i * N, N);
                FN(prefetch)(Mb + N * W + i * W, W);
                FN(prefetch)(S + lay.size + i * s_chunk, s_chunk);
            }
        }
        /* w^r = π_b b + π_c c + π_f f (gdot holds ∂L/∂c^r for now) */
        for (long h = 0; h < R; h++) {
            REAL s0 = 0, s1 = 0, s2 = 0, p0 = pi[3 * h], p1 = pi[3 * h + 1], p2 = pi[3 * h + 2];
            for (long i = 0; i < N; i++) {
                REAL g = gwr_l[h * N + i];
                s0 += bwd[h * N + i] * g;
                s1 += c_r[h * N + i] * g;
                s2 += fwd[h * N + i] * g;
                gbwd[h * N + i] = p0 * g;
                gdot[h * N + i] = p1 * g;
                gfwd[h * N + i] = p2 * g;
            }
            gpi[3 * h] = s0, gpi[3 * h + 1] = s1, gpi[3 * h + 2] = s2;
        }
        /* f = L_t w^r_{t−1}, b = L_t^T w^r_{t−1}: G = ∂L/∂L_t (in gL), ∂L/∂w^r_{t−1} */
        for (long i = 0; i < N; i++) {
            REAL* G = gLb + i * N;
            for (long h = 0; h < R; h++) col[h] = gfwd[h * N + i], col2[h] = wrpb[h * N + i];
            FN(acc_rows)(G, wrpb, N, col, R, N);
            FN(acc_rows)(G, gbwd, N, col2, R, N);
            G[i] = 0;
        }
        for (long h = 0; h < R; h++) {
            REAL* out = gwrp + h * N;
            const REAL* gb = gbwd + h * N;
            FN(dot_rows)(out, Lnb, N, gb, N, N);
            FN(acc_rows)(out, Lnb, N, gfwd + h * N, N, N);
        }
        /* c^r = softmax(β^r cosine(k^r, M_t)) */
        for (long i = 0; i < N; i++) gminv[i] = 0;
        for (long h = 0; h < R; h++) {
            REAL s = 0;
            REAL* gd = gdot + h * N;
            for (long i = 0; i < N; i++) s += gd[i] * c_r[h * N + i];
            for (long i = 0; i < N; i++) {
                gd[i] = c_r[h * N + i] * (gd[i] - s) * mn_inv[i];
                gminv[i] += gd[i] * z_r[h * N + i];
            }
            REAL* gqh = gq + h * W;
            for (long w = 0; w < W; w++) gqh[w] = 0;
            FN(acc_rows)(gqh, Mnb, W, gd, N, W);
        }
        for (long i = 0; i < N; i++) {
            REAL* g = gMb + i * W;
            const REAL* row = Mnb + i * W;
            REAL gm = gminv[i] * mn_inv[i];
            for (long h = 0; h < R; h++) col[h] = gdot[h * N + i];
            FN(acc_rows)(g, q, W, col, R, W);
            for (long w = 0; w < W; w++) g[w] -= gm * row[w];
        }
        /* L_t = (1 − w_i − w_j) L + w_i p_j and p_t = (1 − Σ w) p + w: into ∂L/∂w^w_t, ∂L/∂p_{t−1} */
        REAL sp = 0, *g_row = g_a;  /* g_row: the w_i terms, apart (a scalar store into gwwt stalls its next loads) */
        for (long j = 0; j < N; j++) { gpl[j] = 0; gwwt[j] = gwwb[j]; sp += gpb[j] * pb[j]; }
        for (long i = 0; i < N; i++) {
            const REAL *G = gLb + i * N, *row = Lb + i * N, wi = wwb[i];
            REAL d = 0;
            for (long j = 0; j < N; j++) {
                gpl[j] += G[j] * wi;
                d += G[j] * (pb[j] - row[j]);
                gwwt[j] -= G[j] * row[j];
            }
            g_row[i] = d;
        }
        for (long j = 0; j < N; j++) {
            gwwt[j] += g_row[j] + gpb[j] - sp;
            gpl[j] += gpb[j] * keep_p;
        }
        for (long i = 0; i < N; i++) {
            REAL* G = gLb + i * N;
            REAL wi = wwb[i];
            for (long j = 0; j < N; j++) G[j] *= one - wi - wwb[j];
        }
        /* M_t = M + w^w ⊙ (v^T − e^T ⊙ M): ∂L/∂w^w, ∂L/∂v, ∂L/∂e, ∂L/∂M_{t−1} (first part) */
        REAL *gv_ = gv, *ge = gsg;  /* ∂L/∂e goes straight into the gate gradients */
        for (long w = 0; w < W; w++) gv_[w] = 0, ge[w] = 0;
        FN(acc_rows)(gv_, gMb, W, wwb, N, W);
        for (long i = 0; i < N; i++) {
            REAL* g = gMb + i * W;
            const REAL* row = Mb + i * W;
            REAL wi = wwb[i], d = 0;
            for (long w = 0; w < W; w++) {
                d += g[w] * (v[w] - e[w] * row[w]);
                REAL gwi = g[w] * wi;
                ge[w] -= gwi * row[w];
                g[w] -= gwi * e[w];
            }
            gwwt[i] += d;
        }
        /* w^w = g^w [g^a a + (1 − g^a) c^w] */
        REAL g_gw = 0, g_ga = 0, s_cw = 0;
        for (long i = 0; i < N; i++) {
            g_gw += gwwt[i] * mix[i];
            REAL gmix = gwwt[i] * gw;
            g_a[i] = gmix * ga;
            gwwt[i] = gmix - g_a[i];  /* now ∂L/∂c^w */
            g_ga += gmix * (a[i] - c_w[i]);
            s_cw += gwwt[i] * c_w[i];
        }
        /* a: (1 − su_j) Π_{i<j} su_i scattered to slot order; su = ε + (1 − ε) u_t */
        for (long j = 0; j < N; j++) gsa[j] = g_a[phi[j]];
        REAL total = 0;
        for (long j = 0; j < N; j++) total += gsa[j] * sa[j];
        REAL csum = 0;
        for (long i = 0; i < N; i++) gun[i] = gub[i];
        for (long j = 0; j < N; j++) {
            csum += gsa[j] * sa[j];
            REAL g_su = (total - csum) / su[j] - gsa[j] * excl[j];
            gun[phi[j]] += (one - eps) * g_su;
        }
        /* c^w = softmax(β^w cosine(k^w, M_{t−1})) */
        REAL* gqw = gq + R * W;
        REAL* gdw = gminv;  /* free again */
        for (long w = 0; w < W; w++) gqw[w] = 0;
        for (long i = 0; i < N; i++) gdw[i] = c_w[i] * (gwwt[i] - s_cw) * m_inv[i];
        FN(acc_rows)(gqw, Mb, W, gdw, N, W);
        for (long i = 0; i < N; i++) {
            REAL gd = gdw[i], gm = gd * z_w[i] * m_inv[i];
            const REAL* row = Mb + i * W;
            REAL* g = gMb + i * W;
            for (long w = 0; w < W; w++) g[w] += gd * q_w[w] - gm * row[w];
        }
        /* u_t = u_pre ⊙ ψ, u_pre = u + w^w_{t−1} (1 − u); ψ = Π_i (1 − f_i w^{r,i}_{t−1}) */
        REAL* gf = gsg + W;
        for (long h = 0; h < R; h++) gf[h] = 0;
        for (long i = 0; i < N; i++) {
            REAL g_psi = gun[i] * u_pre[i], g_upre = gun[i] * psi[i];
            gub[i] = g_upre * (one - wwpb[i]);
            gwwb[i] = g_upre * (one - ub[i]);
            for (long h = 0; h < R; h++) {
                REAL others = 1;
                for (long k = 0; k < R; k++)
                    if (k != h) others *= terms[k * N + i];
                REAL gt = g_psi * others;
                gf[h] -= gt * wrpb[h * N + i];
                gwrp[h * N + i] -= gt * f[h];
            }
        }
        for (long i = 0; i < R * N; i++) gwrb[i] = gwrp[i];
        for (long j = 0; j < N; j++) gpb[j] = gpl[j];
        /* q = β k / sqrt(|k|² + ε), β = oneplus(β̂): ∂L/∂k, ∂L/∂β̂ */
        REAL *gk = gx, *gvx = gx + (R + 1) * W, *gplus = gvx + W, *gsig = gplus + R + 1, *gsoft = gsig + W + R + 2;
        for (long h = 0; h < R + 1; h++) {
            const REAL *k = keys + h * W, *g = gq + h * W;
            REAL kk = 0;
            for (long w = 0; w < W; w++) kk += k[w] * g[w];
            kk *= k_inv[h];
            for (long w = 0; w < W; w++) gk[h * W + w] = scale[h] * (g[w] - k[w] * (kk * k_inv[h]));
            gplus[h] = kk * FN(sigmoid)(plus[h]);
        }
        for (long w = 0; w < W; w++) gvx[w] = gv_[w];
        /* the sigmoid gates and the softmax read modes */
        gsg[W + R] = g_ga, gsg[W + R + 1] = g_gw;
        for (long j = 0; j < W + R + 2; j++) gsig[j] = gsg[j] * sg[j] * (one - sg[j]);
        for (long h = 0; h < R; h++) {
            REAL s = 0;
            for (long m = 0; m < 3; m++) s += gpi[3 * h + m] * pi[3 * h + m];
            for (long m = 0; m < 3; m++) gsoft[3 * h + m] = pi[3 * h + m] * (gpi[3 * h + m] - s);
        }
    }
}

/* The LSTM controller's pointwise step (torch's equations, gate order i, f, g, o), one call per time step:
 *   a = mm + pre,  c_t = σ(a_f) ⊙ c_{t−1} + σ(a_i) ⊙ tanh(a_g),  h_t = σ(a_o) ⊙ tanh(c_t).
 * mm, pre [B][4H] (mm = [h_{t−1}; r_{t−1}] W_hr^T, pre = W_ih^(x) x_t + b); c [B][H]; h_t goes to a row stride.
 * act [B][4H] keeps σ(a_i), σ(a_f), tanh(a_g), σ(a_o) and tc [B][H] tanh(c_t) for the backward. tanh(a_g) is
 * 2 σ(2 a_g) − 1 (as kernels/lstm_step.py computes it); tanh(c_t) is TANH_C (dnc_native.c: the same in float32,
 * libm's tanh in float64, where the tests compare with torch's tanh to the last bits). */
static inline REAL FN(tanh_by_sigmoid)(REAL x) { return 2 * FN(sigmoid)(2 * x) - 1; }

void FN(dnc_lstm_forward)(
    long B, long H, const REAL* restrict mm, const REAL* restrict pre, const REAL* restrict c, REAL* restrict c_new,
    REAL* restrict h, long h_stride, REAL* restrict act, REAL* restrict tc) {
    for (long b = 0; b < B; b++) {
        const REAL *mb = mm + b * 4 * H, *pb = pre + b * 4 * H, *cb = c + b * H;
        REAL *ab = act + b * 4 * H, *cnb = c_new + b * H, *hb = h + b * h_stride, *tb = tc + b * H;
        for (long j = 0; j < 4 * H; j++) ab[j] = mb[j] + pb[j];
        for (long j = 0; j < 2 * H; j++) ab[j] = FN(sigmoid)(ab[j]);
        for (long j = 2 * H; j < 3 * H; j++) ab[j] = FN(tanh_by_sigmoid)(ab[j]);
        for (long j = 3 * H; j < 4 * H; j++) ab[j] = FN(sigmoid)(ab[j]);
        const REAL *i = ab, *f = ab + H, *g = ab + 2 * H, *o = ab + 3 * H;
        for (long j = 0; j < H; j++) {
            cnb[j] = f[j] * cb[j] + i[j] * g[j];
            tb[j] = TANH_C(cnb[j]);
            hb[j] = o[j] * tb[j];
        }
    }
}

/* The VJP of dnc_lstm_forward: ∂L/∂a_t into g_gates [B][4H] from ∂L/∂h_t (at a row stride) and ∂L/∂c_t (g_c,
 * replaced by ∂L/∂c_{t−1}); c [B][H] is c_{t−1}. */
void FN(dnc_lstm_backward)(
    long B, long H, const REAL* restrict act, const REAL* restrict tc, const REAL* restrict c,
    const REAL* restrict g_h, long g_h_stride, REAL* restrict g_c, REAL* restrict g_gates) {
    const REAL one = 1;
    for (long b = 0; b < B; b++) {
        const REAL *ab = act + b * 4 * H, *tb = tc + b * H, *cb = c + b * H, *gh = g_h + b * g_h_stride;
        const REAL *i = ab, *f = ab + H, *g = ab + 2 * H, *o = ab + 3 * H;
        REAL *gc = g_c + b * H, *ga = g_gates + b * 4 * H;
        for (long j = 0; j < H; j++) {
            REAL gct = gh[j] * o[j] * (one - tb[j] * tb[j]) + gc[j];  /* through h = o tanh(c_t), plus the carry */
            ga[j] = gct * g[j] * i[j] * (one - i[j]);
            ga[H + j] = gct * cb[j] * f[j] * (one - f[j]);
            ga[2 * H + j] = gct * i[j] * (one - g[j] * g[j]);
            ga[3 * H + j] = gh[j] * tb[j] * o[j] * (one - o[j]);
            gc[j] = gct * f[j];
        }
    }
}
