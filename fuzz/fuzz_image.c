/* fuzz_image.c - the image reader (bk_image_load): PNG and JPEG through stb_image when the
 * build has it, PGM P2/P5 always, then the conversion and the resize.
 *
 * The input: byte 0 picks the channels (even: 1, odd: 3), bytes 1 and 2 the output height
 * and width (1..64 each), the rest is the file. bk_image_load must fail with an error
 * naming the file, or return a (C, H, W) tensor whose values lie in [0, 1] (the resize's
 * weights are non-negative and sum to 1; a float rounding of 1e-5 is allowed).
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp */
#endif
#include "fuzz.h"

FUZZ_TARGET(image) {
    if (size < 3) return 0;
    fuzz_begin();
    int C = data[0] % 2 ? 3 : 1;
    int64_t H = data[1] % 64 + 1, W = data[2] % 64 + 1;
    const char *path = fuzz_file("in0", data + 3, size - 3);
    bk_image_info info;
    bk_tensor *t = bk_image_load(path, C, H, W, &info);
    if (!t) {
        FUZZ_ASSERT(strstr(bk_last_error(), "image: "));
        fuzz_end();
        return 0;
    }
    FUZZ_ASSERT(t->ndim == 3 && t->shape[0] == C && t->shape[1] == H && t->shape[2] == W);
    FUZZ_ASSERT(info.height >= 1 && info.width >= 1 && info.channels >= 1 && info.channels <= 4);
    for (int64_t i = 0; i < t->numel; i++) FUZZ_ASSERT(t->data[i] >= -1e-5f && t->data[i] <= 1.00001f);
    FUZZ_ASSERT(info.border_mean >= -1e-5 && info.border_mean <= 1.00001);
    bk_tensor_free(t);
    fuzz_end();
    return 0;
}
