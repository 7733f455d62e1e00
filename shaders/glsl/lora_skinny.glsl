// The skinny form of lora.comp (SKINNY), for few rows: lora.wgsl's skinny form in GLSL.
// Compiled with TM (rows a tile: 1, 2 or 4) and WG (256 or 1024). Workgroup g takes row tile
// g / col_blocks (p.tm holds col_blocks here) and column block g % col_blocks of p.cpw chunks.
// Phase 1: each workgroup computes its rows' s·x·A itself. Thread lid takes rank quad
// q = lid % QP (QP: the rank's quads rounded up to a power of two) and k quads lid / QP,
// lid / QP + WG / QP, ...: the A loads of a subgroup lie side by side in whole rows of A, and a
// thread issues the loads of two trips (8 rows of A, 2 TM chunks of x) before its first FMA.
// The partial sums of a quad meet by butterfly shuffles inside each subgroup, then through
// shared memory across subgroups (lanes numbered lid % subgroup size, as in rows.glsl).
// Phase 2: the (row, column chunk) items of the block over the threads; an item is its base
// chunk plus t·B over the rank, 16 rows of B loaded before their FMAs.
// `al` (in, r and out all multiples of 4) is passed down as a literal from main, so that
// glslc folds it: every load of the aligned path is then one chunk without a test of its own.

shared vec4 sk_part[1024]; // partial sums: QP x (WG / max(sg, QP))
shared vec4 sk_t[TM * 32]; // s·t: TM rows x 32 rank quads

// Row k of A at rank quad q (0 past the k axis).
vec4 sk_a(uint k, uint q, bool al) {
    if (k >= p.k_in) {
        return vec4(0.0);
    }
    return al ? UNPACK(a4[k * (p.rank >> 2u) + q]) : a_ld(k, q, p.rank);
}

// x[row][k .. k + 4] (0 past the k axis); `k` is a multiple of 4.
vec4 sk_x(uint row, uint k, bool al) {
    if (k >= p.k_in) {
        return vec4(0.0);
    }
    return al ? UNPACK(x4[row * (p.k_in >> 2u) + (k >> 2u)]) : x_ld(row, k >> 2u, p.k_in);
}

vec4 sk_mac(vec4 acc, vec4 x, vec4 a0, vec4 a1, vec4 a2, vec4 a3) {
    return acc + x.x * a0 + x.y * a1 + x.z * a2 + x.w * a3;
}

// Row m of s·t: the threads' partial sums v of rank quad lid % qp, added up, into sk_t.
void sk_reduce(vec4 v, uint m, uint lid, uint sg, uint qp) {
    vec4 x = v;
    for (uint off = qp; off < sg; off <<= 1u) {
        x += subgroupShuffleXor(x, off);
    }
    uint span = max(sg, qp);
    uint per = uint(WG) / span;
    barrier();
    if (lid % sg < qp) {
        sk_part[(lid % qp) * per + lid / span] = x;
    }
    barrier();
    // per is a power of two of at least 2 (WG >= 256, subgroups at most 128, qp at most 32).
    if (lid < qp) {
        vec4 s0 = vec4(0.0);
        vec4 s1 = vec4(0.0);
        for (uint i = 0u; i < per; i += 2u) {
            s0 += sk_part[lid * per + i];
            s1 += sk_part[lid * per + i + 1u];
        }
        sk_t[m * 32u + lid] = p.scale * (s0 + s1);
    }
}

void sk_xa(uint m0, uint nrow, uint lid, uint sg, bool al) {
    uint r4 = (p.rank + 3u) / 4u;
    uint qp = 1u;
    while (qp < r4) {
        qp <<= 1u;
    }
    uint q = lid % qp;
    if (p.mode == 3u) {
        // Merge: t is rows of A.
        for (uint i = lid; i < uint(TM) * qp; i += uint(WG)) {
            vec4 v = vec4(0.0);
            if (i / qp < nrow && 4u * (i % qp) < p.rank) {
                v = p.scale * sk_a(m0 + i / qp, i % qp, al);
            }
            sk_t[(i / qp) * 32u + i % qp] = v;
        }
        return;
    }
    uint lanes = uint(WG) / qp;
    vec4 c[TM];
    [[unroll]] for (uint i = 0u; i < uint(TM); i++) { c[i] = vec4(0.0); }
    if (4u * q < p.rank) {
        for (uint k = 4u * (lid / qp); k < p.k_in; k += 8u * lanes) {
            uint k2 = k + 4u * lanes;
            vec4 a0 = sk_a(k, q, al);
            vec4 a1 = sk_a(k + 1u, q, al);
            vec4 a2 = sk_a(k + 2u, q, al);
            vec4 a3 = sk_a(k + 3u, q, al);
            vec4 b0 = sk_a(k2, q, al);
            vec4 b1 = sk_a(k2 + 1u, q, al);
            vec4 b2 = sk_a(k2 + 2u, q, al);
            vec4 b3 = sk_a(k2 + 3u, q, al);
            vec4 xs[TM];
            vec4 ys[TM];
            [[unroll]] for (uint i = 0u; i < uint(TM); i++) {
                // Rows past the tile read row m0 again (in bounds) and are never stored.
                uint row = m0 + min(i, nrow - 1u);
                xs[i] = sk_x(row, k, al);
                ys[i] = sk_x(row, k2, al);
            }
            [[unroll]] for (uint i = 0u; i < uint(TM); i++) {
                c[i] = sk_mac(sk_mac(c[i], xs[i], a0, a1, a2, a3), ys[i], b0, b1, b2, b3);
            }
        }
    }
    [[unroll]] for (uint i = 0u; i < uint(TM); i++) { sk_reduce(c[i], i, lid, sg, qp); }
}

// Row j of B at column chunk cc (0 past the rank).
vec4 sk_b(uint j, uint cc, bool al) {
    if (j >= p.rank) {
        return vec4(0.0);
    }
    return al ? UNPACK(b4[j * (p.n_out >> 2u) + cc]) : b_ld(j, cc, p.n_out);
}

// acc + t quad tq (ranks j .. j + 4) times rows j .. j + 4 of B at column chunk cc.
vec4 sk_bmac(vec4 acc, vec4 tq, uint j, uint cc, bool al) {
    return acc + tq.x * sk_b(j, cc, al) + tq.y * sk_b(j + 1u, cc, al) + tq.z * sk_b(j + 2u, cc, al) + tq.w * sk_b(j + 3u, cc, al);
}

void sk_tb(uint m0, uint nrow, uint cblock, uint lid, bool al) {
    uint r4 = (p.rank + 3u) / 4u;
    uint chunks_out = (p.n_out + 3u) / 4u;
    uint cpb = p.cpw;
    uint c_first = cblock * cpb;
    uint ncols = min(cpb, chunks_out - min(chunks_out, c_first));
    for (uint i = lid; i < uint(TM) * cpb; i += uint(WG)) {
        uint m = i / cpb;
        if (m >= nrow || i % cpb >= ncols) {
            continue;
        }
        uint cc = c_first + i % cpb;
        uint row = m0 + m;
        vec4 acc = vec4(0.0);
        uint at = row * (p.n_out >> 2u) + cc;
        if (p.mode == 1u || p.mode == 3u) {
            acc = al ? UNPACK(base4[at]) : base_ld(row, cc, p.n_out);
        } else if (p.mode == 2u) {
            acc = al ? UNPACK(y4[at]) : y_ld(row, cc, p.n_out);
        }
        uint jq = 0u;
        for (; jq + 4u <= r4; jq += 4u) {
            vec4 t0 = sk_t[m * 32u + jq];
            vec4 t1 = sk_t[m * 32u + jq + 1u];
            vec4 t2 = sk_t[m * 32u + jq + 2u];
            vec4 t3 = sk_t[m * 32u + jq + 3u];
            acc = sk_bmac(sk_bmac(acc, t0, 4u * jq, cc, al), t1, 4u * jq + 4u, cc, al);
            acc = sk_bmac(sk_bmac(acc, t2, 4u * jq + 8u, cc, al), t3, 4u * jq + 12u, cc, al);
        }
        for (; jq < r4; jq++) {
            acc = sk_bmac(acc, sk_t[m * 32u + jq], 4u * jq, cc, al);
        }
        if (al) {
            y4[at] = PACK(acc);
        } else {
            y_st(row, cc, acc);
        }
    }
}

void main() {
    uint lid = gl_LocalInvocationIndex;
    uint col_blocks = p.tm;
    uint g = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (g >= ((p.rows + uint(TM) - 1u) / uint(TM)) * col_blocks) {
        return; // uniform over the workgroup
    }
    uint m0 = (g / col_blocks) * uint(TM);
    uint nrow = min(uint(TM), p.rows - m0);
    if (((p.k_in | p.rank | p.n_out) & 3u) == 0u) {
        sk_xa(m0, nrow, lid, gl_SubgroupSize, true);
        barrier();
        sk_tb(m0, nrow, g % col_blocks, lid, true);
    } else {
        sk_xa(m0, nrow, lid, gl_SubgroupSize, false);
        barrier();
        sk_tb(m0, nrow, g % col_blocks, lid, false);
    }
}
