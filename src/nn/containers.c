/* containers.c - nn.ModuleList and nn.ModuleDict: blocks that hold children (registered,
 * so named_parameters, state dicts, train/eval, apply and printing see them) and have no
 * forward of their own; the block that owns the container calls its children.
 *   ModuleList: children "0", "1", ... in order (bk_module_child(list, i)).
 *   ModuleDict: children under their keys, in insertion order; setting an existing key
 *   replaces that child in place, as torch's OrderedDict assignment does.
 */
#include "internal.h"

#include <string.h>

/* torch: NotImplementedError: Module [ModuleList] is missing the required "forward" function */
static bk_tensor *no_forward(bk_module *m, bk_tensor *x) {
    (void)x;
    bk_set_error("%s has no forward: call its children (bk_module_child, bk_module_child_by_name)",
                 m->cls->name);
    return NULL;
}

static const bk_module_class MODULE_LIST = {"ModuleList", no_forward, NULL, NULL};
static const bk_module_class MODULE_DICT = {"ModuleDict", no_forward, NULL, NULL};

bk_module *bk_nn_module_list(void) { return bk_module_new(&MODULE_LIST, sizeof(bk_module)); }
bk_module *bk_nn_module_dict(void) { return bk_module_new(&MODULE_DICT, sizeof(bk_module)); }

/* A container of class cls, or an error naming who; block is freed on failure when it is
 * a live block (the caller handed it over). */
static bool container_ok(bk_module *m, const bk_module_class *cls, const char *who, bk_module *block) {
    if (bk__module_ok(m, who) && m->cls == cls) return true;
    if (m && m->cls && bk__module_ok(m, who))
        bk_set_error("%s: expected a %s, got %s", who, cls->name, m->cls->name);
    if (block && bk__module_ok(block, who)) bk_module_free(block);
    return false;
}

int bk_nn_module_list_append(bk_module *list, bk_module *block) {
    if (!container_ok(list, &MODULE_LIST, "ModuleList.append", block)) return -1;
    char name[32];
    snprintf(name, sizeof name, "%d", list->n_children);
    return bk_module_add(list, name, block) ? 0 : -1;
}

int bk_nn_module_dict_set(bk_module *dict, const char *key, bk_module *block) {
    if (!container_ok(dict, &MODULE_DICT, "ModuleDict.set", block)) return -1;
    for (int i = 0; key && block && i < dict->n_children; i++)
        if (!strcmp(dict->children[i].name, key)) {
            if (!bk__module_ok(block, "ModuleDict.set")) return -1; /* not ours to free */
            if (block != dict->children[i].module) bk_module_free(dict->children[i].module);
            dict->children[i].module = block;
            return 0;
        }
    return bk_module_add(dict, key, block) ? 0 : -1;
}
