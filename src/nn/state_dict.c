/* state_dict.c - a block's state dict as a safetensors file (torch's state_dict /
 * load_state_dict).
 *
 * The state dict is bk_module_named(m, BK_STATE): every parameter and persistent buffer
 * under its dotted name ("1.weight"), per block its parameters then its buffers, then its
 * children. Saving writes them in that order with the metadata "format": "pt" (what
 * transformers' loaders look for in a PyTorch checkpoint). Loading checks the whole file
 * first (bk__safetensors_match) and copies only when everything matches, so a failed load
 * changes nothing; strict = false allows missing and unexpected names, never another shape,
 * and bk_module_load_report hands the skipped names back (torch's _IncompatibleKeys).
 */
#include "internal.h"

int bk_module_save(const bk_module *m, const char *path) {
    if (!bk__module_ok(m, "module_save")) return -1;
    bk_param_list *l = bk_module_named(m, BK_STATE);
    if (!l) return -1;
    static const char *const keys[] = {"format"}, *const values[] = {"pt"};
    int rc = bk_safetensors_save(path, l->n, (const char *const *)l->names,
                                 (const bk_tensor *const *)l->tensors, 1, keys, values);
    bk_param_list_free(l);
    return rc;
}

int bk_module_load(bk_module *m, const char *path, bool strict) {
    if (!bk__module_ok(m, "load_state_dict")) return -1;
    bk_safetensors *st = bk_safetensors_load(path);
    if (!st) return -1;
    int rc = bk_module_load_from(m, st, strict);
    bk_safetensors_free(st);
    return rc;
}

int bk_module_load_from(bk_module *m, const bk_safetensors *st, bool strict) {
    return bk_module_load_report(m, st, strict, NULL);
}

void bk_load_report_free(bk_load_report *report) {
    if (!report) return;
    bk__free(report->missing);
    bk__free(report->unexpected);
    memset(report, 0, sizeof *report);
}

int bk_module_load_report(bk_module *m, const bk_safetensors *st, bool strict, bk_load_report *report) {
    if (report) memset(report, 0, sizeof *report);
    if (!bk__module_ok(m, "load_state_dict")) return -1;
    if (!st) {
        bk_set_error("load_state_dict: file is NULL");
        return -1;
    }
    const char *path = bk__safetensors_path(st);
    bk_param_list *l = bk_module_named(m, BK_STATE);
    if (!l) return -1;
    int rc = -1;
    bk__st_report r = {0};
    bk__str msg = {0};
    bk_tensor **found = bk__calloc((size_t)l->n + 1, sizeof *found);
    if (!found) {
        bk_set_error("load_state_dict: %s: out of memory", path);
        goto done;
    }
    /* Match every name of the module against the file; nothing is changed yet. */
    if (bk__safetensors_match(st, l->n, (const char *const *)l->names, l->tensors, " in model", NULL, found,
                              &r) != 0) {
        bk__error_prefix("load_state_dict");
        goto done;
    }
    if (r.n_mismatch > 0 || (strict && (r.n_missing > 0 || r.n_unexpected > 0))) {
        bk__str_printf(&msg, "load_state_dict: %s: ", path);
        size_t head = msg.len;
        const bk__str *parts[3] = {&r.missing, &r.unexpected, &r.mismatch};
        const int counts[3] = {r.n_missing, r.n_unexpected, r.n_mismatch};
        const char *labels[3] = {"missing: ", "unexpected: ", "shape mismatch: "};
        for (int p = 0; p < 3; p++) {
            if (counts[p] == 0 || (p < 2 && !strict)) continue;
            if (msg.len > head) bk__str_puts(&msg, "; ");
            bk__str_puts(&msg, labels[p]);
            bk__str_puts(&msg, parts[p]->p ? parts[p]->p : "");
        }
        if (r.missing.oom || r.unexpected.oom || r.mismatch.oom || msg.oom)
            bk_set_error(
                "load_state_dict: %s: the state dict does not match the module (out of "
                "memory while listing the differences)",
                path);
        else bk_set_error("%s", msg.p);
        goto done;
    }

    /* Everything matches: copy. */
    if (report && (r.missing.oom || r.unexpected.oom)) {
        bk_set_error("load_state_dict: %s: out of memory while listing the skipped names", path);
        goto done;
    }
    for (int i = 0; i < l->n; i++)
        if (found[i] && l->tensors[i]->numel > 0)
            memcpy(l->tensors[i]->data, found[i]->data, (size_t)l->tensors[i]->numel * sizeof(float));
    if (report) { /* the lists move to the report */
        *report = (bk_load_report){r.n_missing, r.n_unexpected, r.missing.p, r.unexpected.p};
        r.missing = r.unexpected = (bk__str){0};
    }
    rc = 0;

done:
    bk__str_free(&msg);
    bk__st_report_free(&r);
    bk__free(found);
    bk_param_list_free(l);
    return rc;
}
