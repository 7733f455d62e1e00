#version 450
// LoRA (native SPIR-V backend): y = base + s * (x A) B, x [M, in], A [in, r], B [r, out].
// Two forms, one dispatch each (SKINNY picks the second):
// - the tiled form: workgroup g takes a tile of `tm` rows (1..16) and a block of `cpw` column
//   chunks (4 columns each). Phase 1 computes t = x A for its rows into shared memory (the k
//   axis split over threads, partial sums met in shared memory); phase 2 multiplies t by B,
//   every B load serving all rows of the tile. x A never goes to device memory.
// - the skinny form, for few rows (decoding, small batches; lora.wgsl's skinny form): a tile
//   of TM rows (1, 2 or 4) and a block of column chunks a workgroup of WG threads (256 or
//   1024); every workgroup computes its rows' s x A itself, the rank quads side by side in
//   neighbouring threads and the k axis over the rest, met by subgroup shuffles.
// Modes: 0 y = s (x A) B; 1 y = base + s (x A) B; 2 y += s (x A) B; 3 merge: y = base + s A B
// (rows of A take the place of x A; x unused).
// Bindings: 0 x, 1 A, 2 B, 3 base (x again when unused), 4 y, 5 the sizes (uniform).
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require
#ifdef F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define ST float16_t
// Chunks of 4 halves as two 32-bit words: one 8-byte access.
#define CHUNK uvec2
#define UNPACK(w) vec4(unpackHalf2x16((w).x), unpackHalf2x16((w).y))
#define PACK(v) uvec2(packHalf2x16((v).xy), packHalf2x16((v).zw))
#else
#define ST float
#define CHUNK vec4
#define UNPACK(w) (w)
#define PACK(v) (v)
#endif

#ifndef WG
#define WG 256
#endif
#define TMAX 16u
#define RMAX 128u
layout(local_size_x = WG) in;

// The sizes, from a uniform buffer bound after the five storage buffers.
layout(set = 0, binding = 5) uniform Params {
    uint rows;
    uint k_in;
    uint rank;
    uint n_out;
    float scale;
    uint tm;   // rows per tile (the skinny form: column blocks)
    uint cpw;  // column chunks per workgroup
    uint mode;
} p;

layout(binding = 0) readonly buffer X4 { CHUNK x4[]; };
layout(binding = 0) readonly buffer X1 { ST x1[]; };
layout(binding = 1) readonly buffer A4 { CHUNK a4[]; };
layout(binding = 1) readonly buffer A1 { ST a1[]; };
layout(binding = 2) readonly buffer B4 { CHUNK b4[]; };
layout(binding = 2) readonly buffer B1 { ST b1[]; };
layout(binding = 3) readonly buffer Base4 { CHUNK base4[]; };
layout(binding = 3) readonly buffer Base1 { ST base1[]; };
layout(binding = 4) buffer Y4 { CHUNK y4[]; };
layout(binding = 4) buffer Y1 { ST y1[]; };


// Columns 4c..4c+3 of row `row` of a [.., n] matrix; lanes past n read as 0.
#define CHUNK_LOADER(NAME) \
    vec4 NAME##_ld(uint row, uint c, uint n) { \
        if ((n & 3u) == 0u) { return UNPACK(NAME##4[row * (n >> 2u) + c]); } \
        vec4 v = vec4(0.0); \
        for (uint j = 0u; j < 4u; j++) { \
            if (4u * c + j < n) { v[j] = float(NAME##1[row * n + 4u * c + j]); } \
        } \
        return v; \
    }
CHUNK_LOADER(x)
CHUNK_LOADER(a)
CHUNK_LOADER(b)
CHUNK_LOADER(base)
CHUNK_LOADER(y)

void y_st(uint row, uint c, vec4 v) {
    uint n = p.n_out;
    if ((n & 3u) == 0u) { y4[row * (n >> 2u) + c] = PACK(v); return; }
    for (uint j = 0u; j < 4u; j++) {
        if (4u * c + j < n) { y1[row * n + 4u * c + j] = ST(v[j]); }
    }
}

#ifdef SKINNY
#include "lora_skinny.glsl"
#else
shared float t_sh[TMAX * RMAX];
shared vec4 part[WG];

void main() {
    uint tid = gl_LocalInvocationIndex;
    uint nch = (p.n_out + 3u) / 4u;
    uint col_blocks = (nch + p.cpw - 1u) / p.cpw;
    uint g = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    uint tile = g / col_blocks;
    uint cb = g % col_blocks;
    uint row0 = tile * p.tm;
    if (row0 >= p.rows) { return; } // uniform over the workgroup
    uint rq = (p.rank + 3u) / 4u;

    // Phase 1: t[i][4q..4q+3] for the tile's rows.
    if (p.mode == 3u) {
        for (uint e = tid; e < p.tm * p.rank; e += WG) {
            uint i = e / p.rank;
            uint j = e % p.rank;
            t_sh[i * RMAX + j] = row0 + i < p.rows ? float(a1[(row0 + i) * p.rank + j]) : 0.0;
        }
    } else {
        uint pairs = p.tm * rq;
        uint slices = max(1u, WG / pairs);
        for (uint pr = tid / slices; pr < pairs; pr += WG / slices) {
            uint i = pr / rq;
            uint q = pr % rq;
            vec4 acc = vec4(0.0);
            if (row0 + i < p.rows) {
                uint xrow = (row0 + i) * p.k_in;
                // Neighbouring threads take neighbouring k: coalesced reads of x. Four k steps
                // a trip, every load issued before the first multiply-add (a trip of one step
                // waits on memory every step); a rank of a multiple of 4 reads A by whole
                // chunks on a path of its own, without a test in each load.
                uint k = tid % slices;
                if ((p.rank & 3u) == 0u) {
                    uint aq = p.rank >> 2u;
                    for (; k + 3u * slices < p.k_in; k += 4u * slices) {
                        float x0 = float(x1[xrow + k]);
                        float x1_ = float(x1[xrow + k + slices]);
                        float x2 = float(x1[xrow + k + 2u * slices]);
                        float x3 = float(x1[xrow + k + 3u * slices]);
                        vec4 a0 = UNPACK(a4[k * aq + q]);
                        vec4 a1 = UNPACK(a4[(k + slices) * aq + q]);
                        vec4 a2 = UNPACK(a4[(k + 2u * slices) * aq + q]);
                        vec4 a3 = UNPACK(a4[(k + 3u * slices) * aq + q]);
                        acc += x0 * a0 + x1_ * a1 + x2 * a2 + x3 * a3;
                    }
                }
                for (; k < p.k_in; k += slices) {
                    acc += float(x1[xrow + k]) * a_ld(k, q, p.rank);
                }
            }
            if (slices == 1u) {
                for (uint j = 0u; j < 4u; j++) {
                    if (4u * q + j < p.rank) { t_sh[i * RMAX + 4u * q + j] = acc[j]; }
                }
            } else {
                part[tid] = acc;
            }
        }
        if (slices > 1u) {
            barrier();
            if (tid < pairs) {
                vec4 acc = vec4(0.0);
                for (uint s = 0u; s < slices; s++) { acc += part[tid * slices + s]; }
                uint i = tid / rq;
                uint q = tid % rq;
                for (uint j = 0u; j < 4u; j++) {
                    if (4u * q + j < p.rank) { t_sh[i * RMAX + 4u * q + j] = acc[j]; }
                }
            }
        }
    }
    barrier();

    // Phase 2: each thread takes column chunks of the block, all rows of the tile at once.
    for (uint lc = tid; lc < p.cpw; lc += WG) {
        uint c = cb * p.cpw + lc;
        if (c >= nch) { break; }
        vec4 acc[TMAX];
        [[unroll]] for (uint i = 0u; i < TMAX; i++) { acc[i] = vec4(0.0); }
        for (uint j = 0u; j < p.rank; j++) {
            vec4 bv = b_ld(j, c, p.n_out);
            [[unroll]] for (uint i = 0u; i < TMAX; i++) {
                if (i < p.tm) { acc[i] += t_sh[i * RMAX + j] * bv; }
            }
        }
        [[unroll]] for (uint i = 0u; i < TMAX; i++) {
            uint row = row0 + i;
            if (i < p.tm && row < p.rows) {
                vec4 v = acc[i] * p.scale;
                if (p.mode == 1u || p.mode == 3u) {
                    v += base_ld(row, c, p.n_out);
                } else if (p.mode == 2u) {
                    v += y_ld(row, c, p.n_out);
                }
                y_st(row, c, v);
            }
        }
    }
}
#endif
