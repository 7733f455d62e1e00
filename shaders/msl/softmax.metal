// Fused softmax over rows (native MSL backend): y = exp(x - max) / sum(exp(x - max)).
// Buffers: 0 immediates, 1 x, 2 y. Special values as torch.softmax (NaN or +inf in a row, or a
// row of only -inf, gives NaN; -inf elsewhere gives 0). Forms: a row per simdgroup (sub), a
// row per threadgroup of 256, 512 or 1024 held in registers (row<T>_k<K>: K chunks a thread),
// looped (loop), or for wide half rows persistent threadgroups (persist1024_k<K>).

// One row held in registers: KMAX chunks a thread, one read and one write.
template <typename T, bool SUB, uint KMAX, uint FORM>
inline void softmax_row_reg(device const T* x, device T* y, constant RowParams& p, threadgroup float* red, Ids id,
                            uint row, uint t_lane, uint t_size) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3) / 4;
    float4 v[KMAX];
    float m = -INFINITY;
    for (uint k = 0; k < KMAX; ++k) {
        uint c = t_lane + k * t_size;
        float4 u = load_chunk(x, p, FORM, e0, slot_chunk(c, nch, FORM), -INFINITY);
        v[k] = in_row(c, nch, FORM) ? u : float4(-INFINITY);
        m = max(m, max4(v[k]));
    }
    m = team_max<SUB>(m, red, id);
    float s = 0.0f;
    for (uint k = 0; k < KMAX; ++k) {
        v[k] = exp(v[k] - m);
        s += sum4(v[k]);
    }
    float inv = 1.0f / team_sum<SUB>(s, red, id);
    for (uint k = 0; k < KMAX; ++k) {
        uint c = t_lane + k * t_size;
        if (in_row(c, nch, FORM)) {
            store_chunk(y, p, FORM, e0, c, v[k] * inv);
        }
    }
}

// Any row length: an online max and sum, then a second read to write.
template <typename T, bool SUB, uint FORM>
inline void softmax_row_loop(device const T* x, device T* y, constant RowParams& p, threadgroup float* red, Ids id,
                             uint row, uint t_lane, uint t_size) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3) / 4;
    float m = -INFINITY;
    float s = 0.0f;
    for (uint c = t_lane; c < nch; c += t_size) {
        float4 v = load_chunk(x, p, FORM, e0, c, -INFINITY);
        float mc = max4(v);
        if (mc > m) {
            s *= exp(m - mc);
            m = mc;
        }
        if (any(isnan(v))) {
            s = NAN; // NaN stays NaN through the sums
        } else if (m != -INFINITY) {
            s += sum4(exp(v - m)); // a chunk of only -inf while m is -inf adds nothing
        }
    }
    float mr = team_max<SUB>(m, red, id);
    float sr = team_sum<SUB>(m == -INFINITY && !isnan(s) ? 0.0f : s * exp(m - mr), red, id);
    float inv = 1.0f / sr;
    for (uint c = t_lane; c < nch; c += t_size) {
        store_chunk(y, p, FORM, e0, c, exp(load_chunk(x, p, FORM, e0, c, -INFINITY) - mr) * inv);
    }
}

#define SOFTMAX_KERNEL(NAME, T, WG, SUB, LOOP, K)                                                \
    [[max_total_threads_per_threadgroup(WG)]]                                                    \
    kernel void NAME(constant RowParams& p [[buffer(0)]],                                        \
                     device const T* x [[buffer(1)]],                                            \
                     device T* y [[buffer(2)]],                                                  \
                     KERNEL_IDS) {                                                               \
        threadgroup float red[32];                                                               \
        Ids id = MAKE_IDS;                                                                       \
        if (LOOP) {                                                                              \
            FOR_EACH_ROW(SUB, WG, IN_FORM(false,                                                 \
                (softmax_row_loop<T, SUB, form>(x, y, p, red, id, row, t_lane, t_size))))         \
        } else {                                                                                 \
            FOR_EACH_ROW(SUB, WG, IN_FORM(p.n == 4 * t_size * K,                                 \
                (softmax_row_reg<T, SUB, K, form>(x, y, p, red, id, row, t_lane, t_size))))       \
        }                                                                                        \
    }

ROW_FORMS(SOFTMAX_KERNEL, softmax_f32, float)
ROW_FORMS(SOFTMAX_KERNEL, softmax_f16, half)

// Persistent threadgroups (half rows of whole chunks, one row a threadgroup of WG threads, K
// chunks a thread; softmax.wgsl's persistent variant): threadgroup g takes rows g, g + G, ...
// (G threadgroups) and loads the next row's chunks before it reduces and writes this one, so
// that a row's reductions and its write overlap the next row's loads.
template <uint WG, uint K>
inline void softmax_persist(device const half* x, device half* y, constant RowParams& p, threadgroup float* red, Ids id,
                            uint groups) {
    device const half4* x4 = (device const half4*)x;
    device half4* y4 = (device half4*)y;
    uint nc = p.n >> 2;
    uint r = id.group;
    half4 cur[K];
    for (uint k = 0; k < K; ++k) {
        uint c = id.lid + k * WG;
        if (c < nc && r < p.rows) {
            cur[k] = x4[r * nc + c];
        }
    }
    while (r < p.rows) {
        uint rn = r + groups;
        half4 nxt[K];
        for (uint k = 0; k < K; ++k) {
            uint c = id.lid + k * WG;
            if (c < nc && rn < p.rows) {
                nxt[k] = x4[rn * nc + c];
            }
        }
        float m = -INFINITY;
        for (uint k = 0; k < K; ++k) {
            if (id.lid + k * WG < nc) {
                m = max(m, max4(float4(cur[k])));
            }
        }
        m = team_max<false>(m, red, id);
        float s = 0.0f;
        for (uint k = 0; k < K; ++k) {
            if (id.lid + k * WG < nc) {
                s += sum4(exp(float4(cur[k]) - m));
            }
        }
        float inv = 1.0f / team_sum<false>(s, red, id);
        for (uint k = 0; k < K; ++k) {
            uint c = id.lid + k * WG;
            if (c < nc) {
                y4[r * nc + c] = half4(exp(float4(cur[k]) - m) * inv);
            }
        }
        for (uint k = 0; k < K; ++k) {
            cur[k] = nxt[k];
        }
        r = rn;
    }
}

#define SOFTMAX_PERSIST_KERNEL(NAME, WG, K)                                                      \
    [[max_total_threads_per_threadgroup(WG)]]                                                    \
    kernel void NAME(constant RowParams& p [[buffer(0)]],                                        \
                     device const half* x [[buffer(1)]],                                         \
                     device half* y [[buffer(2)]],                                               \
                     KERNEL_IDS) {                                                               \
        threadgroup float red[32];                                                               \
        Ids id = MAKE_IDS;                                                                       \
        softmax_persist<WG, K>(x, y, p, red, id, ntg.x * ntg.y);                                 \
    }

// Every persistent kernel: F(name, threads, chunks a thread).
#define SOFTMAX_PERSIST_FORMS(F) F(softmax_f16_persist1024_k4, 1024, 4) F(softmax_f16_persist1024_k8, 1024, 8)

SOFTMAX_PERSIST_FORMS(SOFTMAX_PERSIST_KERNEL)
