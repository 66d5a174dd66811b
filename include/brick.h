/* brick.h - neural networks out of layers and blocks, in plain C.
 *
 * This is the whole public API: this file states the rules once and includes its parts,
 * include/brick/<area>.h (tensor, autograd, ops, nn, train, data, io, dist), where every
 * function is declared with its contract. A quick tour:
 *
 *   bk_tensor *X   = bk_rand(BK_SHAPE(2, 20));             // (2, 20), in the step arena
 *   bk_module *net = bk_nn_sequential(3, bk_nn_linear(20, 256), bk_nn_relu(),
 *                                        bk_nn_linear(256, 10));
 *   bk_tensor *Y   = bk_forward(net, X);                    // (2, 10)
 *   bk_tensor *L   = bk_sum(Y);                             // scalar
 *   bk_backward(L);                                         // fills every param's grad
 *   bk_arena_reset(NULL);                                   // frees X, Y, L and the tape
 *   bk_module_free(net);
 *
 * Ownership (read this once; everything else follows from it):
 *   - Every tensor returned by an op (bk_add, bk_matmul, bk_forward, ...) and by the
 *     creation helpers (bk_zeros, bk_rand, bk_from_data, ...) lives in the calling thread's
 *     current arena. One call, bk_arena_reset(), releases all of them together with the
 *     autograd tape that links them. Never free such a tensor yourself. Once warmed up, an
 *     arena reuses its memory, so a training step allocates nothing.
 *   - A module owns its parameters, buffers and children and frees them recursively in
 *     bk_module_free(). Parameters and buffers are never in an arena; their gradients live
 *     with them and accumulate until bk_module_zero_grad().
 *   - bk_tensor_new() makes a heap tensor that the caller owns and frees with
 *     bk_tensor_free() (data sets, inputs you keep across steps).
 *   - Functions returning `const char *` or a borrowed pointer say "do not free".
 *
 * Errors: no brick function exits or aborts on bad input. Failing functions return NULL
 * (or -1, or NaN for those returning a float) and leave a message in a thread-local
 * buffer, read with bk_last_error(); a function returning nothing leaves the message and
 * does nothing. Every op given a NULL input returns NULL without overwriting the first
 * message, so a forward can be checked once at its end. Messages name the op and the
 * shapes involved, e.g.
 *   "matmul: mat1 and mat2 shapes cannot be multiplied (2x20 and 30x256)".
 * A tensor whose arena was reset, or memory that is not a tensor brick made, is reported
 * as "not a live tensor"; a block that was freed or not made by bk_module_new as "not a
 * live module" (detected as far as the memory still says so; tests/test_api_misuse.c
 * sweeps every function here with such arguments). Free functions accept NULL, as free().
 *
 * Threads: arenas, the grad mode and the default random generator are per thread; modules
 * may be used from several threads only if each thread has its own arena and only one
 * runs backward into a module's gradients at a time.
 */
#ifndef BRICK_H
#define BRICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BK_VERSION_MAJOR 0
#define BK_VERSION_MINOR 1
#define BK_VERSION_PATCH 0
#define BK_VERSION_STRING "0.1.0"

#define BK_MAX_DIMS 8 /* rank limit of a tensor */

/* After a printf-like function's declaration: argument fmt is its format and the values
 * start at argument first, so that GCC and Clang check the calls (other compilers: nothing). */
#if defined(__GNUC__)
#define BK_PRINTF_FORMAT(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define BK_PRINTF_FORMAT(fmt, first)
#endif

/* The API by area, each function declared with its contract in its part. */
#include "brick/tensor.h"
#include "brick/autograd.h"
#include "brick/ops.h"
#include "brick/nn.h"
#include "brick/train.h"
#include "brick/data.h"
#include "brick/io.h"
#include "brick/dist.h"

#ifdef __cplusplus
}
#endif
#endif /* BRICK_H */
