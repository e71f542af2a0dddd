/* One instruction set's power mel kernel. power_mel.c includes this file once per target with
 *   LANES    frames transformed side by side: one SIMD register of floats (16 AVX-512, 8 AVX2, 4 SSE2/NEON)
 *   NAME(x)  x with the target's suffix, so the copies do not collide.
 *
 * Each group of LANES frames is transformed "vertically": element [i][lane] of every buffer belongs to frame
 * lane, so every arithmetic line below is one vector instruction and no FFT step ever shuffles data. The
 * 2560-point real FFT is a 1280-point complex FFT of (even, odd) sample pairs, four radix-4 Stockham stages and
 * one radix-5 stage, then the usual split into the real transform's 1281 bins. All float32, no fused
 * multiply-add: every lane does the same operations in the same order, so the targets agree bit for bit.
 */

typedef float NAME(vec) __attribute__((vector_size(LANES * 4), aligned(LANES * 4)));

static inline __attribute__((always_inline)) void NAME(radix4)(int n, int s, const float *tw_re,
                                                               const float *tw_im, const NAME(vec) *restrict xr,
                                                               const NAME(vec) *restrict xi,
                                                               NAME(vec) *restrict yr, NAME(vec) *restrict yi) {
    const int m = n / 4, sm = s * m;
    for (int p = 0; p < m; p++) {
        const float w1r = tw_re[3 * p], w2r = tw_re[3 * p + 1], w3r = tw_re[3 * p + 2];
        const float w1i = tw_im[3 * p], w2i = tw_im[3 * p + 1], w3i = tw_im[3 * p + 2];
        for (int q = 0; q < s; q++) {
            const int a = q + s * p, b = q + 4 * s * p;
            const NAME(vec) t0r = xr[a] + xr[a + 2 * sm], t0i = xi[a] + xi[a + 2 * sm];
            const NAME(vec) t1r = xr[a] - xr[a + 2 * sm], t1i = xi[a] - xi[a + 2 * sm];
            const NAME(vec) t2r = xr[a + sm] + xr[a + 3 * sm], t2i = xi[a + sm] + xi[a + 3 * sm];
            const NAME(vec) t3r = xr[a + sm] - xr[a + 3 * sm], t3i = xi[a + sm] - xi[a + 3 * sm];
            const NAME(vec) c1r = t1r + t3i, c1i = t1i - t3r; /* (a0 - a2) - i (a1 - a3) */
            const NAME(vec) c2r = t0r - t2r, c2i = t0i - t2i;
            const NAME(vec) c3r = t1r - t3i, c3i = t1i + t3r;
            yr[b] = t0r + t2r;
            yi[b] = t0i + t2i;
            yr[b + s] = c1r * w1r - c1i * w1i;
            yi[b + s] = c1r * w1i + c1i * w1r;
            yr[b + 2 * s] = c2r * w2r - c2i * w2i;
            yi[b + 2 * s] = c2r * w2i + c2i * w2r;
            yr[b + 3 * s] = c3r * w3r - c3i * w3i;
            yi[b + 3 * s] = c3r * w3i + c3i * w3r;
        }
    }
}

/* The last stage (n = 5, s = 256): a 5-point DFT, no twiddles. */
static inline __attribute__((always_inline)) void NAME(radix5)(const NAME(vec) *restrict xr,
                                                               const NAME(vec) *restrict xi,
                                                               NAME(vec) *restrict yr, NAME(vec) *restrict yi) {
    const int s = COMPLEX_POINTS / 5;
    for (int q = 0; q < s; q++) {
        const NAME(vec) s1r = xr[q + s] + xr[q + 4 * s], s1i = xi[q + s] + xi[q + 4 * s];
        const NAME(vec) d1r = xr[q + s] - xr[q + 4 * s], d1i = xi[q + s] - xi[q + 4 * s];
        const NAME(vec) s2r = xr[q + 2 * s] + xr[q + 3 * s], s2i = xi[q + 2 * s] + xi[q + 3 * s];
        const NAME(vec) d2r = xr[q + 2 * s] - xr[q + 3 * s], d2i = xi[q + 2 * s] - xi[q + 3 * s];
        const NAME(vec) ar = xr[q] + C1 * s1r + C2 * s2r, ai = xi[q] + C1 * s1i + C2 * s2i;
        const NAME(vec) br = S1 * d1r + S2 * d2r, bi = S1 * d1i + S2 * d2i;
        const NAME(vec) cr = xr[q] + C2 * s1r + C1 * s2r, ci = xi[q] + C2 * s1i + C1 * s2i;
        const NAME(vec) dr = S2 * d1r - S1 * d2r, di = S2 * d1i - S1 * d2i;
        yr[q] = xr[q] + s1r + s2r;
        yi[q] = xi[q] + s1i + s2i;
        yr[q + s] = ar + bi;
        yi[q + s] = ai - br;
        yr[q + 4 * s] = ar - bi;
        yi[q + 4 * s] = ai + br;
        yr[q + 2 * s] = cr + di;
        yi[q + 2 * s] = ci - dr;
        yr[q + 3 * s] = cr - di;
        yi[q + 3 * s] = ci + dr;
    }
}

/* Windowed (even, odd) samples of LANES frames into [pair][lane] layout, four frames and four pairs at a time
 * (a 4x4 transpose in registers: AVX-512's gather instructions took 60% as long as the whole FFT). */
static inline __attribute__((always_inline)) void NAME(load_frames)(const float *const frame[LANES],
                                                                    const float *hann, float *restrict re,
                                                                    float *restrict im) {
    for (int l0 = 0; l0 < LANES; l0 += 4) {
        for (int m0 = 0; m0 < COMPLEX_POINTS; m0 += 4) {
            quad even[4], odd[4];
            const quad h_lo = load_quad(hann + 2 * m0), h_hi = load_quad(hann + 2 * m0 + 4);
            for (int j = 0; j < 4; j++) {
                const quad lo = load_quad(frame[l0 + j] + 2 * m0) * h_lo;
                const quad hi = load_quad(frame[l0 + j] + 2 * m0 + 4) * h_hi;
                even[j] = __builtin_shuffle(lo, hi, (lanes4){0, 2, 4, 6});
                odd[j] = __builtin_shuffle(lo, hi, (lanes4){1, 3, 5, 7});
            }
            transpose_store(even, re + (size_t)m0 * LANES + l0, LANES);
            transpose_store(odd, im + (size_t)m0 * LANES + l0, LANES);
        }
    }
}

static void NAME(power_mel)(const struct request *rq, float *work) {
    NAME(vec) *xr = (NAME(vec) *)work, *xi = xr + COMPLEX_POINTS;
    NAME(vec) *yr = xi + COMPLEX_POINTS, *yi = yr + COMPLEX_POINTS;
    NAME(vec) *power = yi + COMPLEX_POINTS; /* BINS vectors */
    const int64_t n = rq->n_frames;
    for (int64_t first = 0; first < n; first += LANES) {
        /* The last group is shifted back to end at the last frame (recomputing a few frames) so that every
         * lane holds a real frame; only a window shorter than LANES frames repeats its last frame. */
        const int64_t group = first + LANES <= n ? first : (n > LANES ? n - LANES : 0);
        const float *frame[LANES];
        for (int l = 0; l < LANES; l++)
            frame[l] = rq->padded + (group + l < n ? group + l : n - 1) * HOP;

        NAME(load_frames)(frame, rq->hann, (float *)xr, (float *)xi);
        NAME(radix4)(1280, 1, tw_re[0], tw_im[0], xr, xi, yr, yi);
        NAME(radix4)(320, 4, tw_re[1], tw_im[1], yr, yi, xr, xi);
        NAME(radix4)(80, 16, tw_re[2], tw_im[2], xr, xi, yr, yi);
        NAME(radix4)(20, 64, tw_re[3], tw_im[3], yr, yi, xr, xi);
        NAME(radix5)(xr, xi, yr, yi);

        /* Z = FFT of (even + i odd); bin k of the real transform is E[k] + e^{-2 pi i k / 2560} O[k] with
         * E = (Z[k] + conj Z[1280 - k]) / 2 and O = -i (Z[k] - conj Z[1280 - k]) / 2. */
        power[0] = (yr[0] + yi[0]) * (yr[0] + yi[0]);
        power[COMPLEX_POINTS] = (yr[0] - yi[0]) * (yr[0] - yi[0]);
        for (int k = 1; k < COMPLEX_POINTS; k++) {
            const NAME(vec) ar = yr[k], ai = yi[k], br = yr[COMPLEX_POINTS - k], bi = yi[COMPLEX_POINTS - k];
            const NAME(vec) er = 0.5f * (ar + br), ei = 0.5f * (ai - bi);
            const NAME(vec) or_ = 0.5f * (ai + bi), oi = -0.5f * (ar - br);
            const NAME(vec) re = er + (post_re[k] * or_ - post_im[k] * oi);
            const NAME(vec) im = ei + (post_re[k] * oi + post_im[k] * or_);
            power[k] = re * re + im * im;
        }

        const int64_t skip = first - group; /* lanes already written by the previous group */
        for (int64_t r = 0; r < rq->n_mels; r++) {
            NAME(vec) mel = {0};
            for (int32_t j = rq->indptr[r]; j < rq->indptr[r + 1]; j++)
                mel += rq->weights[j] * power[rq->indices[j]];
            float *row = rq->out + r * n + group;
            if (skip == 0 && group + LANES <= n)
                __builtin_memcpy(row, &mel, sizeof mel);
            else
                for (int64_t l = skip; l < LANES && group + l < n; l++)
                    row[l] = mel[l];
        }
    }
}
