/* checkpoint.c - training checkpoints: a module's state dict plus an optimizer's state in
 * one safetensors file.
 *
 * Layout (docs/cli.md, "Checkpoints"):
 *   - every entry of the module's state dict under its dotted name ("1.weight");
 *   - every optimizer state tensor under "optim.<state name>" ("optim.1.weight.exp_avg",
 *     "optim.1.weight.step"), in bk_optim_state_name order;
 *   - the caller's string metadata (the CLI stores "brick.arch", epochs, rng states, ...).
 * A state dict name can never start with "optim." unless a block has a child named
 * "optim"; such a module is refused at save time rather than written ambiguously.
 *
 * The optimizer is seen only through its public state interface (bk_optim_state_count,
 * _name, _tensor): named tensors, its scalars (the step counts) included as 1-element
 * tensors.
 *
 * Saving goes through bk_safetensors_save, so it is atomic. Loading (from a path, or from
 * a file already read, so that a caller who also needs its metadata reads it once) checks
 * the whole file first - every module and optimizer name present with the right shape, no
 * unexpected tensor - and copies only when everything matches, so a failed load changes
 * nothing.
 */
#include "internal.h"

#include <stdlib.h>

#define OPTIM_PREFIX "optim."

/* Every tensor of a checkpoint, in file order: the model's state dict, then the
 * optimizer's state under "optim.<state name>" (the names the optimizer gives through
 * its public state interface, bk_optim_state_*). */
typedef struct ckpt_list {
    bk_param_list *model;
    int n;               /* model + optimizer tensors */
    const char **names;  /* borrowed from model, or optim_names */
    bk_tensor **tensors; /* borrowed */
    char **optim_names;  /* owned "optim.<state name>" */
    int n_optim;
} ckpt_list;

static void ckpt_list_free(ckpt_list *c) {
    for (int i = 0; c->optim_names && i < c->n_optim; i++) bk__free(c->optim_names[i]);
    bk__free(c->optim_names);
    bk__free(c->names);
    bk__free(c->tensors);
    bk_param_list_free(c->model);
}

/* Lists m's and o's (may be NULL) tensors for `who`. 0, or -1 with an error naming path. */
static int ckpt_list_make(ckpt_list *c, const char *who, const char *path, const bk_module *m,
                          const bk_optim *o) {
    memset(c, 0, sizeof *c);
    c->model = bk_module_named(m, BK_STATE);
    if (!c->model) {
        bk__error_prefix("%s: %s", who, path);
        return -1;
    }
    c->n_optim = o ? bk_optim_state_count(o) : 0;
    int n_model = c->model->n;
    c->n = n_model + c->n_optim;
    c->names = bk__calloc((size_t)c->n + 1, sizeof *c->names);
    c->tensors = bk__calloc((size_t)c->n + 1, sizeof *c->tensors);
    c->optim_names = bk__calloc((size_t)c->n_optim + 1, sizeof *c->optim_names);
    if (!c->names || !c->tensors || !c->optim_names) goto oom;
    for (int i = 0; i < n_model; i++) {
        c->names[i] = c->model->names[i];
        c->tensors[i] = c->model->tensors[i];
    }
    for (int i = 0; i < c->n_optim; i++) {
        const char *s = bk_optim_state_name(o, i);
        size_t len = strlen(OPTIM_PREFIX) + strlen(s) + 1;
        if (!(c->optim_names[i] = bk__malloc(len))) goto oom;
        snprintf(c->optim_names[i], len, OPTIM_PREFIX "%s", s);
        c->names[n_model + i] = c->optim_names[i];
        c->tensors[n_model + i] = bk_optim_state_tensor(o, i);
    }
    return 0;
oom:
    bk_set_error("%s: %s: out of memory", who, path);
    return -1;
}

int bk_checkpoint_save(const char *path, const bk_module *m, const bk_optim *o, int n_meta,
                       const char *const *meta_keys, const char *const *meta_values) {
    if (!path) {
        bk_set_error("checkpoint_save: path is NULL");
        return -1;
    }
    if (!bk__module_ok(m, "checkpoint_save")) return -1;
    ckpt_list c;
    int rc = -1;
    if (ckpt_list_make(&c, "checkpoint_save", path, m, o) != 0) goto done;
    for (int i = 0; i < c.model->n; i++) {
        if (!strncmp(c.names[i], OPTIM_PREFIX, strlen(OPTIM_PREFIX))) {
            bk_set_error(
                "checkpoint_save: %s: the model's state name \"%s\" clashes with the "
                "optimizer prefix \"" OPTIM_PREFIX "\"",
                path, c.names[i]);
            goto done;
        }
    }
    rc = bk_safetensors_save(path, c.n, c.names, (const bk_tensor *const *)c.tensors, n_meta, meta_keys,
                             meta_values);
done:
    ckpt_list_free(&c);
    return rc;
}

int bk_checkpoint_load(const char *path, bk_module *m, bk_optim *o) {
    if (!bk__module_ok(m, "checkpoint_load")) return -1; /* before reading a whole file */
    if (!path) {
        bk_set_error("checkpoint_load: path is NULL");
        return -1;
    }
    bk_safetensors *st = bk_safetensors_load(path); /* a failure's message names the file */
    int rc = st ? bk_checkpoint_load_from(st, m, o) : -1;
    bk_safetensors_free(st);
    return rc;
}

int bk_checkpoint_load_from(const bk_safetensors *st, bk_module *m, bk_optim *o) {
    if (!st) {
        bk_set_error("checkpoint_load: file is NULL");
        return -1;
    }
    if (!bk__module_ok(m, "checkpoint_load")) return -1;
    const char *path = bk__safetensors_path(st);
    int rc = -1;
    ckpt_list c;
    bk__st_report r = {0};
    bk_tensor **src = NULL;
    if (ckpt_list_make(&c, "checkpoint_load", path, m, o) != 0) goto done;
    if (!(src = bk__calloc((size_t)c.n + 1, sizeof *src))) {
        bk_set_error("checkpoint_load: %s: out of memory", path);
        goto done;
    }

    /* 1. Match everything; change nothing yet. Every tensor of the file must be used,
     * except the optimizer's when none is given. */
    if (bk__safetensors_match(st, c.n, c.names, c.tensors, "", o ? NULL : OPTIM_PREFIX, src, &r) != 0) {
        bk__error_prefix("checkpoint_load");
        goto done;
    }
    if (r.n_missing || r.n_unexpected || r.n_mismatch) {
        char what[64] = "";
        if (o) snprintf(what, sizeof what, " and %s optimizer", bk_optim_name(o));
        if (r.missing.oom || r.unexpected.oom || r.mismatch.oom)
            bk_set_error(
                "checkpoint_load: %s does not match the %s model%s (out of memory "
                "while listing the differences)",
                path, bk_module_name(m), what);
        else
            bk_set_error("checkpoint_load: %s does not match the %s model%s:%s%s%s%s%s%s", path,
                         bk_module_name(m), what, r.n_missing ? " missing: " : "",
                         r.n_missing ? r.missing.p : "",
                         r.n_unexpected ? (r.n_missing ? "; unexpected: " : " unexpected: ") : "",
                         r.n_unexpected ? r.unexpected.p : "",
                         r.n_mismatch
                             ? (r.n_missing || r.n_unexpected ? "; shape mismatch: " : " shape mismatch: ")
                             : "",
                         r.n_mismatch ? r.mismatch.p : "");
        goto done;
    }

    /* 2. Everything matches: copy. */
    for (int i = 0; i < c.n; i++)
        if (c.tensors[i]->numel > 0) bk_copy(c.tensors[i], src[i]);
    rc = 0;
done:
    bk__st_report_free(&r);
    bk__free(src);
    ckpt_list_free(&c);
    return rc;
}
