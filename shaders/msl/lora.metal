// LoRA (native MSL backend): y = base + s * (x A) B, x [M, in], A [in, r], B [r, out]. One
// dispatch; threadgroup g takes a tile of `tm` rows (1..16) and a block of `cpw` column chunks.
// Phase 1: t = x A for the tile's rows into threadgroup memory (the k axis split over threads,
// partial sums met in threadgroup memory). Phase 2: t B, every B load serving all rows of the
// tile. Modes: 0 y = s (x A) B; 1 y = base + s (x A) B; 2 y += s (x A) B; 3 merge:
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
