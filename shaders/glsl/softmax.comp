#version 450
// Fused softmax over rows (native SPIR-V backend): y = exp(x - max) / sum(exp(x - max)).
// Bindings: 0 x (read), 1 y (write), 2 the sizes (uniform). Special values as torch.softmax:
// NaN or +inf in a row, or a row of only -inf, gives NaN; -inf elsewhere gives 0.
#extension GL_GOOGLE_include_directive : require
#define PARAMS_BINDING 2
#include "rows.glsl"

VIEWS(0, x, readonly)
VIEWS(1, y, writeonly)
LOADER(x)
STORER(y)

#ifdef LOOP
void softmax_row(uint row, uint form) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3u) / 4u;
    // Online max and sum over this thread's chunks.
    float m = NEG_INF;
    float s = 0.0;
    for (uint c = LANE; c < nch; c += TSIZE) {
        vec4 v = x_ld(e0, c, NEG_INF, form);
        float mc = max4(v);
        if (mc > m) {
            s *= exp(m - mc);
            m = mc;
        }
        if (any(isnan(v))) {
            s = uintBitsToFloat(0x7fc00000u); // NaN stays NaN through the sums
        } else if (m != NEG_INF) {
            s += sum4(exp(v - m)); // a chunk of only -inf while m is -inf adds nothing
        }
    }
    float mr = team_max(m);
    float sr = team_sum(m == NEG_INF && !isnan(s) ? 0.0 : s * exp(m - mr));
    float inv = 1.0 / sr;
    for (uint c = LANE; c < nch; c += TSIZE) {
        y_st(e0, c, exp(x_ld(e0, c, NEG_INF, form) - mr) * inv, form);
    }
}
#else
void softmax_row(uint row, uint form) {
    uint e0 = row * p.n;
    uint nch = (p.n + 3u) / 4u;
    vec4 v[KMAX];
    float m = NEG_INF;
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        uint c = LANE + k * TSIZE;
        vec4 u = x_ld(e0, slot_chunk(c, nch, form), NEG_INF, form);
        v[k] = in_row(c, nch, form) ? u : vec4(NEG_INF);
        m = max(m, max4(v[k]));
    }
    m = team_max(m);
    float s = 0.0;
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        v[k] = exp(v[k] - m);
        s += sum4(v[k]);
    }
    float inv = 1.0 / team_sum(s);
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        uint c = LANE + k * TSIZE;
        if (in_row(c, nch, form)) { y_st(e0, c, v[k] * inv, form); }
    }
}
#endif

#ifdef PERSIST
// Persistent workgroups (F16, rows of whole chunks, one row a workgroup of WG threads, KMAX
// chunks a thread; softmax.wgsl's persistent variant): workgroup g takes rows g, g + G, ...
// (G workgroups) and loads the next row's chunks, packed, before it reduces and writes this
// one, so that a row's reductions and its write overlap the next row's loads.
void main() {
    uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    uint nc = p.n >> 2u;
    uint r = group_index();
    CHUNK cur[KMAX];
    [[unroll]] for (uint k = 0u; k < KMAX; k++) {
        uint c = LANE + k * TSIZE;
        if (c < nc && r < p.rows) { cur[k] = x4[r * nc + c]; }
    }
    while (r < p.rows) {
        uint rn = r + stride;
        CHUNK nxt[KMAX];
        [[unroll]] for (uint k = 0u; k < KMAX; k++) {
            uint c = LANE + k * TSIZE;
            if (c < nc && rn < p.rows) { nxt[k] = x4[rn * nc + c]; }
        }
        float m = NEG_INF;
        [[unroll]] for (uint k = 0u; k < KMAX; k++) {
            if (LANE + k * TSIZE < nc) { m = max(m, max4(UNPACK(cur[k]))); }
        }
        m = team_max(m);
        float s = 0.0;
        [[unroll]] for (uint k = 0u; k < KMAX; k++) {
            if (LANE + k * TSIZE < nc) { s += sum4(exp(UNPACK(cur[k]) - m)); }
        }
        float inv = 1.0 / team_sum(s);
        [[unroll]] for (uint k = 0u; k < KMAX; k++) {
            uint c = LANE + k * TSIZE;
            if (c < nc) { y4[r * nc + c] = PACK(exp(UNPACK(cur[k]) - m) * inv); }
        }
        [[unroll]] for (uint k = 0u; k < KMAX; k++) { cur[k] = nxt[k]; }
        r = rn;
    }
}
#else
void main() {
    FOR_EACH_ROW(softmax_row)
}
#endif
