/* rng.c - PCG32 random numbers (M. O'Neill, "PCG: A Family of Simple Fast Space-Efficient
 * Statistically Good Algorithms for Random Number Generation", 2014; XSH-RR output).
 *
 * Each thread has its own default generator, so two threads never contend for (or
 * perturb) each other's stream; a bk_rng can also be owned by a model or a data loader.
 */
#include "internal.h"

#include <math.h>

/* A NULL generator means the thread's default one, as everywhere in the API. */
void bk_rng_seed(bk_rng *rng, uint64_t seed) {
    if (!rng) rng = bk_default_rng();
    /* pcg32_srandom(seed, 54): the reference initialisation with a fixed stream. */
    rng->state = 0;
    rng->inc = (54u << 1) | 1u;
    (void)bk_rng_u32(rng);
    rng->state += seed;
    (void)bk_rng_u32(rng);
}

/* An odd increment is what makes PCG's LCG full-period (Hull-Dobell); every state brick
 * makes has one (bk_rng_seed sets (54 << 1) | 1), so an even one is a damaged or forged
 * state. */
int bk_rng_set_state(bk_rng *rng, uint64_t state, uint64_t inc) {
    if (!(inc & 1)) {
        bk_set_error(
            "rng_set_state: the increment %016llx is even (a PCG32 state needs an odd "
            "one; the state is damaged)",
            (unsigned long long)inc);
        return -1;
    }
    if (!rng) rng = bk_default_rng();
    rng->state = state;
    rng->inc = inc;
    return 0;
}

uint32_t bk_rng_u32(bk_rng *rng) {
    if (!rng) rng = bk_default_rng();
    uint64_t old = rng->state;
    rng->state = old * 6364136223846793005ULL + rng->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

float bk_rng_uniform(bk_rng *rng) { return (float)(bk_rng_u32(rng) >> 8) * (1.0f / 16777216.0f); }

float bk_rng_normal(bk_rng *rng) {
    /* Box-Muller; u1 in (0, 1] so that log(u1) is finite. (NULL: bk_rng_uniform's default.) */
    float u1 = 1.0f - bk_rng_uniform(rng);
    float u2 = bk_rng_uniform(rng);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

static _Thread_local bk_rng default_rng;
static _Thread_local bool default_rng_ready;

bk_rng *bk_default_rng(void) {
    if (!default_rng_ready) {
        bk_rng_seed(&default_rng, 0);
        default_rng_ready = true;
    }
    return &default_rng;
}

void bk_manual_seed(uint64_t seed) {
    bk_rng_seed(&default_rng, seed);
    default_rng_ready = true;
}
