#version 450
// RMSNorm (native SPIR-V backend): y = x / sqrt(mean(x^2) + eps) * w, f32 accumulation.
// With ADD: h = x + residual is written too and normalised (for f16, h as rounded to f16).
// Bindings: 0 x, 1 weight (x again when absent), then 2 y; with ADD: 2 residual, 3 y, 4 h.
#extension GL_GOOGLE_include_directive : require
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

// The row's input: x + residual rounded to the storage type (written to h), or x.
vec4 input_chunk(uint e0, uint c) {
#ifdef ADD
    vec4 v = round_st(x_ld(e0, c, 0.0) + r_ld(e0, c, 0.0));
    h_st(e0, c, v);
    return v;
#else
    return x_ld(e0, c, 0.0);
#endif
}

vec4 scaled(uint c, vec4 v, float inv) {
    v *= inv;
    if (p.weight != 0u) { v *= w_ld(0u, c, 0.0); }
    return v;
}

#ifdef LOOP
void rms_row(uint row) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3u) / 4u;
    float ss = 0.0;
    for (uint c = LANE; c < nch; c += TSIZE) {
        vec4 v = input_chunk(e0, c);
        ss += dot(v, v);
    }
    float inv = inversesqrt(team_sum(ss) / float(p.n) + p.eps);
    for (uint c = LANE; c < nch; c += TSIZE) {
#ifdef ADD
        vec4 v = h_ld(e0, c, 0.0); // this thread's own writes of the first loop
#else
        vec4 v = x_ld(e0, c, 0.0);
#endif
        y_st(e0, c, scaled(c, v, inv));
    }
}
#else
void rms_row(uint row) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3u) / 4u;
    vec4 v[KMAX];
    float ss = 0.0;
    // Every load of the row first, then the sum: all KMAX loads are in flight together.
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        uint c = LANE + k * TSIZE;
        v[k] = vec4(0.0);
        if (c < nch) { v[k] = input_chunk(e0, c); }
    }
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        ss += dot(v[k], v[k]);
    }
    float inv = inversesqrt(team_sum(ss) / float(p.n) + p.eps);
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        uint c = LANE + k * TSIZE;
        if (c < nch) { y_st(e0, c, scaled(c, v[k], inv)); }
    }
}
#endif

void main() {
    FOR_EACH_ROW(rms_row)
}
