/* lm.h - what the files of `brick train-lm` and `brick generate` share (private to tools/):
 * the character-level language model and its file's metadata.
 *
 *   cmd_lm.c    the model (lm_build), the text reader, the model file's metadata, generate
 *   lm_train.c  train-lm: options, the training loop (on loop.c, as brick train),
 *               checkpoints and --resume
 */
#ifndef BRICK_LM_H
#define BRICK_LM_H

#include "cli.h"

#define LM_FORMAT "brick-lm-1"
#define LM_CKPT_FORMAT "brick-lm-checkpoint-1"

/* --arch, in the order of LM_ARCHS */
typedef enum { LM_TRANSFORMER, LM_LSTM, LM_GRU, LM_ARCH_COUNT } lm_arch;
/* "transformer", "lstm", "gru", NULL (a cli_option's choices) */
extern const char *const LM_ARCHS[LM_ARCH_COUNT + 1];
/* "learned", "sinusoidal", NULL */
extern const char *const LM_POSITIONS[3];

typedef struct lm_hparams {
    int64_t vocab, context, d_model, layers, heads, ff;
    bool learned; /* learned positions, else sinusoidal */
    lm_arch arch;
} lm_hparams;

/* The index of `name` in LM_ARCHS, or -1. */
int lm_arch_of(const char *name);
/* The model of hp with fresh weights (bk_default_rng); NULL with the library's error. */
bk_module *lm_build(const lm_hparams *hp);
/* The file's bytes without NUL, '\r' and bytes >= 128; malloc'ed, NULL with the error set
 * (naming the file). */
unsigned char *lm_read_text(const char *path, int64_t *n);

/* Metadata being assembled: the model file's keys, then a checkpoint's (lm_train.c). Keys
 * are static strings; values live in val[] or are borrowed (the vocabulary). */
#define LM_META_MAX 32
typedef struct lm_meta {
    int n;
    const char *keys[LM_META_MAX];
    const char *vals[LM_META_MAX];
    char val[LM_META_MAX][48];
} lm_meta;
/* Appends key = printf(fmt, ...) (cut to 47 characters). */
void lm_meta_add(lm_meta *md, const char *key, const char *fmt, ...) BK_PRINTF_FORMAT(3, 4);
/* The model file's metadata: "brick.format" = `format`, "brick.lm.vocab" (borrowed: it
 * must outlive md) and the hyperparameters "brick.lm.*", which generate reads back. */
void lm_meta_model(lm_meta *md, const char *format, const lm_hparams *hp, const char *vocab);

#endif
