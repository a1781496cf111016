/* cycles per block of every kernel, data resident in L2 (not a test; throwaway) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#include "quant.h"
#include "quant_ref.h"
const char *quant_x86_install_level(int level, struct quant_traits *table, int n);
const char *old_quant_x86_install_level(int level, struct quant_traits *table, int n);
void exp_q4k_v256(int n, float *s, const void *w, const void *a);
void exp_q4_0_v256(int n, float *s, const void *w, const void *a);
void exp_q6k_v256(int n, float *s, const void *w, const void *a);
void exp_q4k_pack(int n, float *s, const void *w, const void *a);
static double now(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static double ghz(void){ double best=1e9; for(int r=0;r<5;r++){ long n=100000000; double t=now(); long x=1, one=1; __asm__ volatile("1: imul %2,%0\n imul %2,%0\n imul %2,%0\n imul %2,%0\n sub $4,%1\n jnz 1b" : "+r"(x), "+r"(n) : "r"(one)); t=now()-t; if(t<best)best=t;} return 3.0*100000000.0/best/1e9; }
int main(int argc, char **argv)
{
    static struct quant_traits tab[5][QTYPE_COUNT];
    for (int l = 1; l < 3; l++) quant_x86_install_level(l, tab[l], QTYPE_COUNT);
    for (int l = 1; l < 3; l++) old_quant_x86_install_level(l, tab[l + 2], QTYPE_COUNT);
    static const int order[5] = {3, 1, 4, 2, 0};
    for (int l = 0; l < QTYPE_COUNT; l++) tab[0][l].vec_dot = tab[2][l].vec_dot;
    tab[0][QTYPE_Q4_K].vec_dot = exp_q4k_pack; tab[0][QTYPE_Q4_0].vec_dot = exp_q4_0_v256; tab[0][QTYPE_Q6_K].vec_dot = exp_q6k_v256;
    const double f = ghz();
    printf("core clock ~%.2f GHz\n", f);
    struct { enum qtype id; const char *name; int blck, wsize, asize; enum qtype aid; } ts[] = {
        {QTYPE_Q4_0,"q4_0",32,18,34,QTYPE_Q8_0},{QTYPE_Q4_1,"q4_1",32,20,36,QTYPE_Q8_1},{QTYPE_Q5_0,"q5_0",32,22,34,QTYPE_Q8_0},
        {QTYPE_Q5_1,"q5_1",32,24,36,QTYPE_Q8_1},{QTYPE_Q8_0,"q8_0",32,34,34,QTYPE_Q8_0},{QTYPE_Q2_K,"q2_K",256,84,292,QTYPE_Q8_K},
        {QTYPE_Q3_K,"q3_K",256,110,292,QTYPE_Q8_K},{QTYPE_Q4_K,"q4_K",256,144,292,QTYPE_Q8_K},{QTYPE_Q5_K,"q5_K",256,176,292,QTYPE_Q8_K},
        {QTYPE_Q6_K,"q6_K",256,210,292,QTYPE_Q8_K},{QTYPE_F16,"f16",1,2,4,QTYPE_F32},{QTYPE_F32,"f32",1,4,4,QTYPE_F32}};
    const int n = 4096, rows = argc > 1 ? atoi(argv[1]) : 16;
    uint8_t *w = malloc(4096 * 4 * rows), *a = malloc(4096 * 4);
    float *x = malloc(4096 * 4);
    srand(1);
    for (int i = 0; i < 4096; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    printf("%-5s %16s %16s %16s %16s  (cycles per 256 elements [GB/s])\n", "type", "old avx2", "new avx2", "old avx512", "new avx512"); /* last column: experiment */
    for (size_t t = 0; t < sizeof(ts)/sizeof(ts[0]); t++) {
        const size_t row = (size_t)n / ts[t].blck * ts[t].wsize;
        for (size_t i = 0; i < row * rows; i++) w[i] = (uint8_t)rand();
        /* sane fp16 scales */
        if (ts[t].blck > 1) for (int r = 0; r < rows * n / ts[t].blck; r++) {
            uint8_t *b = w + (size_t)r * ts[t].wsize; uint16_t h = 0x1c00 | (rand() & 0x3ff);
            int off = ts[t].id == QTYPE_Q6_K ? 208 : ts[t].id == QTYPE_Q3_K ? 108 : ts[t].id == QTYPE_Q2_K ? 80 : 0;
            memcpy(b + off, &h, 2); if (ts[t].id == QTYPE_Q2_K || ts[t].id == QTYPE_Q4_K || ts[t].id == QTYPE_Q5_K || ts[t].id == QTYPE_Q4_1 || ts[t].id == QTYPE_Q5_1) memcpy(b + off + 2, &h, 2); }
        else for (int i = 0; i < n * rows; i++) { if (ts[t].id == QTYPE_F16) { uint16_t h = 0x3000 | (rand() & 0x3ff); memcpy(w + 2*i, &h, 2);} else { float v = x[i % n]; memcpy(w + 4*i, &v, 4);} }
        const struct quant_traits *at = quant_traits_get(ts[t].aid);
        if (ts[t].aid == QTYPE_F32) memcpy(a, x, 4 * n); else at->from_f32(x, a, n);
        { float r, v; quant_traits_get(ts[t].id)->vec_dot(n, &r, w, a); tab[0][ts[t].id].vec_dot(n, &v, w, a);
          if (fabsf(r - v) > 1e-4f * fabsf(r) + 1e-6f) printf("# %s experiment MISMATCH ref %g got %g\n", ts[t].name, r, v); }
        printf("%-5s", ts[t].name);
        for (int oi = 0; oi < 5; oi++) { const int l = order[oi];
            double best = 1e9; volatile float sink = 0;
            for (int rep = 0; rep < 30; rep++) {
                double t0 = now(); float acc = 0;
                for (int r = 0; r < rows; r++) { float s; tab[l][ts[t].id].vec_dot(n, &s, w + r * row, a); acc += s; }
                double dt = now() - t0; sink += acc; if (dt < best) best = dt;
            }
            const double cyc = best * f * 1e9 / ((double)rows * n / 256);
            printf(" %8.1f [%5.1f]", cyc, (double)rows * row / best / 1e9);
        }
        printf("\n");
    }
    return 0;
}
