// LoRA (native MSL backend): y = base + s * (x A) B, x [M, in], A [in, r], B [r, out]. Two
// forms, one dispatch each:
// - lora_<dtype>: threadgroup g takes a tile of `tm` rows (1..16) and a block of `cpw` column
//   chunks. Phase 1: t = x A for the tile's rows into threadgroup memory (the k axis split over
//   threads, partial sums met in threadgroup memory). Phase 2: t B, every B load serving all
//   rows of the tile.
// - lora_<dtype>_skinny<WG>_tm<TM>, for few rows (lora.wgsl's skinny form; see
//   lora_skinny_impl below).
// Modes: 0 y = s (x A) B; 1 y = base + s (x A) B; 2 y += s (x A) B; 3 merge:
// y = base + s A B (rows of A take the place of x A; x unused).
// Buffers (wgpu's Metal numbering of our layout): 0 immediates, 1 x, 2 A, 3 B, 4 base (x again
// when unused), 5 y.
#include <metal_stdlib>
using namespace metal;

struct LoraParams {
    uint rows;
    uint k_in;
    uint rank;
    uint n_out;
    float scale;
    uint tm;  // rows per tile
    uint cpw; // column chunks per threadgroup
    uint mode;
};

constant constexpr uint LORA_WG = 256;
constant constexpr uint TMAX = 16;
constant constexpr uint RMAX = 128;

// Columns 4c..4c+3 of row `row` of a [.., n] matrix; lanes past n read as 0.
template <typename T>
inline float4 lora_chunk(device const T* m, uint row, uint c, uint n) {
    if ((n & 3) == 0) {
        return float4(((device const vec<T, 4>*)m)[row * (n >> 2) + c]);
    }
    float4 v = float4(0.0f);
    for (uint j = 0; j < 4; ++j) {
        if (4 * c + j < n) {
            v[j] = float(m[row * n + 4 * c + j]);
        }
    }
    return v;
}

template <typename T>
inline void lora_store(device T* y, uint row, uint c, uint n, float4 v) {
    if ((n & 3) == 0) {
        ((device vec<T, 4>*)y)[row * (n >> 2) + c] = vec<T, 4>(v);
        return;
    }
    for (uint j = 0; j < 4; ++j) {
        if (4 * c + j < n) {
            y[row * n + 4 * c + j] = T(v[j]);
        }
    }
}

template <typename T>
inline void lora_impl(constant LoraParams& p, device const T* x, device const T* a, device const T* b, device const T* base,
                      device T* y, threadgroup float* t_sh, threadgroup float4* part, uint group, uint tid) {
    uint nch = (p.n_out + 3) / 4;
    uint col_blocks = (nch + p.cpw - 1) / p.cpw;
    uint tile = group / col_blocks;
    uint cb = group % col_blocks;
    uint row0 = tile * p.tm;
    if (row0 >= p.rows) {
        return; // uniform over the threadgroup
    }
    uint rq = (p.rank + 3) / 4;

    // Phase 1: t[i][4q..4q+3] for the tile's rows.
    if (p.mode == 3) {
        for (uint e = tid; e < p.tm * p.rank; e += LORA_WG) {
            uint i = e / p.rank;
            uint j = e % p.rank;
            t_sh[i * RMAX + j] = row0 + i < p.rows ? float(a[(row0 + i) * p.rank + j]) : 0.0f;
        }
    } else {
        uint pairs = p.tm * rq;
        uint slices = max(1u, LORA_WG / pairs);
        for (uint pr = tid / slices; pr < pairs; pr += LORA_WG / slices) {
            uint i = pr / rq;
            uint q = pr % rq;
            float4 acc = float4(0.0f);
            if (row0 + i < p.rows) {
                uint xrow = (row0 + i) * p.k_in;
                // Neighbouring threads take neighbouring k: coalesced reads of x. Four k steps
                // a trip, every load issued before the first multiply-add; a rank of a multiple
                // of 4 reads A by whole chunks on a path of its own.
                uint k = tid % slices;
                if ((p.rank & 3) == 0) {
                    uint aq = p.rank >> 2;
                    device const vec<T, 4>* a4 = (device const vec<T, 4>*)a;
                    for (; k + 3 * slices < p.k_in; k += 4 * slices) {
                        float x0 = float(x[xrow + k]);
                        float x1 = float(x[xrow + k + slices]);
                        float x2 = float(x[xrow + k + 2 * slices]);
                        float x3 = float(x[xrow + k + 3 * slices]);
                        float4 a0 = float4(a4[k * aq + q]);
                        float4 a1 = float4(a4[(k + slices) * aq + q]);
                        float4 a2 = float4(a4[(k + 2 * slices) * aq + q]);
                        float4 a3 = float4(a4[(k + 3 * slices) * aq + q]);
                        acc += x0 * a0 + x1 * a1 + x2 * a2 + x3 * a3;
                    }
                }
                for (; k < p.k_in; k += slices) {
                    acc += float(x[xrow + k]) * lora_chunk(a, k, q, p.rank);
                }
            }
            if (slices == 1) {
                for (uint j = 0; j < 4; ++j) {
                    if (4 * q + j < p.rank) {
                        t_sh[i * RMAX + 4 * q + j] = acc[j];
                    }
                }
            } else {
                part[tid] = acc;
            }
        }
        if (slices > 1) {
            threadgroup_barrier(mem_flags::mem_threadgroup);
            if (tid < pairs) {
                float4 acc = float4(0.0f);
                for (uint s = 0; s < slices; ++s) {
                    acc += part[tid * slices + s];
                }
                uint i = tid / rq;
                uint q = tid % rq;
                for (uint j = 0; j < 4; ++j) {
                    if (4 * q + j < p.rank) {
                        t_sh[i * RMAX + 4 * q + j] = acc[j];
                    }
                }
            }
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);

    // Phase 2: each thread takes column chunks of the block, all rows of the tile at once.
    for (uint lc = tid; lc < p.cpw; lc += LORA_WG) {
        uint c = cb * p.cpw + lc;
        if (c >= nch) {
            break;
        }
        float4 acc[TMAX];
        for (uint i = 0; i < TMAX; ++i) {
            acc[i] = float4(0.0f);
        }
        for (uint j = 0; j < p.rank; ++j) {
            float4 bv = lora_chunk(b, j, c, p.n_out);
            for (uint i = 0; i < TMAX; ++i) {
                if (i < p.tm) {
                    acc[i] += t_sh[i * RMAX + j] * bv;
                }
            }
        }
        for (uint i = 0; i < TMAX; ++i) {
            uint row = row0 + i;
            if (i < p.tm && row < p.rows) {
                float4 v = acc[i] * p.scale;
                if (p.mode == 1 || p.mode == 3) {
                    v += lora_chunk(base, row, c, p.n_out);
                } else if (p.mode == 2) {
                    v += lora_chunk((device const T*)y, row, c, p.n_out);
                }
                lora_store(y, row, c, p.n_out, v);
            }
        }
    }
}

#define LORA_KERNEL(NAME, T)                                                                     \
    [[max_total_threads_per_threadgroup(256)]]                                                   \
    kernel void NAME(constant LoraParams& p [[buffer(0)]],                                       \
                     device const T* x [[buffer(1)]],                                            \
                     device const T* a [[buffer(2)]],                                            \
                     device const T* b [[buffer(3)]],                                            \
                     device const T* base [[buffer(4)]],                                         \
                     device T* y [[buffer(5)]],                                                  \
                     uint3 tg [[threadgroup_position_in_grid]],                                  \
                     uint3 ntg [[threadgroups_per_grid]],                                        \
                     uint tid [[thread_index_in_threadgroup]]) {                                 \
        threadgroup float t_sh[TMAX * RMAX];                                                     \
        threadgroup float4 part[LORA_WG];                                                        \
        lora_impl<T>(p, x, a, b, base, y, t_sh, part, tg.y * ntg.x + tg.x, tid);                 \
    }

LORA_KERNEL(lora_f32, float)
LORA_KERNEL(lora_f16, half)

// The skinny form, for few rows (lora.wgsl's and lora_skinny.glsl's): a tile of TM rows (1, 2
// or 4) and a block of `cpw` column chunks a threadgroup of WG threads; `p.tm` holds the
// column blocks. Phase 1: each threadgroup computes its rows' s·x·A itself. Thread lid takes
// rank quad q = lid % qp (qp: the rank's quads rounded up to a power of two) and k quads
// lid / qp, lid / qp + WG / qp, ...: the A loads of a simdgroup lie side by side in whole rows
// of A, and a thread issues the loads of two trips before its first FMA. The partial sums of a
// quad meet by simd_shuffle_xor inside each simdgroup, then through threadgroup memory.
// Phase 2: the (row, column chunk) items of the block over the threads; an item is its base
// chunk plus t·B over the rank. AL (in, r and out all multiples of 4), a template argument:
// every load of the aligned path is one chunk without a test of its own.
inline float4 lora_sk_mac(float4 acc, float4 x, float4 a0, float4 a1, float4 a2, float4 a3) {
    return acc + x.x * a0 + x.y * a1 + x.z * a2 + x.w * a3;
}

// Row m of s·t: the threads' partial sums v of rank quad lid % qp, added up, into sk_t.
template <uint WG>
inline void lora_sk_reduce(threadgroup float4* sk_part, threadgroup float4* sk_t, constant LoraParams& p, float4 v, uint m,
                           uint lid, uint sg, uint qp) {
    float4 xv = v;
    for (uint off = qp; off < sg; off <<= 1) {
        xv += simd_shuffle_xor(xv, ushort(off));
    }
    uint span = max(sg, qp);
    uint per = WG / span;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (lid % sg < qp) {
        sk_part[(lid % qp) * per + lid / span] = xv;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    // per is a power of two of at least 2 (WG >= 256, simdgroups at most 64, qp at most 32).
    if (lid < qp) {
        float4 s0 = float4(0.0f);
        float4 s1 = float4(0.0f);
        for (uint i = 0; i < per; i += 2) {
            s0 += sk_part[lid * per + i];
            s1 += sk_part[lid * per + i + 1];
        }
        sk_t[m * 32 + lid] = p.scale * (s0 + s1);
    }
}

// Columns 4c..4c+3 of row `row` of a [.., n] matrix: one chunk when AL, else lora_chunk.
template <bool AL, typename T>
inline float4 lora_sk_chunk(device const T* m, uint row, uint c, uint n) {
    if (AL) {
        return float4(((device const vec<T, 4>*)m)[row * (n >> 2) + c]);
    }
    return lora_chunk(m, row, c, n);
}

// Row k of A at rank quad q, 0 past the k axis.
template <bool AL, typename T>
inline float4 lora_sk_a(constant LoraParams& p, device const T* a, uint k, uint q) {
    return k < p.k_in ? lora_sk_chunk<AL>(a, k, q, p.rank) : float4(0.0f);
}

// x[row][k .. k + 4], 0 past the k axis (k a multiple of 4).
template <bool AL, typename T>
inline float4 lora_sk_x(constant LoraParams& p, device const T* x, uint row, uint k) {
    return k < p.k_in ? lora_sk_chunk<AL>(x, row, k >> 2, p.k_in) : float4(0.0f);
}

// Row j of B at column chunk cc, 0 past the rank.
template <bool AL, typename T>
inline float4 lora_sk_b(constant LoraParams& p, device const T* b, uint j, uint cc) {
    return j < p.rank ? lora_sk_chunk<AL>(b, j, cc, p.n_out) : float4(0.0f);
}

// acc + t quad tq (ranks j .. j + 4) times rows j .. j + 4 of B at column chunk cc.
template <bool AL, typename T>
inline float4 lora_sk_bmac(constant LoraParams& p, device const T* b, float4 acc, float4 tq, uint j, uint cc) {
    return acc + tq.x * lora_sk_b<AL>(p, b, j, cc) + tq.y * lora_sk_b<AL>(p, b, j + 1, cc) + tq.z * lora_sk_b<AL>(p, b, j + 2, cc) +
           tq.w * lora_sk_b<AL>(p, b, j + 3, cc);
}

template <bool AL, typename T, uint TM, uint WG>
inline void lora_skinny_impl(constant LoraParams& p, device const T* x, device const T* a, device const T* b, device const T* base,
                             device T* y, threadgroup float4* sk_part, threadgroup float4* sk_t, uint g, uint lid, uint sg) {
    uint col_blocks = p.tm;
    if (g >= ((p.rows + TM - 1) / TM) * col_blocks) {
        return; // uniform over the threadgroup
    }
    uint m0 = (g / col_blocks) * TM;
    uint nrow = min(TM, p.rows - m0);
    uint r4 = (p.rank + 3) / 4;
    uint qp = 1;
    while (qp < r4) {
        qp <<= 1;
    }
    uint q = lid % qp;
    if (p.mode == 3) {
        // Merge: t is rows of A.
        for (uint i = lid; i < TM * qp; i += WG) {
            float4 v = float4(0.0f);
            if (i / qp < nrow && 4 * (i % qp) < p.rank) {
                v = p.scale * lora_sk_chunk<AL>(a, m0 + i / qp, i % qp, p.rank);
            }
            sk_t[(i / qp) * 32 + i % qp] = v;
        }
    } else {
        uint lanes = WG / qp;
        float4 c[TM];
        for (uint i = 0; i < TM; ++i) {
            c[i] = float4(0.0f);
        }
        if (4 * q < p.rank) {
            for (uint k = 4 * (lid / qp); k < p.k_in; k += 8 * lanes) {
                uint k2 = k + 4 * lanes;
                float4 a0 = lora_sk_a<AL>(p, a, k, q);
                float4 a1 = lora_sk_a<AL>(p, a, k + 1, q);
                float4 a2 = lora_sk_a<AL>(p, a, k + 2, q);
                float4 a3 = lora_sk_a<AL>(p, a, k + 3, q);
                float4 b0 = lora_sk_a<AL>(p, a, k2, q);
                float4 b1 = lora_sk_a<AL>(p, a, k2 + 1, q);
                float4 b2 = lora_sk_a<AL>(p, a, k2 + 2, q);
                float4 b3 = lora_sk_a<AL>(p, a, k2 + 3, q);
                float4 xs[TM];
                float4 ys[TM];
                for (uint i = 0; i < TM; ++i) {
                    // Rows past the tile read row m0 again (in bounds) and are never stored.
                    uint row = m0 + min(i, nrow - 1);
                    xs[i] = lora_sk_x<AL>(p, x, row, k);
                    ys[i] = lora_sk_x<AL>(p, x, row, k2);
                }
                for (uint i = 0; i < TM; ++i) {
                    c[i] = lora_sk_mac(lora_sk_mac(c[i], xs[i], a0, a1, a2, a3), ys[i], b0, b1, b2, b3);
                }
            }
        }
        for (uint i = 0; i < TM; ++i) {
            lora_sk_reduce<WG>(sk_part, sk_t, p, c[i], i, lid, sg, qp);
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);

    uint chunks_out = (p.n_out + 3) / 4;
    uint cpb = p.cpw;
    uint c_first = (g % col_blocks) * cpb;
    uint ncols = min(cpb, chunks_out - min(chunks_out, c_first));
    for (uint i = lid; i < TM * cpb; i += WG) {
        uint m = i / cpb;
        if (m >= nrow || i % cpb >= ncols) {
            continue;
        }
        uint cc = c_first + i % cpb;
        uint row = m0 + m;
        float4 acc = float4(0.0f);
        if (p.mode == 1 || p.mode == 3) {
            acc = lora_sk_chunk<AL>(base, row, cc, p.n_out);
        } else if (p.mode == 2) {
            acc = lora_sk_chunk<AL>((device const T*)y, row, cc, p.n_out);
        }
        uint jq = 0;
        for (; jq + 4 <= r4; jq += 4) {
            float4 t0 = sk_t[m * 32 + jq];
            float4 t1 = sk_t[m * 32 + jq + 1];
            float4 t2 = sk_t[m * 32 + jq + 2];
            float4 t3 = sk_t[m * 32 + jq + 3];
            acc = lora_sk_bmac<AL>(p, b, lora_sk_bmac<AL>(p, b, acc, t0, 4 * jq, cc), t1, 4 * jq + 4, cc);
            acc = lora_sk_bmac<AL>(p, b, lora_sk_bmac<AL>(p, b, acc, t2, 4 * jq + 8, cc), t3, 4 * jq + 12, cc);
        }
        for (; jq < r4; ++jq) {
            acc = lora_sk_bmac<AL>(p, b, acc, sk_t[m * 32 + jq], 4 * jq, cc);
        }
        if (AL) {
            ((device vec<T, 4>*)y)[row * (p.n_out >> 2) + cc] = vec<T, 4>(acc);
        } else {
            lora_store(y, row, cc, p.n_out, acc);
        }
    }
}

#define LORA_SKINNY_KERNEL(NAME, T, TM, WG)                                                      \
    [[max_total_threads_per_threadgroup(WG)]]                                                    \
    kernel void NAME(constant LoraParams& p [[buffer(0)]],                                       \
                     device const T* x [[buffer(1)]],                                            \
                     device const T* a [[buffer(2)]],                                            \
                     device const T* b [[buffer(3)]],                                            \
                     device const T* base [[buffer(4)]],                                         \
                     device T* y [[buffer(5)]],                                                  \
                     uint3 tg [[threadgroup_position_in_grid]],                                  \
                     uint3 ntg [[threadgroups_per_grid]],                                        \
                     uint tid [[thread_index_in_threadgroup]],                                   \
                     uint sg_size [[threads_per_simdgroup]]) {                                   \
        threadgroup float4 sk_part[1024];                                                        \
        threadgroup float4 sk_t[TM * 32];                                                        \
        uint g = tg.y * ntg.x + tg.x;                                                            \
        if (((p.k_in | p.rank | p.n_out) & 3) == 0) {                                            \
            lora_skinny_impl<true, T, TM, WG>(p, x, a, b, base, y, sk_part, sk_t, g, tid, sg_size); \
        } else {                                                                                 \
            lora_skinny_impl<false, T, TM, WG>(p, x, a, b, base, y, sk_part, sk_t, g, tid, sg_size); \
        }                                                                                        \
    }

// Every skinny kernel: F(name, element type, rows a tile, threads).
#define LORA_SKINNY_FORMS(F)                                                                     \
    F(lora_f32_skinny256_tm1, float, 1, 256) F(lora_f32_skinny256_tm2, float, 2, 256)            \
    F(lora_f32_skinny256_tm4, float, 4, 256) F(lora_f32_skinny1024_tm1, float, 1, 1024)          \
    F(lora_f32_skinny1024_tm2, float, 2, 1024) F(lora_f32_skinny1024_tm4, float, 4, 1024)        \
    F(lora_f16_skinny256_tm1, half, 1, 256) F(lora_f16_skinny256_tm2, half, 2, 256)              \
    F(lora_f16_skinny256_tm4, half, 4, 256) F(lora_f16_skinny1024_tm1, half, 1, 1024)            \
    F(lora_f16_skinny1024_tm2, half, 2, 1024) F(lora_f16_skinny1024_tm4, half, 4, 1024)

LORA_SKINNY_FORMS(LORA_SKINNY_KERNEL)
