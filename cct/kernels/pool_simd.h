/* Eight MAX-pooling windows at once, for float planes and a horizontal stride of 2 (3x3/2 and
 * 2x2/2 pooling: nearly every pooling layer of Caffe's nets), written with GCC's vector extensions
 * so that the compiler maps them onto whatever vector unit it targets (AVX2 with -march=native,
 * two SSE halves otherwise).
 *
 * Each of the eight windows is scanned in Caffe's order (rows, then columns) with a strict '>'
 * from -FLT_MAX, so every lane keeps Caffe's first maximum and its index: the lanes are eight
 * independent Caffe loops run side by side.
 */
#ifndef CCT_POOL_SIMD_H
#define CCT_POOL_SIMD_H

#include <float.h>
#include <string.h>

typedef float cct_v8f __attribute__((vector_size(32)));
typedef int cct_v8i __attribute__((vector_size(32)));

/* Windows of outputs w0/2 .. w0/2 + 7 in effect: output k's window covers rows [h0, h1) and
 * columns [w0 + 2k, w0 + 2k + kernel_w), all inside the plane. top[k] gets the maximum, where[k]
 * its flat index in the plane (-1 when no value beats -FLT_MAX). Reads only inside the windows. */
static inline void cct_max8_stride2(const float *plane, int width, int h0, int h1, int w0,
                                    int kernel_w, float *top, int *where)
{
    const cct_v8i pick = {0, 2, 4, 6, 9, 11, 13, 15};  /* (a, b) -> columns 0, 2, ..., 14 */
    const cct_v8i lanes = {0, 2, 4, 6, 8, 10, 12, 14};
    cct_v8f best = {-FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX,
                    -FLT_MAX};
    cct_v8i found = {-1, -1, -1, -1, -1, -1, -1, -1};
    for (int h = h0; h < h1; h++) {
        const float *row = plane + (long)h * width + w0;
        for (int j = 0; j < kernel_w; j++) {
            cct_v8f a, b, v;
            int at = h * width + w0 + j;
            cct_v8i index = lanes + (cct_v8i){at, at, at, at, at, at, at, at};
            /* columns j .. j+7 and j+7 .. j+14: the last lane of b is column j + 14, the last
             * column output 7 needs, so nothing past the windows is read */
            memcpy(&a, row + j, sizeof a);
            memcpy(&b, row + j + 7, sizeof b);
            v = __builtin_shuffle(a, b, pick);
            cct_v8i take = v > best;
            best = (cct_v8f)(((cct_v8i)v & take) | ((cct_v8i)best & ~take));
            found = (index & take) | (found & ~take);
        }
    }
    memcpy(top, &best, sizeof best);
    memcpy(where, &found, sizeof found);
}

#endif
