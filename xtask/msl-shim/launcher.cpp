// Runs one MSL kernel on the CPU (`cargo xtask check-msl`): threadgroups one at a time, the
// threads of a threadgroup concurrently (one CPU thread each, real barriers), simdgroups of 32.
// Job file: name (u32 length + bytes), threads per group, groups x, groups y, 8 u32 of
// immediates, buffer count, each buffer (u64 length + bytes). The buffers are written back to
// the output file in the same format (count, then each).
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "kernels.inc"

// The qualifier macros of the shim end with the kernels.
#undef thread
#undef device
#undef constant
#undef kernel
#undef threadgroup

using metal::uint3;

struct Job {
    std::string name;
    uint threads = 0, gx = 0, gy = 0;
    uint32_t params[8] = {};
    std::vector<std::vector<uint8_t>> bufs;
};

struct LaunchIds {
    uint3 tg, ntg;
    uint lid, lane, sg, sg_size, n_sg;
};

using Fn = std::function<void(Job&, const LaunchIds&)>;

template <typename P> static P& params(Job& j) { return *reinterpret_cast<P*>(j.params); }
template <typename T> static T* buf(Job& j, size_t i) { return reinterpret_cast<T*>(j.bufs.at(i).data()); }

#define IDS i.tg, i.ntg, i.lid, i.lane, i.sg, i.sg_size, i.n_sg
#define SOFTMAX(NAME, T) {#NAME, [](Job& j, const LaunchIds& i) { NAME(params<RowParams>(j), buf<T>(j, 0), buf<T>(j, 1), IDS); }}
#define RMS(NAME, T) {#NAME, [](Job& j, const LaunchIds& i) { NAME(params<RowParams>(j), buf<T>(j, 0), buf<T>(j, 1), buf<T>(j, 2), IDS); }}
#define ADD_RMS(NAME, T) \
    {#NAME, [](Job& j, const LaunchIds& i) { NAME(params<RowParams>(j), buf<T>(j, 0), buf<T>(j, 1), buf<T>(j, 2), buf<T>(j, 3), buf<T>(j, 4), IDS); }}
// Entries for every form of a row family (`ROW_FORMS` in rows.h.metal).
#define SOFTMAX_FORM(NAME, T, WG, SUB, LOOP, K) SOFTMAX(NAME, T),
#define RMS_FORM(NAME, T, WG, SUB, LOOP, K) RMS(NAME, T),
#define ADD_RMS_FORM(NAME, T, WG, SUB, LOOP, K) ADD_RMS(NAME, T),
#define LORA(NAME, T) \
    {#NAME, [](Job& j, const LaunchIds& i) { NAME(params<LoraParams>(j), buf<T>(j, 0), buf<T>(j, 1), buf<T>(j, 2), buf<T>(j, 3), buf<T>(j, 4), i.tg, i.ntg, i.lid); }}

#define LORA_SKINNY(NAME, T, TM, WG)                                                                                        \
    {#NAME, [](Job& j, const LaunchIds& i) {                                                                            \
         NAME(params<LoraParams>(j), buf<T>(j, 0), buf<T>(j, 1), buf<T>(j, 2), buf<T>(j, 3), buf<T>(j, 4), i.tg, i.ntg, i.lid, i.sg_size); \
     }},

static const std::map<std::string, Fn> KERNELS = {
    ROW_FORMS(SOFTMAX_FORM, softmax_f32, float) ROW_FORMS(SOFTMAX_FORM, softmax_f16, half)
    ROW_FORMS(RMS_FORM, rms_norm_f32, float) ROW_FORMS(RMS_FORM, rms_norm_f16, half)
    ROW_FORMS(ADD_RMS_FORM, add_rms_norm_f32, float) ROW_FORMS(ADD_RMS_FORM, add_rms_norm_f16, half)
    LORA(lora_f32, float), LORA(lora_f16, half),
#define SOFTMAX_PERSIST(NAME, WG, K) SOFTMAX(NAME, half),
    SOFTMAX_PERSIST_FORMS(SOFTMAX_PERSIST)
    LORA_SKINNY_FORMS(LORA_SKINNY)
};

static bool read_exact(FILE* f, void* p, size_t n) { return n == 0 || fread(p, 1, n, f) == n; }

int main(int argc, char** argv) {
    if (argc == 2 && std::string(argv[1]) == "--list") {
        for (auto& [name, _] : KERNELS) printf("%s\n", name.c_str());
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: emulator JOB OUT | --list\n");
        return 2;
    }
    FILE* in = fopen(argv[1], "rb");
    if (!in) return 2;
    Job job;
    uint32_t len = 0;
    read_exact(in, &len, 4);
    job.name.resize(len);
    read_exact(in, job.name.data(), len);
    uint32_t nbuf = 0;
    if (!read_exact(in, &job.threads, 4) || !read_exact(in, &job.gx, 4) || !read_exact(in, &job.gy, 4) ||
        !read_exact(in, job.params, 32) || !read_exact(in, &nbuf, 4)) {
        fprintf(stderr, "short job file\n");
        return 2;
    }
    for (uint32_t b = 0; b < nbuf; ++b) {
        uint64_t n = 0;
        read_exact(in, &n, 8);
        job.bufs.emplace_back(n);
        if (!read_exact(in, job.bufs.back().data(), n)) return 2;
    }
    fclose(in);
    auto it = KERNELS.find(job.name);
    if (it == KERNELS.end() || job.threads % metal::SIMD_WIDTH != 0) {
        fprintf(stderr, "unknown kernel %s or threads %u not a multiple of 32\n", job.name.c_str(), job.threads);
        return 2;
    }
    metal::Group group(job.threads);
    std::barrier<> end_of_group(job.threads);
    std::vector<std::thread> threads;
    for (uint lid = 0; lid < job.threads; ++lid) {
        threads.emplace_back([&, lid] {
            metal::this_lane = {&group, lid};
            for (uint y = 0; y < job.gy; ++y) {
                for (uint x = 0; x < job.gx; ++x) {
                    LaunchIds ids{{x, y, 0}, {job.gx, job.gy, 1}, lid, lid % metal::SIMD_WIDTH, lid / metal::SIMD_WIDTH,
                            metal::SIMD_WIDTH, job.threads / metal::SIMD_WIDTH};
                    it->second(job, ids);
                    end_of_group.arrive_and_wait(); // the next threadgroup starts when this one has ended
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    FILE* out = fopen(argv[2], "wb");
    if (!out) return 2;
    fwrite(&nbuf, 4, 1, out);
    for (auto& b : job.bufs) {
        uint64_t n = b.size();
        fwrite(&n, 8, 1, out);
        fwrite(b.data(), 1, n, out);
    }
    fclose(out);
    return 0;
}
