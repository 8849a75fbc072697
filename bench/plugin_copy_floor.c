/* The floor under the plugin's capture and playback, for bench/plugin_cpu.py: what copying the same bytes costs on
 * this machine, with no plugin and no host around it. Per block of BLOCK stereo frames, the median time of
 *   pass     the input to the output (hot buffers: the empty plugin's whole work)
 *   capture  pass, and the input again into a planar ring of the capture's size (8 MiB: cold memory, as the plugin's
 *            capture ring is, since each block goes where the ring last was ~21 s of audio ago)
 *   playing  capture, with the output copied from a 10 s planar variant instead of the input (read cold, once)
 * over 10 s of 48 kHz audio. Built by plugin_cpu.py with DPF's optimisation flags.
 *   plugin_copy_floor BLOCK    prints "pass NS capture NS playing NS"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { CHANNELS = 2, RING_FRAMES = 1 << 20, SONG_FRAMES = 10 * 48000 };

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int by_value(const void* a, const void* b)
{
    const double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

static volatile float sink;

/* Written once, as the plugin's vectors are when they are made (a compiler turns malloc and a zeroing memset into
 * calloc, whose pages would first be touched in the timed copies). */
static float* filled(size_t count)
{
    float* p = malloc(count * sizeof(float));
    if (p == NULL) {
        fputs("plugin_copy_floor: out of memory\n", stderr);
        exit(1);
    }
    for (size_t i = 0; i < count; ++i)
        p[i] = (float)(i & 255) / 256.0f;
    return p;
}

/* mode 0 pass, 1 capture, 2 playing: the median ns per block */
static double median_ns(int mode, unsigned block)
{
    const unsigned blocks = SONG_FRAMES / block;
    float *in[CHANNELS], *out[CHANNELS], *ring = filled((size_t)CHANNELS * RING_FRAMES), *variant[CHANNELS];
    for (int c = 0; c < CHANNELS; ++c) {
        in[c] = filled(block);
        out[c] = filled(block);
        variant[c] = filled(SONG_FRAMES);
    }
    double* took = malloc(sizeof(double) * blocks);
    for (unsigned b = 0, at = 0; b < blocks; ++b, at = (at + block) & (RING_FRAMES - 1)) {
        for (int c = 0; c < CHANNELS; ++c) /* the host writes the input before each call, as clap_host does */
            for (unsigned i = 0; i < block; ++i)
                in[c][i] = (float)(b + i);
        const double start = now_ns();
        for (int c = 0; c < CHANNELS; ++c) {
            memcpy(out[c], mode == 2 ? variant[c] + (size_t)b * block : in[c], sizeof(float) * block);
            if (mode > 0)
                memcpy(ring + (size_t)c * RING_FRAMES + at, in[c], sizeof(float) * block);
        }
        took[b] = now_ns() - start;
        sink += out[CHANNELS - 1][block - 1] + ring[at]; /* read back: no copy is optimised away */
    }
    qsort(took, blocks, sizeof(double), by_value);
    const double median = took[blocks / 2];
    free(took);
    free(ring);
    for (int c = 0; c < CHANNELS; ++c)
        free(in[c]), free(out[c]), free(variant[c]);
    return median;
}

int main(int argc, char** argv)
{
    const unsigned block = argc == 2 ? (unsigned)atoi(argv[1]) : 0;
    if (block == 0 || block > 8192 || (RING_FRAMES % block) != 0) {
        fputs("usage: plugin_copy_floor BLOCK (a power of two up to 8192)\n", stderr);
        return 2;
    }
    printf("pass %.0f capture %.0f playing %.0f\n", median_ns(0, block), median_ns(1, block), median_ns(2, block));
    return 0;
}
