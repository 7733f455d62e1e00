// RMSNorm (native MSL backend): y = x / sqrt(mean(x^2) + eps) * w, f32 accumulation. The
// residual form computes h = x + residual (for f16, h as rounded to f16), writes it and
// normalises it. Buffers: 0 immediates, 1 x, 2 weight (x again when absent), then 3 y; with
// the residual: 3 residual, 4 y, 5 h.

// Chunk c of the row's input: x + residual rounded to T (and written to h), or x.
template <typename T, bool ADD>
inline float4 rms_input(device const T* x, device const T* r, device T* h, constant RowParams& p, uint e0, uint c) {
    if (ADD) {
        float4 v = round_st<T>(load_chunk(x, p, e0, c, 0.0f) + load_chunk(r, p, e0, c, 0.0f), p.zero);
        store_chunk(h, p, e0, c, v);
        return v;
    }
    return load_chunk(x, p, e0, c, 0.0f);
}

template <typename T>
inline float4 rms_scaled(device const T* w, constant RowParams& p, uint c, float4 v, float inv) {
    v *= inv;
    if (p.weight != 0) {
        v *= load_chunk(w, p, 0, c, 0.0f);
    }
    return v;
}

template <typename T, bool SUB, bool ADD, uint KMAX>
inline void rms_row_reg(device const T* x, device const T* w, device const T* r, device T* y, device T* h,
                        constant RowParams& p, threadgroup float* red, Ids id, uint row, uint t_lane, uint t_size) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3) / 4;
    float4 v[KMAX];
    float ss = 0.0f;
    // Every load of the row first, then the sum: all KMAX loads are in flight together.
    for (uint k = 0; k < KMAX; ++k) {
        uint c = t_lane + k * t_size;
        v[k] = c < nch ? rms_input<T, ADD>(x, r, h, p, e0, c) : float4(0.0f);
    }
    for (uint k = 0; k < KMAX; ++k) {
        ss += dot(v[k], v[k]);
    }
    float inv = rsqrt(team_sum<SUB>(ss, red, id) / float(p.n) + p.eps);
    for (uint k = 0; k < KMAX; ++k) {
        uint c = t_lane + k * t_size;
        if (c < nch) {
            store_chunk(y, p, e0, c, rms_scaled(w, p, c, v[k], inv));
        }
    }
}

template <typename T, bool SUB, bool ADD>
inline void rms_row_loop(device const T* x, device const T* w, device const T* r, device T* y, device T* h,
                         constant RowParams& p, threadgroup float* red, Ids id, uint row, uint t_lane, uint t_size) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3) / 4;
    float ss = 0.0f;
    for (uint c = t_lane; c < nch; c += t_size) {
        float4 v = rms_input<T, ADD>(x, r, h, p, e0, c);
        ss += dot(v, v);
    }
    float inv = rsqrt(team_sum<SUB>(ss, red, id) / float(p.n) + p.eps);
    for (uint c = t_lane; c < nch; c += t_size) {
        // With ADD, this thread's own writes of the first loop.
        float4 v = ADD ? load_chunk((device const T*)h, p, e0, c, 0.0f) : load_chunk(x, p, e0, c, 0.0f);
        store_chunk(y, p, e0, c, rms_scaled(w, p, c, v, inv));
    }
}

#define RMS_BODY(T, WG, SUB, LOOP, ADD)                                                                          \
    threadgroup float red[32];                                                                                   \
    Ids id = MAKE_IDS;                                                                                           \
    if (LOOP) {                                                                                                  \
        FOR_EACH_ROW(SUB, WG, (rms_row_loop<T, SUB, ADD>(x, w, r, y, h, p, red, id, row, t_lane, t_size)))       \
    } else {                                                                                                     \
        FOR_EACH_ROW(SUB, WG, (rms_row_reg<T, SUB, ADD, 8>(x, w, r, y, h, p, red, id, row, t_lane, t_size)))     \
    }

#define RMS_KERNEL(NAME, T, WG, SUB, LOOP)                                                       \
    [[max_total_threads_per_threadgroup(WG)]]                                                    \
    kernel void NAME(constant RowParams& p [[buffer(0)]],                                        \
                     device const T* x [[buffer(1)]],                                            \
                     device const T* w [[buffer(2)]],                                            \
                     device T* y [[buffer(3)]],                                                  \
                     KERNEL_IDS) {                                                               \
        device const T* r = x;                                                                   \
        device T* h = y;                                                                         \
        RMS_BODY(T, WG, SUB, LOOP, false)                                                        \
    }

#define ADD_RMS_KERNEL(NAME, T, WG, SUB, LOOP)                                                   \
    [[max_total_threads_per_threadgroup(WG)]]                                                    \
    kernel void NAME(constant RowParams& p [[buffer(0)]],                                        \
                     device const T* x [[buffer(1)]],                                            \
                     device const T* w [[buffer(2)]],                                            \
                     device const T* r [[buffer(3)]],                                            \
                     device T* y [[buffer(4)]],                                                  \
                     device T* h [[buffer(5)]],                                                  \
                     KERNEL_IDS) {                                                               \
        RMS_BODY(T, WG, SUB, LOOP, true)                                                         \
    }

RMS_KERNEL(rms_norm_f32_sub, float, 256, true, false)
RMS_KERNEL(rms_norm_f32_row256, float, 256, false, false)
RMS_KERNEL(rms_norm_f32_row1024, float, 1024, false, false)
RMS_KERNEL(rms_norm_f32_loop, float, 256, false, true)
RMS_KERNEL(rms_norm_f16_sub, half, 256, true, false)
RMS_KERNEL(rms_norm_f16_row256, half, 256, false, false)
RMS_KERNEL(rms_norm_f16_row1024, half, 1024, false, false)
RMS_KERNEL(rms_norm_f16_loop, half, 256, false, true)
ADD_RMS_KERNEL(add_rms_norm_f32_sub, float, 256, true, false)
ADD_RMS_KERNEL(add_rms_norm_f32_row256, float, 256, false, false)
ADD_RMS_KERNEL(add_rms_norm_f32_row1024, float, 1024, false, false)
ADD_RMS_KERNEL(add_rms_norm_f32_loop, float, 256, false, true)
ADD_RMS_KERNEL(add_rms_norm_f16_sub, half, 256, true, false)
ADD_RMS_KERNEL(add_rms_norm_f16_row256, half, 256, false, false)
ADD_RMS_KERNEL(add_rms_norm_f16_row1024, half, 1024, false, false)
ADD_RMS_KERNEL(add_rms_norm_f16_loop, half, 256, false, true)
