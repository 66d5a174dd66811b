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
 * Saving goes through bk_safetensors_save, so it is atomic. Loading (from a path, or from
 * a file already read, so that a caller who also needs its metadata reads it once) checks
 * the whole file first - every module and optimizer name present with the right shape, no
 * unexpected tensor - and copies only when everything matches, so a failed load changes
 * nothing.
 */
#include "internal.h"

#include <stdlib.h>

#define OPTIM_PREFIX "optim."

/* A ", "-separated list of names for a message (truncated quietly; it is a message). */
typedef struct name_list {
    char *buf; /* LIST_BYTES */
    int n;     /* items added: an empty name adds no characters, so the text cannot say */
} name_list;
#define LIST_BYTES 4096

static void list_add(name_list *l, const char *item) {
    size_t len = strlen(l->buf);
    if (len + 1 < LIST_BYTES)
        snprintf(l->buf + len, LIST_BYTES - len, "%s%s", l->n ? ", " : "", item[0] ? item : "\"\"");
    l->n++;
}

int bk_checkpoint_save(const char *path, const bk_module *m, const bk_optim *o, int n_meta,
                       const char *const *meta_keys, const char *const *meta_values) {
    if (!path) {
        bk_set_error("checkpoint_save: path is NULL");
        return -1;
    }
    if (!bk__module_ok(m, "checkpoint_save")) return -1;
    bk_param_list *l = bk_module_named(m, BK_STATE);
    if (!l) {
        bk__error_prefix("checkpoint_save: %s", path);
        return -1;
    }
    int rc = -1;
    int n_opt = o ? bk_optim_state_count(o) : 0;
    size_t total = (size_t)l->n + (size_t)n_opt;
    const char **names = bk__calloc(total + 1, sizeof *names);
    const bk_tensor **tensors = bk__calloc(total + 1, sizeof *tensors);
    char **owned = bk__calloc((size_t)n_opt + 1, sizeof *owned);
    if (!names || !tensors || !owned) {
        bk_set_error("checkpoint_save: %s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < l->n; i++) {
        if (!strncmp(l->names[i], OPTIM_PREFIX, strlen(OPTIM_PREFIX))) {
            bk_set_error("checkpoint_save: %s: the model's state name \"%s\" clashes with the "
                         "optimizer prefix \"" OPTIM_PREFIX "\"", path, l->names[i]);
            goto done;
        }
        names[i] = l->names[i];
        tensors[i] = l->tensors[i];
    }
    for (int i = 0; i < n_opt; i++) {
        const char *s = bk_optim_state_name(o, i);
        size_t len = strlen(OPTIM_PREFIX) + strlen(s) + 1;
        owned[i] = bk__malloc(len);
        if (!owned[i]) {
            bk_set_error("checkpoint_save: %s: out of memory", path);
            goto done;
        }
        snprintf(owned[i], len, OPTIM_PREFIX "%s", s);
        names[l->n + i] = owned[i];
        tensors[l->n + i] = bk_optim_state_tensor(o, i);
    }
    rc = bk_safetensors_save(path, (int)total, names, tensors, n_meta, meta_keys, meta_values);
done:
    for (int i = 0; owned && i < n_opt; i++) bk__free(owned[i]);
    bk__free(owned);
    bk__free(names);
    bk__free(tensors);
    bk_param_list_free(l);
    return rc;
}

/* Matches `want` (a model or optimizer tensor) against file tensor `name`: the file's
 * tensor, or NULL after adding to the missing or mismatch list. */
static bk_tensor *match(const bk_safetensors *st, const char *name, const bk_tensor *want,
                        name_list *missing, name_list *mismatch) {
    bk_tensor *t = bk_safetensors_get(st, name); /* a miss is reported below, as a list */
    if (!t) {
        list_add(missing, name);
        return NULL;
    }
    if (!bk_same_shape(t, want)) {
        char a[128], b[128], item[512];
        snprintf(item, sizeof item, "%s %s in file vs %s", name, bk_shape_str(t, a, sizeof a),
                 bk_shape_str(want, b, sizeof b));
        list_add(mismatch, item);
        return NULL;
    }
    return t;
}

int bk_checkpoint_load(const char *path, bk_module *m, bk_optim *o) {
    if (!path) {
        bk_set_error("checkpoint_load: path is NULL");
        return -1;
    }
    if (!bk__module_ok(m, "checkpoint_load")) return -1;
    bk_safetensors *st = bk_safetensors_load(path);
    if (!st) return -1; /* the message names the file */
    int rc = bk_checkpoint_load_from(st, m, o);
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
    bk_param_list *l = bk_module_named(m, BK_STATE);
    int n_opt = o ? bk_optim_state_count(o) : 0;
    int n_file = bk_safetensors_count(st);
    bk_tensor **src = bk__calloc((size_t)(l ? l->n : 0) + (size_t)n_opt + 1, sizeof *src);
    name_list missing = {bk__calloc(LIST_BYTES, 1), 0}, unexpected = {bk__calloc(LIST_BYTES, 1), 0},
              mismatch = {bk__calloc(LIST_BYTES, 1), 0};
    char *name = NULL;
    if (!l) {
        bk__error_prefix("checkpoint_load: %s", path);
        goto done;
    }
    if (!src || !missing.buf || !unexpected.buf || !mismatch.buf) {
        bk_set_error("checkpoint_load: %s: out of memory", path);
        goto done;
    }

    /* 1. Match everything; change nothing yet. */
    for (int i = 0; i < l->n; i++)
        src[i] = match(st, l->names[i], l->tensors[i], &missing, &mismatch);
    for (int i = 0; i < n_opt; i++) {
        const char *s = bk_optim_state_name(o, i);
        size_t len = strlen(OPTIM_PREFIX) + strlen(s) + 1;
        char *full = bk__realloc(name, len);
        if (!full) {
            bk_set_error("checkpoint_load: %s: out of memory", path);
            goto done;
        }
        name = full;
        snprintf(name, len, OPTIM_PREFIX "%s", s);
        src[l->n + i] = match(st, name, bk_optim_state_tensor(o, i), &missing, &mismatch);
    }
    /* Every tensor of the file must be used, except the optimizer's when none is given. */
    for (int k = 0; k < n_file; k++) {
        const char *fname = bk_safetensors_name(st, k);
        bool is_opt = !strncmp(fname, OPTIM_PREFIX, strlen(OPTIM_PREFIX));
        bool used = false;
        if (is_opt && !o) continue;
        if (is_opt) {
            for (int i = 0; i < n_opt && !used; i++)
                used = !strcmp(fname + strlen(OPTIM_PREFIX), bk_optim_state_name(o, i));
        } else {
            for (int i = 0; i < l->n && !used; i++) used = !strcmp(fname, l->names[i]);
        }
        if (!used) list_add(&unexpected, fname);
    }
    if (missing.n || unexpected.n || mismatch.n) {
        char what[64] = "";
        if (o) snprintf(what, sizeof what, " and %s optimizer", bk_optim_name(o));
        bk_set_error("checkpoint_load: %s does not match the %s model%s:%s%s%s%s%s%s", path,
                     bk_module_name(m), what, missing.n ? " missing: " : "", missing.buf,
                     unexpected.n ? (missing.n ? "; unexpected: " : " unexpected: ") : "",
                     unexpected.buf,
                     mismatch.n ? (missing.n || unexpected.n ? "; shape mismatch: "
                                                             : " shape mismatch: ")
                                : "",
                     mismatch.buf);
        goto done;
    }

    /* 2. Everything matches: copy. */
    for (int i = 0; i < l->n; i++)
        if (l->tensors[i]->numel > 0) bk_copy(l->tensors[i], src[i]);
    for (int i = 0; i < n_opt; i++)
        if (src[l->n + i]->numel > 0) bk_copy(bk_optim_state_tensor(o, i), src[l->n + i]);
    rc = 0;
done:
    bk__free(name);
    bk__free(missing.buf);
    bk__free(unexpected.buf);
    bk__free(mismatch.buf);
    bk__free(src);
    bk_param_list_free(l);
    return rc;
}
