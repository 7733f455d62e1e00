// Shared machinery of the MSL row kernels (softmax, RMSNorm): parameters, chunk access and
// the reductions of the team that owns a row. Concatenated before softmax.metal and
// rms_norm.metal.
//
// Buffer indices follow wgpu's Metal backend for our explicit layouts: the immediates at
// buffer(0), then the bind-group entries in binding order from buffer(1).
#include <metal_stdlib>
using namespace metal;

// Immediates, 32 bytes: rows, row length, eps (RMSNorm), rows per threadgroup (SUB), whether
// rows start on a 4-element boundary, weight present (RMSNorm), and a word that is always 0
// (see `round_st`).
struct RowParams {
    uint rows;
    uint n;
    float eps;
    uint rpg;
    uint aligned;
    uint weight;
    uint zero;
    uint pad1;
};

// v rounded to T. For half the round trip goes through the packed words, or-ed with `zero`
// (0 at run time), so that no compiler can fold float -> half -> float away.
template <typename T>
inline float4 round_st(float4 v, uint zero) {
    return v;
}

template <>
inline float4 round_st<half>(float4 v, uint zero) {
    return float4(as_type<half4>(as_type<uint2>(half4(v)) | uint2(zero)));
}

// Where a thread is: threadgroup index (over a 2-D grid), thread, simdgroup lane and index.
struct Ids {
    uint group;
    uint lid;
    uint lane;
    uint sg;
    uint sg_size;
    uint n_sg;
};

#define KERNEL_IDS                                                         \
    uint3 tg [[threadgroup_position_in_grid]],                             \
    uint3 ntg [[threadgroups_per_grid]],                                   \
    uint lid [[thread_index_in_threadgroup]],                              \
    uint lane [[thread_index_in_simdgroup]],                               \
    uint sg [[simdgroup_index_in_threadgroup]],                            \
    uint sg_size [[threads_per_simdgroup]],                                \
    uint n_sg [[simdgroups_per_threadgroup]]
#define MAKE_IDS Ids{tg.y * ntg.x + tg.x, lid, lane, sg, sg_size, n_sg}

// How a kernel sees this launch's rows, a template argument of the row functions so that the
// compiler folds every test on it away:
//   GENERAL  rows may start inside a chunk (n % 4 != 0): element accesses at a row's ends;
//   ALIGNED  rows of whole chunks: one vector access a chunk;
//   EXACT    rows of whole chunks that a register kernel's t_size x KMAX slots cover exactly:
//            no slot is tested against the row's end.
constant constexpr uint GENERAL = 0;
constant constexpr uint ALIGNED = 1;
constant constexpr uint EXACT = 2;

// Runs CALL (which names `form`) with this launch's form as a constant; `exact` says whether
// the register slots cover the rows exactly.
#define IN_FORM(exact, CALL)                                               \
    if (p.aligned == 0) {                                                  \
        constexpr uint form = GENERAL;                                     \
        CALL;                                                              \
    } else if (exact) {                                                    \
        constexpr uint form = EXACT;                                       \
        CALL;                                                              \
    } else {                                                               \
        constexpr uint form = ALIGNED;                                     \
        CALL;                                                              \
    }

// Chunk c (elements 4c..4c+3) of the row starting at element e0; lanes past the row read as
// `fill`.
template <typename T>
inline float4 load_chunk(device const T* buf, constant RowParams& p, uint form, uint e0, uint c, float fill) {
    if (form != GENERAL) {
        return float4(((device const vec<T, 4>*)buf)[(e0 >> 2) + c]);
    }
    float4 v = float4(fill);
    for (uint j = 0; j < 4; ++j) {
        if (4 * c + j < p.n) {
            v[j] = float(buf[e0 + 4 * c + j]);
        }
    }
    return v;
}

template <typename T>
inline void store_chunk(device T* buf, constant RowParams& p, uint form, uint e0, uint c, float4 v) {
    if (form != GENERAL) {
        ((device vec<T, 4>*)buf)[(e0 >> 2) + c] = vec<T, 4>(v);
        return;
    }
    for (uint j = 0; j < 4; ++j) {
        if (4 * c + j < p.n) {
            buf[e0 + 4 * c + j] = T(v[j]);
        }
    }
}

// Whether register slot chunk c lies in a row of nch chunks.
inline bool in_row(uint c, uint nch, uint form) { return form == EXACT || c < nch; }

// The chunk a register slot loads: c itself, or for a slot past the row the row's last chunk
// (read, then replaced by the fill), so that a thread's loads carry no branch.
inline uint slot_chunk(uint c, uint nch, uint form) { return form == EXACT ? c : min(c, nch - 1); }

inline float max4(float4 v) { return max(max(v.x, v.y), max(v.z, v.w)); }
inline float sum4(float4 v) { return (v.x + v.y) + (v.z + v.w); }

// Reductions over the team: a simdgroup (SUB), or the threadgroup (one value per simdgroup
// through threadgroup memory `red`, at least one float per simdgroup).
template <bool SUB>
inline float team_sum(float v, threadgroup float* red, Ids id) {
    v = simd_sum(v);
    if (SUB) {
        return v;
    }
    if (simd_is_first()) {
        red[id.sg] = v;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float t = 0.0f;
    if (id.n_sg <= 16) {
        for (uint i = 0; i < id.n_sg; ++i) {
            t += red[i];
        }
    } else {
        // More simdgroups (1024 threads): spread over the lanes, met by simd_sum (rows.glsl).
        for (uint i = id.lane; i < id.n_sg; i += id.sg_size) {
            t += red[i];
        }
        t = simd_sum(t);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return t;
}

template <bool SUB>
inline float team_max(float v, threadgroup float* red, Ids id) {
    v = simd_max(v);
    if (SUB) {
        return v;
    }
    if (simd_is_first()) {
        red[id.sg] = v;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float t = -INFINITY;
    if (id.n_sg <= 16) {
        for (uint i = 0; i < id.n_sg; ++i) {
            t = max(t, red[i]);
        }
    } else {
        for (uint i = id.lane; i < id.n_sg; i += id.sg_size) {
            t = max(t, red[i]);
        }
        t = simd_max(t);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return t;
}

// The rows a team owns: SUB, the threadgroup's `rpg` rows taken by its simdgroups in turn;
// else the threadgroup's one row. Runs CALL with `row`, `t_lane` (lane in the team) and
// `t_size` (team size) defined.
#define FOR_EACH_ROW(SUB, WG, CALL)                                        \
    if (SUB) {                                                             \
        uint first = id.group * p.rpg;                                     \
        for (uint i = id.sg; i < p.rpg; i += id.n_sg) {                    \
            uint row = first + i, t_lane = id.lane, t_size = id.sg_size;   \
            if (row < p.rows) { CALL; }                                    \
        }                                                                  \
    } else if (id.group < p.rows) {                                        \
        uint row = id.group, t_lane = id.lid, t_size = WG;                 \
        CALL;                                                              \
    }

// Every form of one kernel family (the native backend's `NATIVE_ROW_FORMS`): a row per
// simdgroup or per threadgroup of 256, 512 or 1024 threads holding K chunks a thread, and the
// loop. KERNEL(name, T, threads, SUB, LOOP, K).
#define ROW_FORMS(KERNEL, PREFIX, T)                 \
    KERNEL(PREFIX##_sub_k1, T, 256, true, false, 1)     \
    KERNEL(PREFIX##_sub_k2, T, 256, true, false, 2)     \
    KERNEL(PREFIX##_sub_k4, T, 256, true, false, 4)     \
    KERNEL(PREFIX##_sub_k8, T, 256, true, false, 8)     \
    KERNEL(PREFIX##_row256_k1, T, 256, false, false, 1) \
    KERNEL(PREFIX##_row256_k2, T, 256, false, false, 2) \
    KERNEL(PREFIX##_row256_k4, T, 256, false, false, 4) \
    KERNEL(PREFIX##_row256_k8, T, 256, false, false, 8) \
    KERNEL(PREFIX##_row512_k4, T, 512, false, false, 4) \
    KERNEL(PREFIX##_row512_k8, T, 512, false, false, 8) \
    KERNEL(PREFIX##_row1024_k4, T, 1024, false, false, 4) \
    KERNEL(PREFIX##_row1024_k8, T, 1024, false, false, 8) \
    KERNEL(PREFIX##_loop, T, 256, false, true, 1)
