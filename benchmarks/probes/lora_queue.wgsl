// Fragment: appended to shaders/wgsl/lora.wgsl at commit 3637433 (it uses that file's Params,
// sk_* helpers and MODE), with binding 6 a zeroed u32 buffer the context kept. Measured and
// not kept: see BENCHMARKS.md, "LoRA decoding as one dispatch of queued items".

// ---- Queue form: few rows (decoding), one dispatch of queued items ----
// The skinny form has every workgroup compute its rows' whole x·A, so at one row a workgroup
// reads all of A, and each waits on memory twice in turn (x and A, then B and base). Here the
// work is a queue of items, taken in order from an atomic counter (`qs[0]`): first the x·A
// items (row tile, k slice), each summing one k slice of its rows' s·x·A into `qs` as f32 bits
// and then counting itself done in its tile's counter; then the t·B items (row tile, column
// block), which load their B and base first, wait (one thread spinning on an atomic) until
// every k slice of their tile is in, add the slices up and finish their columns.
// A t·B item waits only on items taken before it, by workgroups that are running and wait on
// nothing, so the wait ends whatever order or number of workgroups the device runs.
// The last workgroup out sets the counters back to 0 for the next dispatch.
//
// `qs` (u32 words): [0] the next item, [1] workgroups done, [2 ..] one counter per row tile,
// then the partial sums: [slice][row][rank rounded up to 4]. Sizes: K rows a tile (1, 2, 4),
// p.slices k slices of whole chunks, p.col_blocks column blocks of p.per_pass column chunks
// (WG / p.per_pass threads share a chunk, each a share of the rank quads).
// Partial sums go through atomics (to the device's coherent level) and are published by a
// storage barrier before the tile's counter moves.

@group(0) @binding(6) var<storage, read_write> qs: array<atomic<u32>>;
var<workgroup> q_item: u32;

fn q_tiles() -> u32 {
    return (p.rows + K - 1u) / K;
}

// Word of the partial sum of k slice sl, row m, rank j.
fn q_part(sl: u32, m: u32, j: u32) -> u32 {
    let r4 = (lora_rank() + 3u) / 4u * 4u;
    return 2u + q_tiles() + (sl * p.rows + m) * r4 + j;
}

// Ranks j .. j + 4 of slice sl's partial sums at row m.
fn q_quad(sl: u32, m: u32, j: u32) -> vec4<f32> {
    let w = q_part(sl, m, j);
    return vec4<f32>(bitcast<f32>(atomicLoad(&qs[w])), bitcast<f32>(atomicLoad(&qs[w + 1u])), bitcast<f32>(atomicLoad(&qs[w + 2u])),
                     bitcast<f32>(atomicLoad(&qs[w + 3u])));
}

// x·A item: k slice sl of row tile `tile` into the partial sums.
fn q_xa(f16: bool, tile: u32, sl: u32, lid: u32, sg: u32) {
    let m0 = tile * K;
    let nrow = min(K, p.rows - m0);
    let qp = sk_qp();
    let q = lid % qp;
    let lanes = WG / qp;
    let chunks_in = (p.k_in + 3u) / 4u;
    let per = (chunks_in + p.slices - 1u) / p.slices;
    let c_end = min(chunks_in, (sl + 1u) * per);
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    if (4u * q < lora_rank()) {
        for (var c = sl * per + lid / qp; c < c_end; c += 2u * lanes) {
            let k = 4u * c;
            // The trip's second chunk, or one past the k axis (reads as 0) when it lies in the
            // next slice.
            let k2 = select(p.k_in, 4u * (c + lanes), c + lanes < c_end);
            let a0 = sk_a(f16, k, q);
            let a1 = sk_a(f16, k + 1u, q);
            let a2 = sk_a(f16, k + 2u, q);
            let a3 = sk_a(f16, k + 3u, q);
            let b0 = sk_a(f16, k2, q);
            let b1 = sk_a(f16, k2 + 1u, q);
            let b2 = sk_a(f16, k2 + 2u, q);
            let b3 = sk_a(f16, k2 + 3u, q);
            let x0 = sk_x(f16, m0, 0u, nrow, k);
            let y0 = sk_x(f16, m0, 0u, nrow, k2);
            c0 = sk_mac(sk_mac(c0, x0, a0, a1, a2, a3), y0, b0, b1, b2, b3);
            if (K > 1u) {
                let x1 = sk_x(f16, m0, 1u, nrow, k);
                let y1 = sk_x(f16, m0, 1u, nrow, k2);
                c1 = sk_mac(sk_mac(c1, x1, a0, a1, a2, a3), y1, b0, b1, b2, b3);
            }
            if (K > 2u) {
                let x2 = sk_x(f16, m0, 2u, nrow, k);
                let y2 = sk_x(f16, m0, 2u, nrow, k2);
                let x3 = sk_x(f16, m0, 3u, nrow, k);
                let y3 = sk_x(f16, m0, 3u, nrow, k2);
                c2 = sk_mac(sk_mac(c2, x2, a0, a1, a2, a3), y2, b0, b1, b2, b3);
                c3 = sk_mac(sk_mac(c3, x3, a0, a1, a2, a3), y3, b0, b1, b2, b3);
            }
        }
    }
    // s·t of the slice into sk_t (sk_reduce scales it), then out to the partial sums.
    sk_reduce(c0, 0u, lid, sg, qp);
    if (K > 1u) {
        sk_reduce(c1, 1u, lid, sg, qp);
    }
    if (K > 2u) {
        sk_reduce(c2, 2u, lid, sg, qp);
        sk_reduce(c3, 3u, lid, sg, qp);
    }
    workgroupBarrier();
    let r4 = (lora_rank() + 3u) / 4u * 4u;
    for (var i = lid; i < nrow * r4; i += WG) {
        let m = i / r4;
        let j = i % r4;
        let v = sk_t[m * 32u + j / 4u];
        let e = select(select(v.w, v.z, j % 4u == 2u), select(v.y, v.x, j % 4u == 0u), j % 4u < 2u);
        atomicStore(&qs[q_part(sl, m0 + m, j)], bitcast<u32>(e));
    }
    storageBarrier();
    workgroupBarrier();
    if (lid == 0u) {
        atomicAdd(&qs[2u + tile], 1u);
    }
}

// t·B item: column block cb of row tile `tile`. Thread lid takes column chunk lid % per_pass
// and rank quads lid / per_pass, + G, + 2G, ... (G = WG / per_pass); its first quad of B and
// (G's first share) the base are loaded before the wait.
fn q_tb(f16: bool, tile: u32, cb: u32, lid: u32) {
    let m0 = tile * K;
    let nrow = min(K, p.rows - m0);
    let cpb = p.per_pass;
    let groups = WG / cpb;
    let g = lid / cpb;
    let chunks_out = (lora_out() + 3u) / 4u;
    let cc = cb * cpb + lid % cpb;
    let live = cc < chunks_out;
    let col = 4u * min(cc, chunks_out - 1u);
    let nl = min(4u, lora_out() - col);
    let aligned = lora_out() % 4u == 0u;
    let rq = (lora_rank() + 3u) / 4u;
    let r4 = rq * 4u;
    if (mode() == 3u) {
        // Merge: t is rows of A (times s), no x·A items to wait for.
        for (var i = lid; i < nrow * rq; i += WG) {
            let m = i / rq;
            let e = (m0 + m) * lora_rank() + 4u * (i % rq);
            sk_t[m * 32u + i % rq] = p.scale * ld4_at(f16, 1u, e, false, (m0 + m + 1u) * lora_rank());
        }
    } else {
        loop {
            if (atomicLoad(&qs[2u + tile]) >= p.slices) {
                break;
            }
        }
        storageBarrier();
        workgroupBarrier();
        // One thread a (row, rank quad): the quad's partial sums over the slices, whole vec4.
        for (var i = lid; i < nrow * rq; i += WG) {
            let m = i / rq;
            let j = 4u * (i % rq);
            var s0 = vec4<f32>(0.0);
            var s1 = vec4<f32>(0.0);
            var sl = 0u;
            for (; sl + 2u <= p.slices; sl += 2u) {
                s0 += q_quad(sl, m0 + m, j);
                s1 += q_quad(sl + 1u, m0 + m, j);
            }
            if (sl < p.slices) {
                s0 += q_quad(sl, m0 + m, j);
            }
            sk_t[m * 32u + i % rq] = s0 + s1;
        }
    }
    workgroupBarrier();
    // Before the wait: this thread's first rank quad of B, and the base of its rows.
    let b0 = sk_b(f16, 4u * g, col, aligned);
    let b1 = sk_b(f16, 4u * g + 1u, col, aligned);
    let b2 = sk_b(f16, 4u * g + 2u, col, aligned);
    let b3 = sk_b(f16, 4u * g + 3u, col, aligned);
    var v0 = vec4<f32>(0.0);
    var v1 = vec4<f32>(0.0);
    var v2 = vec4<f32>(0.0);
    var v3 = vec4<f32>(0.0);
    if (g == 0u && live) {
        v0 = base_at(f16, 0u, col, nl, aligned, m0, nrow);
        if (K > 1u) {
            v1 = base_at(f16, 1u, col, nl, aligned, m0, nrow);
        }
        if (K > 2u) {
            v2 = base_at(f16, 2u, col, nl, aligned, m0, nrow);
            v3 = base_at(f16, 3u, col, nl, aligned, m0, nrow);
        }
    }
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    if (g < rq) {
        let bq = mat4x4<f32>(b0, b1, b2, b3);
        a0 = bq * sk_t[g];
        if (K > 1u) {
            a1 = bq * sk_t[32u + g];
        }
        if (K > 2u) {
            a2 = bq * sk_t[64u + g];
            a3 = bq * sk_t[96u + g];
        }
        for (var jq = g + groups; jq < rq; jq += groups) {
            let bj = mat4x4<f32>(sk_b(f16, 4u * jq, col, aligned), sk_b(f16, 4u * jq + 1u, col, aligned),
                                 sk_b(f16, 4u * jq + 2u, col, aligned), sk_b(f16, 4u * jq + 3u, col, aligned));
            a0 += bj * sk_t[jq];
            if (K > 1u) {
                a1 += bj * sk_t[32u + jq];
            }
            if (K > 2u) {
                a2 += bj * sk_t[64u + jq];
                a3 += bj * sk_t[96u + jq];
            }
        }
    }
    // The rank groups' sums meet in sk_part ([group][row][chunk]); group 0 adds them to the
    // base and stores.
    if (groups > 1u) {
        sk_part[(g * K) * cpb + lid % cpb] = a0;
        if (K > 1u) {
            sk_part[(g * K + 1u) * cpb + lid % cpb] = a1;
        }
        if (K > 2u) {
            sk_part[(g * K + 2u) * cpb + lid % cpb] = a2;
            sk_part[(g * K + 3u) * cpb + lid % cpb] = a3;
        }
    }
    workgroupBarrier();
    if (g == 0u && live) {
        for (var h = 1u; h < groups; h++) {
            a0 += sk_part[(h * K) * cpb + lid];
            if (K > 1u) {
                a1 += sk_part[(h * K + 1u) * cpb + lid];
            }
            if (K > 2u) {
                a2 += sk_part[(h * K + 2u) * cpb + lid];
                a3 += sk_part[(h * K + 3u) * cpb + lid];
            }
        }
        finish(f16, 0u, col, nl, aligned, m0, nrow, v0 + a0);
        if (K > 1u) {
            finish(f16, 1u, col, nl, aligned, m0, nrow, v1 + a1);
        }
        if (K > 2u) {
            finish(f16, 2u, col, nl, aligned, m0, nrow, v2 + a2);
            finish(f16, 3u, col, nl, aligned, m0, nrow, v3 + a3);
        }
    }
}

fn queue(f16: bool, lid: u32, sg: u32, ngroups: u32) {
    let tiles = q_tiles();
    // The merge has no x·A items.
    let n_xa = select(tiles * p.slices, 0u, mode() == 3u);
    let total = n_xa + tiles * p.col_blocks;
    // One item a workgroup (as many workgroups as items), taken in order.
    if (lid == 0u) {
        q_item = atomicAdd(&qs[0], 1u);
    }
    let i = workgroupUniformLoad(&q_item);
    if (i < n_xa) {
        q_xa(f16, i / p.slices, i % p.slices, lid, sg);
    } else if (i < total) {
        let j = i - n_xa;
        q_tb(f16, j / p.col_blocks, j % p.col_blocks, lid);
    }
    if (lid == 0u && atomicAdd(&qs[1], 1u) == ngroups - 1u) {
        for (var t = 0u; t < tiles; t++) {
            atomicStore(&qs[2u + t], 0u);
        }
        for (var w = q_part(0u, 0u, 0u); w < q_part(p.slices, 0u, 0u); w++) {
            atomicStore(&qs[w], 0x7fc00000u);
        }
        atomicStore(&qs[1], 0u);
        atomicStore(&qs[0], 0u);
    }
}

@compute @workgroup_size(WG)
fn lora_f32_queue(@builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    queue(false, lid, sg, nwg.x * nwg.y * nwg.z);
}

@compute @workgroup_size(WG)
fn lora_f16_queue(@builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    queue(true, lid, sg, nwg.x * nwg.y * nwg.z);
}
