// RMSNorm (native MSL backend): y = x / sqrt(mean(x^2) + eps) * w, f32 accumulation. The
// residual form computes h = x + residual (for f16, h as rounded to f16), writes it and
// normalises it. Buffers: 0 immediates, 1 x, 2 weight (x again when absent), then 3 y; with
// the residual: 3 residual, 4 y, 5 h.

// Chunk c of the row's input: x + residual rounded to T, or x.
template <typename T, bool ADD>
inline float4 rms_input(device const T* x, device const T* r, constant RowParams& p, uint form, uint e0, uint c) {
    if (ADD) {
        return round_st<T>(load_chunk(x, p, form, e0, c, 0.0f) + load_chunk(r, p, form, e0, c, 0.0f), p.zero);
    }
    return load_chunk(x, p, form, e0, c, 0.0f);
}

template <typename T>
inline float4 rms_scaled(device const T* w, constant RowParams& p, uint form, uint c, float4 v, float inv) {
    v *= inv;
    if (p.weight != 0) {
        v *= load_chunk(w, p, form, 0, c, 0.0f);
    }
    return v;
}

template <typename T, bool SUB, bool ADD, uint KMAX, uint FORM>
inline void rms_row_reg(device const T* x, device const T* w, device const T* r, device T* y, device T* h,
                        constant RowParams& p, threadgroup float* red, Ids id, uint row, uint t_lane, uint t_size) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3) / 4;
    float4 v[KMAX];
    float ss = 0.0f;
    // Every load of the row first, then the sum: all KMAX loads are in flight together.
    for (uint k = 0; k < KMAX; ++k) {
        uint c = t_lane + k * t_size;
        float4 u = rms_input<T, ADD>(x, r, p, FORM, e0, slot_chunk(c, nch, FORM));
        v[k] = in_row(c, nch, FORM) ? u : float4(0.0f);
    }
    if (ADD) {
        for (uint k = 0; k < KMAX; ++k) {
            uint c = t_lane + k * t_size;
            if (in_row(c, nch, FORM)) {
                store_chunk(h, p, FORM, e0, c, v[k]);
            }
        }
    }
    for (uint k = 0; k < KMAX; ++k) {
        ss += dot(v[k], v[k]);
    }
    float inv = rsqrt(team_sum<SUB>(ss, red, id) / float(p.n) + p.eps);
    for (uint k = 0; k < KMAX; ++k) {
        uint c = t_lane + k * t_size;
        if (in_row(c, nch, FORM)) {
            store_chunk(y, p, FORM, e0, c, rms_scaled(w, p, FORM, c, v[k], inv));
        }
    }
}

template <typename T, bool SUB, bool ADD, uint FORM>
inline void rms_row_loop(device const T* x, device const T* w, device const T* r, device T* y, device T* h,
                         constant RowParams& p, threadgroup float* red, Ids id, uint row, uint t_lane, uint t_size) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3) / 4;
    float ss = 0.0f;
    for (uint c = t_lane; c < nch; c += t_size) {
        float4 v = rms_input<T, ADD>(x, r, p, FORM, e0, c);
        if (ADD) {
            store_chunk(h, p, FORM, e0, c, v);
        }
        ss += dot(v, v);
    }
    float inv = rsqrt(team_sum<SUB>(ss, red, id) / float(p.n) + p.eps);
    for (uint c = t_lane; c < nch; c += t_size) {
        // With ADD, this thread's own writes of the first loop.
        float4 v = ADD ? load_chunk((device const T*)h, p, FORM, e0, c, 0.0f) : load_chunk(x, p, FORM, e0, c, 0.0f);
        store_chunk(y, p, FORM, e0, c, rms_scaled(w, p, FORM, c, v, inv));
    }
}

#define RMS_BODY(T, WG, SUB, LOOP, ADD, K)                                                                       \
    threadgroup float red[32];                                                                                   \
    Ids id = MAKE_IDS;                                                                                           \
    if (LOOP) {                                                                                                  \
        FOR_EACH_ROW(SUB, WG, IN_FORM(false, (rms_row_loop<T, SUB, ADD, form>(x, w, r, y, h, p, red, id, row, t_lane, t_size)))) \
    } else {                                                                                                     \
        FOR_EACH_ROW(SUB, WG, IN_FORM(p.n == 4 * t_size * K,                                                  \
            (rms_row_reg<T, SUB, ADD, K, form>(x, w, r, y, h, p, red, id, row, t_lane, t_size)))) \
    }

#define RMS_KERNEL(NAME, T, WG, SUB, LOOP, K)                                                    \
    [[max_total_threads_per_threadgroup(WG)]]                                                    \
    kernel void NAME(constant RowParams& p [[buffer(0)]],                                        \
                     device const T* x [[buffer(1)]],                                            \
                     device const T* w [[buffer(2)]],                                            \
                     device T* y [[buffer(3)]],                                                  \
                     KERNEL_IDS) {                                                               \
        device const T* r = x;                                                                   \
        device T* h = y;                                                                         \
        RMS_BODY(T, WG, SUB, LOOP, false, K)                                                      \
    }

#define ADD_RMS_KERNEL(NAME, T, WG, SUB, LOOP, K)                                                \
    [[max_total_threads_per_threadgroup(WG)]]                                                    \
    kernel void NAME(constant RowParams& p [[buffer(0)]],                                        \
                     device const T* x [[buffer(1)]],                                            \
                     device const T* w [[buffer(2)]],                                            \
                     device const T* r [[buffer(3)]],                                            \
                     device T* y [[buffer(4)]],                                                  \
                     device T* h [[buffer(5)]],                                                  \
                     KERNEL_IDS) {                                                               \
        RMS_BODY(T, WG, SUB, LOOP, true, K)                                                       \
    }

ROW_FORMS(RMS_KERNEL, rms_norm_f32, float)
ROW_FORMS(RMS_KERNEL, rms_norm_f16, half)
ROW_FORMS(ADD_RMS_KERNEL, add_rms_norm_f32, float)
ROW_FORMS(ADD_RMS_KERNEL, add_rms_norm_f16, half)
