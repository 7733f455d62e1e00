#version 450
// RMSNorm (native SPIR-V backend): y = x / sqrt(mean(x^2) + eps) * w, f32 accumulation.
// With ADD: h = x + residual is written too and normalised (for f16, h as rounded to f16).
// Bindings: 0 x, 1 weight (x again when absent), then 2 y; with ADD: 2 residual, 3 y, 4 h; then
// the sizes (uniform, 3 or 5).
#extension GL_GOOGLE_include_directive : require
#ifdef ADD
#define PARAMS_BINDING 5
#else
#define PARAMS_BINDING 3
#endif
#include "rows.glsl"

VIEWS(0, x, readonly)
VIEWS(1, w, readonly)
LOADER(x)
LOADER(w)
#ifdef ADD
VIEWS(2, r, readonly)
VIEWS(3, y, writeonly)
VIEWS(4, h, )
LOADER(r)
LOADER(h)
STORER(h)
#else
VIEWS(2, y, writeonly)
#endif
STORER(y)

// Chunk c of the row's input: x + residual rounded to the storage type, or x.
vec4 input_chunk(uint e0, uint c, uint form) {
#ifdef ADD
    return round_st(x_ld(e0, c, 0.0, form) + r_ld(e0, c, 0.0, form));
#else
    return x_ld(e0, c, 0.0, form);
#endif
}

vec4 scaled(uint c, vec4 v, float inv, uint form) {
    v *= inv;
    if (p.weight != 0u) { v *= w_ld(0u, c, 0.0, form); }
    return v;
}

#ifdef LOOP
void rms_row(uint row, uint form) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3u) / 4u;
    float ss = 0.0;
    for (uint c = LANE; c < nch; c += TSIZE) {
        vec4 v = input_chunk(e0, c, form);
#ifdef ADD
        h_st(e0, c, v, form);
#endif
        ss += dot(v, v);
    }
    float inv = inversesqrt(team_sum(ss) / float(p.n) + p.eps);
    for (uint c = LANE; c < nch; c += TSIZE) {
#ifdef ADD
        vec4 v = h_ld(e0, c, 0.0, form); // this thread's own writes of the first loop
#else
        vec4 v = x_ld(e0, c, 0.0, form);
#endif
        y_st(e0, c, scaled(c, v, inv, form), form);
    }
}
#else
void rms_row(uint row, uint form) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3u) / 4u;
    vec4 v[KMAX];
    float ss = 0.0;
    // Every load of the row first, then the sum: all KMAX loads are in flight together.
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        uint c = LANE + k * TSIZE;
        vec4 u = input_chunk(e0, slot_chunk(c, nch, form), form);
        v[k] = in_row(c, nch, form) ? u : vec4(0.0);
    }
#ifdef ADD
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        uint c = LANE + k * TSIZE;
        if (in_row(c, nch, form)) { h_st(e0, c, v[k], form); }
    }
#endif
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        ss += dot(v[k], v[k]);
    }
    float inv = inversesqrt(team_sum(ss) / float(p.n) + p.eps);
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        uint c = LANE + k * TSIZE;
        if (in_row(c, nch, form)) { y_st(e0, c, scaled(c, v[k], inv, form), form); }
    }
}
#endif

void main() {
    FOR_EACH_ROW(rms_row)
}
