// Shared machinery of the native row kernels (softmax, RMSNorm): element type, buffer views,
// the team that owns a row and its reductions. Compiled by `cargo xtask shaders` with:
//   F16        f16 tensors (f32 arithmetic; 16-bit storage), else f32
//   WG         threads per workgroup
//   KMAX       4-element chunks a thread holds in registers (register forms)
//   SUB        one row per subgroup (short rows), else one row per workgroup
//   LOOP       rows of any length, looped over (two reads), else held in registers
// Subgroup-size agnostic: every reduction goes through gl_SubgroupSize / gl_NumSubgroups.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
#ifdef F16
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define ST float16_t
#define ST4 f16vec4
// Chunks of 4 halves are read and written as two 32-bit words (one 8-byte access; 16-bit
// vector accesses compiled to four 2-byte ones on NVIDIA's driver).
#define CHUNK uvec2
#define UNPACK(w) vec4(unpackHalf2x16((w).x), unpackHalf2x16((w).y))
#define PACK(v) uvec2(packHalf2x16((v).xy), packHalf2x16((v).zw))
#else
#define ST float
#define ST4 vec4
#define CHUNK vec4
#define UNPACK(w) (w)
#define PACK(v) (v)
#endif

layout(local_size_x = WG) in;

// The sizes, 32 bytes from a uniform buffer bound right after the kernel's storage buffers
// (PARAMS_BINDING, set by each kernel; see `params_slot` in src/context.rs): rows, row length,
// eps (RMSNorm), rows per workgroup
// (SUB), whether rows start on a 4-element boundary, weight present (RMSNorm), and a word
// that is always 0 (see `round_st`).
layout(set = 0, binding = PARAMS_BINDING) uniform Params {
    uint rows;
    uint n;
    float eps;
    uint rpg;
    uint aligned;
    uint weight;
    uint zero;
    uint pad1;
} p;

// v rounded to the storage type. For f16 the round trip goes through the packed words, or-ed
// with `p.zero`: without it, NVIDIA's driver folded f32 -> f16 -> f32 away (add + RMSNorm then
// normalised the unrounded sum, not h as stored).
#ifdef F16
vec4 round_st(vec4 v) { return UNPACK(PACK(v) | uvec2(p.zero)); }
#else
vec4 round_st(vec4 v) { return v; }
#endif

#define NEG_INF uintBitsToFloat(0xff800000u)

// Two views of one binding: 4-element chunks for aligned rows, elements for the rest.
#define VIEWS(B, NAME, Q) \
    layout(binding = B) Q buffer NAME##_v4 { CHUNK NAME##4[]; }; \
    layout(binding = B) Q buffer NAME##_v1 { ST NAME##1[]; };

// How a kernel sees this launch's rows, passed down as a literal so that the compiler folds
// every test on it away (glslc -O inlines the row functions and propagates the constant).
// Tested inside every load instead, at run time, they cost f16 rows the most: on the H200
// softmax f16 4096 x 4096 took 32.1 µs that way and 26.9 this way, 4096 x 32000 303.5 and
// 195.9; f32 rows moved by -5 to +1 µs.
//   GENERAL  rows may start inside a chunk (n % 4 != 0): element accesses at a row's ends;
//   ALIGNED  rows of whole chunks: one vector access a chunk;
//   EXACT    rows of whole chunks that a register kernel's TSIZE x KMAX slots cover exactly:
//            no slot is tested against the row's end.
const uint GENERAL = 0u;
const uint ALIGNED = 1u;
const uint EXACT = 2u;

// Chunk c of the row starting at element e0; lanes past the row read as `fill`.
#define LOADER(NAME) \
    vec4 NAME##_ld(uint e0, uint c, float fill, uint form) { \
        if (form != GENERAL) { return UNPACK(NAME##4[(e0 >> 2u) + c]); } \
        vec4 v = vec4(fill); \
        for (uint j = 0u; j < 4u; j++) { \
            if (4u * c + j < p.n) { v[j] = float(NAME##1[e0 + 4u * c + j]); } \
        } \
        return v; \
    }

// Writes chunk c of the row starting at e0 (only the lanes inside the row).
#define STORER(NAME) \
    void NAME##_st(uint e0, uint c, vec4 v, uint form) { \
        if (form != GENERAL) { NAME##4[(e0 >> 2u) + c] = PACK(v); return; } \
        for (uint j = 0u; j < 4u; j++) { \
            if (4u * c + j < p.n) { NAME##1[e0 + 4u * c + j] = ST(v[j]); } \
        } \
    }

// Whether register slot chunk c lies in a row of nch chunks.
bool in_row(uint c, uint nch, uint form) { return form == EXACT || c < nch; }

// The chunk a register slot loads: c itself, or for a slot past the row the row's last chunk
// (read, then replaced by the fill), so that a thread's loads carry no branch and issue
// together.
uint slot_chunk(uint c, uint nch, uint form) { return form == EXACT ? c : min(c, nch - 1u); }

#ifdef SUB
// The team is one subgroup; a workgroup's subgroups take its `rpg` rows in turn.
#define LANE gl_SubgroupInvocationID
#define TSIZE gl_SubgroupSize
float team_sum(float v) { return subgroupAdd(v); }
float team_max(float v) { return subgroupMax(v); }
#else
// The team is the workgroup: subgroup reductions, then one value per subgroup in shared memory.
#define LANE gl_LocalInvocationIndex
#define TSIZE WG
shared float red[WG];
// Up to 16 subgroup results are read in turn by every lane; more (1024 threads on 32-wide
// subgroups) are spread over the lanes and met by a second subgroup reduction. On the H200
// (one call, old / new / new) that took native softmax f16 4096 x 32000 (persistent) from
// 162.9 to 151.6 / 150.9 µs and RMSNorm f16 from 156.6 to 147.6 / 148.1; 512-thread rows (16
// entries) were 0.3-0.6 µs slower that way and keep the serial read.
float team_sum(float v) {
    v = subgroupAdd(v);
    if (subgroupElect()) { red[gl_SubgroupID] = v; }
    barrier();
    float t = 0.0;
    if (gl_NumSubgroups <= 16u) {
        for (uint i = 0u; i < gl_NumSubgroups; i++) { t += red[i]; }
    } else {
        for (uint i = gl_SubgroupInvocationID; i < gl_NumSubgroups; i += gl_SubgroupSize) { t += red[i]; }
        t = subgroupAdd(t);
    }
    barrier();
    return t;
}
float team_max(float v) {
    v = subgroupMax(v);
    if (subgroupElect()) { red[gl_SubgroupID] = v; }
    barrier();
    float t = NEG_INF;
    if (gl_NumSubgroups <= 16u) {
        for (uint i = 0u; i < gl_NumSubgroups; i++) { t = max(t, red[i]); }
    } else {
        for (uint i = gl_SubgroupInvocationID; i < gl_NumSubgroups; i += gl_SubgroupSize) { t = max(t, red[i]); }
        t = subgroupMax(t);
    }
    barrier();
    return t;
}
#endif

float max4(vec4 v) { return max(max(v.x, v.y), max(v.z, v.w)); }
float sum4(vec4 v) { return (v.x + v.y) + (v.z + v.w); }

// Workgroup index over a 2-D grid (more than 65535 workgroups).
uint group_index() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }

// Whether this launch's rows are covered exactly by the team's register slots.
bool exact_cover() {
#if defined(LOOP)
    return false;
#else
    return p.n == 4u * TSIZE * KMAX;
#endif
}

// ROW(r, form) with this launch's form as a literal (one uniform test per row).
#define IN_FORM(ROW, r) \
    if (p.aligned == 0u) { ROW(r, GENERAL); } \
    else if (exact_cover()) { ROW(r, EXACT); } \
    else { ROW(r, ALIGNED); }

// Calls ROW(r, form) for every row r this team owns.
#ifdef SUB
#define FOR_EACH_ROW(ROW) \
    uint first = group_index() * p.rpg; \
    for (uint i = gl_SubgroupID; i < p.rpg; i += gl_NumSubgroups) { \
        if (first + i < p.rows) { IN_FORM(ROW, first + i) } \
    }
#else
#define FOR_EACH_ROW(ROW) \
    uint r = group_index(); \
    if (r < p.rows) { IN_FORM(ROW, r) }
#endif
