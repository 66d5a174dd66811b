/* conv_direct_tmpl.h - the loops of conv_direct.c for one instruction set. conv_direct.c
 * includes it once per set, inside a `#pragma GCC target`, with these defined:
 *   V, VL      the vector type and its floats; PV: vectors of output pixels per tile,
 *              TB: taps per tile of the weight gradient
 *   VLOAD(p), VSTORE(p, v), VBCAST(s), VZERO(), VFMA(a, b, c) = a * b + c, VSUM(v): the
 *              sum of v's lanes in a fixed order
 *   FN(name)   the set's name for a function
 * Not a header for anyone else; it #undefs them at its end. OB (output channels per tile)
 * comes from conv_direct.c.
 */

/* for each (o, i) of an OB x NI tile of registers with i < n, the loops unrolled so that the
 * tile stays in registers (n and NI are constants where the tile is inlined) */
#define TILE_FOR(o, i, NI, n)                            \
    _Pragma("GCC unroll 8") for (int o = 0; o < OB; o++) \
        _Pragma("GCC unroll 8") for (int i = 0; i < (NI); i++) if (i < (n))

/* The planes of a chunk (layout at the top of conv_direct.c): zeros everywhere but the
 * images' rows. Rows are short (4 to 30 floats), so vector loops rather than calls (omp
 * simd: the buffers never overlap the tensors). */
static void FN(fill_planes)(const bk__dconv *d, int64_t nimg, const float *src, int64_t src_img, float *xp) {
    int64_t W = d->W, Wp = d->Wp;
    for (int64_t c = 0; c < d->C; c++) {
        float *P = xp + c * d->plane, *row = P + d->lead + d->ph * Wp;
        for (float *z = P; z < row; z++) *z = 0.0f;
        for (int64_t j = 0; j < nimg; j++) {
            const float *s = src + j * src_img + c * d->H * W;
            for (int64_t ih = 0; ih < d->H; ih++, row += Wp, s += W) {
#pragma omp simd
                for (int64_t iw = 0; iw < W; iw++) row[iw] = s[iw];
                for (int64_t iw = W; iw < Wp; iw++) row[iw] = 0.0f;
            }
            for (int64_t i = 0; i < (d->rows - d->H) * Wp; i++) row[i] = 0.0f; /* >= PH rows */
            row += (d->rows - d->H) * Wp;
        }
        for (float *z = row; z < P + d->plane; z++) *z = 0.0f;
    }
}

/* dy of a chunk (nimg images of O channels of OH x OW, images dy_img apart) in the wide
 * layout of the outputs: yw[o][(j rows + oh) Wp + ow], zero at every junk q < Q and for the
 * channels past O, so the weight gradient may sum over all q. */
static void FN(fill_wide)(const bk__dconv *d, int64_t nimg, const float *dy, int64_t dy_img, int64_t Q,
                          float *yw) {
    int64_t OW = d->OW, Wp = d->Wp;
    for (int64_t o = 0; o < d->Opad; o++) {
        float *r = yw + o * Q, *end = r + Q;
        for (int64_t j = 0; o < d->O && j < nimg; j++) {
            const float *s = dy + j * dy_img + o * d->OH * OW;
            for (int64_t oh = 0; oh < d->OH; oh++, r += Wp, s += OW) {
#pragma omp simd
                for (int64_t ow = 0; ow < OW; ow++) r[ow] = s[ow];
                for (int64_t ow = OW; ow < Wp && r + ow < end; ow++) r[ow] = 0.0f;
            }
            for (int64_t oh = d->OH; oh < d->rows && j + 1 < nimg; oh++, r += Wp)
                for (int64_t ow = 0; ow < Wp; ow++) r[ow] = 0.0f;
        }
        for (; r < end; r++) *r = 0.0f;
    }
}

/* y[o][p VL ..] = sum over c < C, t < KK of wp[(c KK + t) OB + o] x[c plane + offs[t] + p VL ..]
 * for o < OB, p < np: OB x np vectors held in registers (np is a constant where it is
 * inlined). The sum runs over c, then t, in increasing order, for every output. */
static inline __attribute__((always_inline)) void FN(tile)(const float *x, int64_t plane, int64_t C,
                                                           const int64_t *offs, int64_t KK, const float *wp,
                                                           float *y, int64_t ldy, int np) {
    V acc[OB][PV];
    TILE_FOR(o, p, PV, PV) acc[o][p] = VZERO();
    for (int64_t c = 0; c < C; c++, x += plane)
        for (int64_t t = 0; t < KK; t++, wp += OB) {
            const float *xs = x + offs[t];
            V xv[PV];
#pragma GCC unroll 8
            for (int p = 0; p < PV; p++) xv[p] = p < np ? VLOAD(xs + p * VL) : VZERO();
#pragma GCC unroll 8
            for (int o = 0; o < OB; o++) {
                V wv = VBCAST(wp[o]);
#pragma GCC unroll 8
                for (int p = 0; p < PV; p++)
                    if (p < np) acc[o][p] = VFMA(wv, xv[p], acc[o][p]);
            }
        }
    TILE_FOR(o, p, PV, np) VSTORE(y + o * ldy + p * VL, acc[o][p]);
}

/* The wide outputs yw (Opad, Q) of the planes xp (C, plane): tiles of PV vectors of pixels,
 * and within one, every block of OB output channels (the tile's input stays in L1). */
static void FN(compute)(const bk__dconv *d, int64_t Q, const float *xp, const int64_t *offs, const float *wp,
                        float *yw) {
    int64_t KK = d->KH * d->KW, wstride = d->C * KK * OB;
    for (int64_t q0 = 0; q0 < Q; q0 += PV * VL) {
        int64_t left = (Q - q0) / VL;
        int np = left < PV ? (int)left : PV;
        for (int64_t ob = 0; ob < d->Opad / OB; ob++) {
            const float *x0 = xp + q0, *w0 = wp + ob * wstride;
            float *y0 = yw + ob * OB * Q + q0;
            switch (np) { /* one specialised copy of the tile per width */
            case 1: FN(tile)(x0, d->plane, d->C, offs, KK, w0, y0, Q, 1); break;
            case 2: FN(tile)(x0, d->plane, d->C, offs, KK, w0, y0, Q, 2); break;
            case 3: FN(tile)(x0, d->plane, d->C, offs, KK, w0, y0, Q, 3); break;
#if PV > 3
            case 4: FN(tile)(x0, d->plane, d->C, offs, KK, w0, y0, Q, 4); break;
            case 5: FN(tile)(x0, d->plane, d->C, offs, KK, w0, y0, Q, 5); break;
            case 6: FN(tile)(x0, d->plane, d->C, offs, KK, w0, y0, Q, 6); break;
#endif
            default: break; /* np is 1..PV */
            }
        }
    }
}

/* offs[t]: where tap t = kh KW + kw reads the planes, from a wide index q (the layout at the
 * top of conv_direct.c). (A macro: as a function, even an always-inline one, it changed
 * GCC 12's register allocation of the weight gradient's loops.) */
#define TAP_OFFSETS(d, offs)                     \
    for (int64_t kh = 0; kh < (d)->KH; kh++)     \
        for (int64_t kw = 0; kw < (d)->KW; kw++) \
    (offs)[kh * (d)->KW + kw] = (d)->lead + kh * (d)->dh * (d)->Wp + kw * (d)->dw - (d)->pw

static void FN(run)(const bk__dconv *d, int64_t nimg, const float *src, int64_t src_img, const float *wp,
                    const float *bias, float *dst, int64_t dst_img, bool accumulate, float *work) {
    int64_t Q = dconv_q(d, nimg);
    float *xp = work, *yw = work + d->C * d->plane;
    int64_t offs[DCONV_MAX_TAPS];
    TAP_OFFSETS(d, offs);
    FN(fill_planes)(d, nimg, src, src_img, xp);
    FN(compute)(d, Q, xp, offs, wp, yw);
    /* dst (+)= the wide outputs that are real pixels */
    int64_t L = d->OH * d->OW;
    for (int64_t o = 0; o < d->O; o++) {
        float b = bias ? bias[o] : 0.0f;
        for (int64_t j = 0; j < nimg; j++)
            for (int64_t oh = 0; oh < d->OH; oh++) {
                const float *r = yw + o * Q + (j * d->rows + oh) * d->Wp;
                float *dr = dst + j * dst_img + o * L + oh * d->OW;
                if (accumulate) {
#pragma omp simd
                    for (int64_t ow = 0; ow < d->OW; ow++) dr[ow] += r[ow];
                } else {
#pragma omp simd
                    for (int64_t ow = 0; ow < d->OW; ow++) dr[ow] = r[ow] + b;
                }
            }
    }
}

/* out[o TB + t] = sum over q < Q of dy[o ldy + q] x[offs[t] + q], for o < OB, t < tb: the
 * weight gradient of OB output channels and tb taps of one input channel. Each lane sums
 * its q in increasing order, then VSUM adds the lanes in a fixed order. */
static inline __attribute__((always_inline)) void
FN(wtile)(const float *dy, int64_t ldy, const float *x, const int64_t *offs, int64_t Q, float *out, int tb) {
    V acc[OB][TB];
    TILE_FOR(o, t, TB, TB) acc[o][t] = VZERO();
    for (int64_t q = 0; q < Q; q += VL) {
        V xv[TB];
#pragma GCC unroll 8
        for (int t = 0; t < TB; t++) xv[t] = t < tb ? VLOAD(x + offs[t] + q) : VZERO();
#pragma GCC unroll 8
        for (int o = 0; o < OB; o++) {
            V g = VLOAD(dy + o * ldy + q);
#pragma GCC unroll 8
            for (int t = 0; t < TB; t++)
                if (t < tb) acc[o][t] = VFMA(g, xv[t], acc[o][t]);
        }
    }
    TILE_FOR(o, t, TB, tb) out[o * TB + t] = VSUM(acc[o][t]);
}

static void FN(dweights)(const bk__dconv *d, int64_t nimg, const float *src, int64_t src_img, const float *dy,
                         int64_t dy_img, float *dw, bool accumulate, float *work) {
    int64_t Q = dconv_q(d, nimg), KK = d->KH * d->KW;
    float *xp = work, *yw = work + d->C * d->plane;
    int64_t offs[DCONV_MAX_TAPS];
    TAP_OFFSETS(d, offs);
    FN(fill_planes)(d, nimg, src, src_img, xp);
    FN(fill_wide)(d, nimg, dy, dy_img, Q, yw);
    for (int64_t ob = 0; ob < d->Opad / OB; ob++)
        for (int64_t c = 0; c < d->C; c++)
            for (int64_t t0 = 0; t0 < KK; t0 += TB) {
                float r[OB * TB];
                const float *g = yw + ob * OB * Q, *x = xp + c * d->plane;
                switch (KK - t0 < TB ? KK - t0 : TB) { /* one specialised copy per width */
                case 1: FN(wtile)(g, Q, x, offs + t0, Q, r, 1); break;
                case 2: FN(wtile)(g, Q, x, offs + t0, Q, r, 2); break;
                case 3: FN(wtile)(g, Q, x, offs + t0, Q, r, 3); break;
#if TB > 3
                case 4: FN(wtile)(g, Q, x, offs + t0, Q, r, 4); break;
                case 5: FN(wtile)(g, Q, x, offs + t0, Q, r, 5); break;
                case 6: FN(wtile)(g, Q, x, offs + t0, Q, r, 6); break;
#endif
                default: break; /* 1..TB */
                }
                for (int64_t o = ob * OB; o < d->O && o < (ob + 1) * OB; o++)
                    for (int64_t t = t0; t < KK && t < t0 + TB; t++) {
                        float *dst = dw + (o * d->C + c) * KK + t;
                        float v = r[(o - ob * OB) * TB + t - t0];
                        *dst = accumulate ? *dst + v : v;
                    }
            }
}

#undef TILE_FOR
#undef TAP_OFFSETS
#undef V
#undef VL
#undef PV
#undef TB
#undef VSUM
#undef VLOAD
#undef VSTORE
#undef VBCAST
#undef VZERO
#undef VFMA
#undef FN
